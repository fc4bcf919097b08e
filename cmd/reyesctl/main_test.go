package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain runs main instead of the tests when the test binary is started
// by TestExitCodes as reyesctl.
func TestMain(m *testing.M) {
	if os.Getenv("REYESCTL_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestExitCodes runs the real process: exit status, and errors as exactly
// one "reyesctl: " line on stderr.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	sec, pub := filepath.Join(dir, "k.sec"), filepath.Join(dir, "k.pub")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"help", []string{"-h"}, 0, "Commands:", ""},
		{"version", []string{"--version"}, 0, "reyesctl ", ""},
		{"command help", []string{"verify", "-h"}, 0, "--trusted-key FILE", ""},
		{"keygen", []string{"keygen", "--secret", sec, "--public", pub}, 0, "fingerprint: ", ""},
		{"refused", []string{"keygen", "--secret", sec, "--public", pub}, 1, "", "reyesctl: refusing to overwrite"},
		{"failed", []string{"verify", "--trusted-key", pub, filepath.Join(dir, "missing")}, 1, "", "reyesctl: reading "},
		{"usage", []string{"verify", filepath.Join(dir, "missing")}, 2, "", "reyesctl: --trusted-key is required (see reyesctl verify -h)"},
		{"no command", nil, 2, "", "reyesctl: no command given (see reyesctl -h)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], tc.args...)
			cmd.Env = append(os.Environ(), "REYESCTL_TEST_AS_MAIN=1")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, stdout.String())
			}
			if tc.stderr == "" {
				if stderr.Len() != 0 {
					t.Errorf("unexpected stderr: %s", stderr.String())
				}
				return
			}
			if !strings.HasPrefix(stderr.String(), tc.stderr) || strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("stderr is not one line starting %q: %q", tc.stderr, stderr.String())
			}
		})
	}
}
