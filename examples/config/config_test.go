// Package config_test checks the example configuration files leader.yaml and
// follower.yaml against the real binaries' options: every key of the files
// is one the binary knows, every key the binary knows is in its file with a
// comment, and the real loader accepts the files.
package config_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/internal/cli"

	"github.com/knadh/koanf/parsers/yaml"

	"github.com/reyes-fw/reyes/reyes"
)

// runFunc is cli.RunLeader or cli.RunFollower.
type runFunc func(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error

var binaries = []struct {
	name string
	file string
	run  runFunc
	// missingKeyFlag names a key file in a flag that the test points at a
	// file that does not exist: the run then stops right after the whole
	// configuration was loaded and validated, before anything is fetched,
	// signed or applied.
	missingKeyFlag, missingKeyKey string
}{
	{"reyes-leader", "leader.yaml", cli.RunLeader, "--signing-key", "signing_key"},
	{"reyes-follower", "follower.yaml", cli.RunFollower, "--trusted-key", "trusted_key"},
}

// helpFlag matches a flag line of the --help output: "  --signing-key".
var helpFlag = regexp.MustCompile(`^  --([a-z0-9-]+)$`)

// knownKeys runs the binary's --help and returns its configuration keys
// (flag names with _ for -), but "config", which names the file itself.
func knownKeys(t *testing.T, run runFunc) []string {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), []string{"--help"}, nil, &out, &out)
	if !errors.Is(err, cli.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	var keys []string
	sawConfig := false
	for _, l := range strings.Split(out.String(), "\n") {
		m := helpFlag.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		key := strings.ReplaceAll(m[1], "-", "_")
		if key == "config" {
			sawConfig = true
			continue
		}
		keys = append(keys, key)
	}
	if !sawConfig || len(keys) < 5 {
		t.Fatalf("--help lists %d keys and config=%v; has its format changed?\n%s", len(keys), sawConfig, out.String())
	}
	sort.Strings(keys)
	return keys
}

// fileKeys parses the YAML file and returns its top-level keys.
func fileKeys(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := yaml.Parser().Unmarshal(b)
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestEveryKeyOnce(t *testing.T) {
	for _, b := range binaries {
		t.Run(b.name, func(t *testing.T) {
			known := knownKeys(t, b.run)
			have := fileKeys(t, b.file)
			for _, k := range have {
				if !slices.Contains(known, k) {
					t.Errorf("%s: key %q is not an option of %s", b.file, k, b.name)
				}
			}
			for _, k := range known {
				if !slices.Contains(have, k) {
					t.Errorf("%s lacks key %q of %s --help", b.file, k, b.name)
				}
			}
		})
	}
}

// topKey matches a top-level key line: "signing_key: /etc/reyes/leader.key".
var topKey = regexp.MustCompile(`^([a-z0-9_]+):`)

func TestEveryKeyCommented(t *testing.T) {
	for _, b := range binaries {
		t.Run(b.name, func(t *testing.T) {
			f, err := os.Open(b.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			prev, n := "", 0
			for sc.Scan() {
				n++
				l := sc.Text()
				if m := topKey.FindStringSubmatch(l); m != nil && !strings.HasPrefix(prev, "# ") {
					t.Errorf("%s:%d: key %q has no comment on the line above", b.file, n, m[1])
				}
				prev = l
			}
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRealLoader loads each file with the binary's own loader and
// validation. The key file flag points at a file that does not exist, so
// the run fails there: right after the configuration was accepted, and
// before any network access or change to the machine.
func TestRealLoader(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bin   int      // index in binaries
		extra []string // flags that switch on keys validated only when used
	}{
		{name: "reyes-leader", bin: 0},
		{name: "reyes-follower", bin: 1},
		// The baseline keys are checked only with the baseline on; its
		// interface is given so that no route table is read.
		{name: "reyes-follower with the baseline", bin: 1, extra: []string{"--baseline", "--baseline-interface", "lo"}},
		{name: "reyes-follower with the baseline restricting outbound", bin: 1,
			extra: []string{"--baseline", "--baseline-interface", "lo", "--baseline-outbound", "restrict"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := binaries[tc.bin]
			missing := filepath.Join(t.TempDir(), "missing.asc")
			args := append([]string{"--config", b.file, b.missingKeyFlag, missing}, tc.extra...)
			var stdout, stderr bytes.Buffer
			err := b.run(context.Background(), args, nil, &stdout, &stderr)
			switch {
			case err == nil:
				t.Fatal("run succeeded with a missing key file")
			case errors.Is(err, reyes.ErrConfig), errors.Is(err, reyes.ErrUsage):
				t.Fatalf("%s was refused: %v", b.file, err)
			case !strings.HasPrefix(err.Error(), b.missingKeyKey+": ") || !errors.Is(err, os.ErrNotExist):
				t.Fatalf("run failed before reaching the key file: %v", err)
			}
		})
	}
}
