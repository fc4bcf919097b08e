package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	for _, tc := range []struct {
		name        string
		bi          debug.BuildInfo
		short, full string
	}{
		{
			name:  "tagged module",
			bi:    debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/reyes-fw/reyes", Version: "v1.2.0"}},
			short: "v1.2.0", full: "v1.2.0 (go1.26.8)",
		},
		{
			name: "checkout with VCS stamp",
			bi: debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/reyes-fw/reyes", Version: "(devel)"},
				Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-11-29T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}},
			short: "(devel) 0123456789ab+dirty", full: "(devel) (revision 0123456789abcdef0123 (modified), 2026-11-29T10:00:00Z, go1.26.8)",
		},
		{name: "nothing known", bi: debug.BuildInfo{}, short: "unknown", full: "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := FromBuildInfo(&tc.bi)
			if got := in.Short(); got != tc.short {
				t.Errorf("Short() = %q, want %q", got, tc.short)
			}
			if got := in.String(); got != tc.full {
				t.Errorf("String() = %q, want %q", got, tc.full)
			}
		})
	}
}

func TestGetInTest(t *testing.T) {
	// A test binary has build info; its main module is the package's.
	if got := Line("reyes-x"); !strings.HasPrefix(got, "reyes-x ") || Get().Version == "" {
		t.Errorf("Line = %q", got)
	}
}
