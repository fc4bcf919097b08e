package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/reyes"
)

func TestPrivilege(t *testing.T) {
	dir := t.TempDir()
	status := func(capEff string) string {
		p := filepath.Join(dir, capEff+".status")
		if err := os.WriteFile(p, []byte("Name:\treyes-follower\nCapInh:\t0000000000000000\nCapEff:\t"+capEff+"\nCapBnd:\t000001ffffffffff\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	eperm := errors.New("loading ipsets: ipset v7.17: Kernel error received: Operation not permitted")
	for _, tc := range []struct {
		name    string
		file    string
		refused bool
	}{
		{"root", status("000001ffffffffff"), false},
		{"root without CAP_NET_ADMIN", status("000001ffffffefff"), true},
		{"unprivileged user", status("0000000000000000"), true},
		{"only CAP_NET_ADMIN", status("0000000000001000"), false},
		{"no status file", filepath.Join(dir, "missing"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkPrivilege(tc.file)
			if tc.refused != errors.Is(err, ErrNotPrivileged) {
				t.Fatalf("checkPrivilege: %v", err)
			}
			if tc.refused && (!strings.Contains(err.Error(), "root") || !strings.Contains(err.Error(), "CAP_NET_ADMIN")) {
				t.Errorf("error does not say what is needed: %v", err)
			}
			hinted := permissionHint(eperm, tc.file)
			if tc.refused != errors.Is(hinted, ErrNotPrivileged) || !errors.Is(hinted, eperm) {
				t.Errorf("permissionHint: %v", hinted)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{ErrHelp, ExitOK},
		{context.Canceled, ExitOK},
		// A single run cut short by a signal did not do its work.
		{fmt.Errorf("%w: fetching: %w", reyes.ErrInterrupted, context.Canceled), ExitFailure},
		{&helpHinted{fmt.Errorf("%w: no command", reyes.ErrUsage)}, ExitUsage},
		{fmt.Errorf("%w: bad", reyes.ErrUsage), ExitUsage},
		{fmt.Errorf("%w: ttl: 1s", reyes.ErrConfig), ExitUsage},
		{errors.New("refused"), ExitFailure},
		// A run cut short by --timeout whose calls say "canceled".
		{fmt.Errorf("%w after 2m0s: fetching: %w", reyes.ErrTimeout, context.Canceled), ExitFailure},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

type helpHinted struct{ error }

func (e *helpHinted) Unwrap() error    { return e.error }
func (e *helpHinted) HelpHint() string { return "see x -h" }

// TestExitHelpHint: a usage error that names its own help is printed
// once, without a second "(see --help)".
func TestExitHelpHint(t *testing.T) {
	var b strings.Builder
	if code := Exit("x", &helpHinted{fmt.Errorf("%w: bad (see x -h)", reyes.ErrUsage)}, &b); code != ExitUsage || strings.Count(b.String(), "see") != 1 {
		t.Errorf("Exit = %d, %q", code, b.String())
	}
	b.Reset()
	if code := Exit("x", fmt.Errorf("%w: bad", reyes.ErrUsage), &b); code != ExitUsage || b.String() != "x: usage: bad (see --help)\n" {
		t.Errorf("Exit = %d, %q", code, b.String())
	}
}
