package errtext_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/reyes-fw/reyes/internal/errtext"
)

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"short", "sg-1", "sg-1"},
		{"exactly the limit", strings.Repeat("a", errtext.MaxQuoted), strings.Repeat("a", errtext.MaxQuoted)},
		{"long", strings.Repeat("a", 200), strings.Repeat("a", errtext.MaxQuoted) + "..."},
		{"cut inside a rune", strings.Repeat("a", errtext.MaxQuoted-1) + "é" + "tail", strings.Repeat("a", errtext.MaxQuoted-1) + "..."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := errtext.Clip(tc.in)
			if got != tc.want || !utf8.ValidString(got) {
				t.Errorf("Clip = %q, want %q", got, tc.want)
			}
		})
	}
}
