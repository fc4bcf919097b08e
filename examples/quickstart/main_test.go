package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/render"

	"github.com/reyes-fw/reyes/internal/cli"
	"github.com/reyes-fw/reyes/internal/ctl"
	"github.com/reyes-fw/reyes/reyes"
)

// runQuickstart runs the quickstart with TMPDIR pointing at a fresh
// directory, and checks that the run left nothing behind in it.
func runQuickstart(t *testing.T, args ...string) (string, error) {
	t.Helper()
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var out, stderr bytes.Buffer
	err := run(context.Background(), args, &out, &stderr, noKernel{})
	left, rerr := os.ReadDir(tmp)
	if rerr != nil {
		t.Fatal(rerr)
	}
	for _, e := range left {
		t.Errorf("the quickstart left %s behind in the temporary directory", e.Name())
	}
	if stderr.Len() > 0 {
		t.Logf("stderr:\n%s", stderr.String())
	}
	return out.String(), err
}

func TestQuickstart(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{
			name: "default",
			want: []string{
				"== 1. leader:",
				"throwaway signing key ",
				`published scope "quickstart" serial `,
				"8 security groups, 5 interfaces",
				"reyes-signed/v1 sig=",
				"-----BEGIN PGP SIGNATURE-----",
				"== 2. the signed root",
				"# reyes.root/v1\n",
				`"scope":"quickstart"`,
				"== 3. follower (dry run)",
				"# reyes dry run: scope quickstart serial ",
				"host found by addresses",
				"nothing jumps to the IPv6 REYES-FILTER above: in vpc mode",
				"# ---- IPv4: ipset restore ----",
				"add reyes4-sg-3afd97af72adefa56-n 10.20.1.50",
				"*filter",
				":REYES-INPUT - [0:0]",
				"-A REYES-INPUT -s 10.20.0.0/16 -m comment --comment \"own VPC\" -j RETURN",
				"-A REYES-FILTER -p tcp -m tcp --dport 8443 -m set --match-set reyes4-sg-3afd97af72adefa56 src",
				"# ---- IPv6: iptables-restore ----",
				"== 4. what render.Decide says",
				"10.30.0.5 -> 10.20.1.10 proto 6 port 443 ipsec=false: allow (sg-b238c182ba23a5210 (api): tcp/443 from 0.0.0.0/0)",
				"10.30.0.5 -> 10.20.1.10 proto 6 port 22 ipsec=false: drop (no security group allows this)",
				"10.20.1.50 -> 10.20.1.10 proto 6 port 8443 ipsec=false: pass (own VPC)",
				"10.30.0.5 -> 10.20.1.10 proto 6 port 22 ipsec=true: drop",
				"nothing on this machine was changed",
			},
		},
		{
			name: "ipsec mode",
			args: []string{"-mode", "ipsec"},
			want: []string{
				"-m policy --dir in --pol ipsec",
				"10.30.0.5 -> 10.20.1.10 proto 6 port 22 ipsec=false: pass",
				"10.30.0.5 -> 10.20.1.10 proto 6 port 22 ipsec=true: drop",
			},
		},
		{
			name: "exclusive table",
			args: []string{"-table", "exclusive"},
			want: []string{
				":INPUT ACCEPT [0:0]",
				"-A REYES-ALLOW -j ACCEPT",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runQuickstart(t, tc.args...)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, out)
			}
			for _, want := range tc.want {
				if !strings.Contains(render.StripRuleHashes(out), want) {
					t.Errorf("output lacks %q", want)
				}
			}
			// The dry run compares with the kernel when iptables-save
			// can read it (root), and says so when it cannot.
			for _, fam := range []string{"IPv4", "IPv6"} {
				if !strings.Contains(out, "# ---- "+fam+": kernel not compared: ") &&
					!strings.Contains(out, "# ---- "+fam+": difference from the kernel") &&
					!strings.Contains(out, "# ---- "+fam+": the kernel already has these rules") {
					t.Errorf("output says nothing about the kernel's %s rules", fam)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

func TestQuickstartErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		is   error
		want string
	}{
		{name: "unknown host", args: []string{"-host", "192.0.2.1"}, is: reyes.ErrUnknownHost},
		{name: "bad address", args: []string{"-host", "10.20.1"}, want: "-host"},
		{name: "bad mode", args: []string{"-mode", "bridge"}, want: "-mode"},
		{name: "bad table", args: []string{"-table", "nat"}, want: "-table"},
		{name: "unknown flag", args: []string{"-region", "eu-west-1"}, want: "flag provided but not defined"},
		{name: "argument", args: []string{"extra"}, want: `unexpected argument "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runQuickstart(t, tc.args...)
			switch {
			case err == nil:
				t.Fatal("run succeeded")
			case tc.is != nil && !errors.Is(err, tc.is):
				t.Fatalf("run: %v, want %v", err, tc.is)
			case !strings.Contains(err.Error(), tc.want):
				t.Fatalf("run: %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// noKernel stands in for the firewall tools: tests never read the firewall
// of the machine they run on, so the dry run says it did not compare.
type noKernel struct{}

func (noKernel) Run(context.Context, []byte, string, ...string) ([]byte, error) {
	return nil, errors.New("tests do not read this machine's firewall")
}

// TestQuickstartCommandsWork: the "same with the binaries" commands named
// files in the temporary directory the quickstart had just removed. Run
// as printed (through the binaries' Run functions, from a directory that
// has the repository's examples), they now work, with and without -dir.
func TestQuickstartCommandsWork(t *testing.T) {
	for _, tc := range []struct {
		name string
		args func(dir string) []string
	}{
		{"temporary directory", func(string) []string { return nil }},
		{"-dir", func(dir string) []string { return []string{"-dir", filepath.Join(dir, "kept")} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo, err := filepath.Abs("../..")
			if err != nil {
				t.Fatal(err)
			}
			work := t.TempDir()
			if err := os.Symlink(filepath.Join(repo, "examples"), filepath.Join(work, "examples")); err != nil {
				t.Fatal(err)
			}
			out, err := runQuickstart(t, tc.args(work)...)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, out)
			}
			tmp := os.Getenv("TMPDIR")
			var cmds [][]string
			for _, l := range strings.Split(out, "\n") {
				l = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(l), "(the same with the binary: "), ")")
				for _, part := range strings.Split(l, " && ") {
					if f := strings.Fields(part); len(f) > 0 && (f[0] == "reyes-leader" || f[0] == "reyes-follower" || f[0] == "reyesctl" || f[0] == "mkdir") {
						if strings.Contains(part, tmp) {
							t.Errorf("command names the removed temporary directory: %s", part)
						}
						cmds = append(cmds, f)
					}
				}
			}
			if len(cmds) < 2 {
				t.Fatalf("found %d commands in:\n%s", len(cmds), out)
			}
			t.Chdir(work)
			for _, c := range cmds {
				var stdout, stderr bytes.Buffer
				var err error
				switch c[0] {
				case "mkdir":
					err = os.MkdirAll(c[len(c)-1], 0o755)
				case "reyesctl":
					err = ctl.Run(context.Background(), c[1:], &stdout, &stderr)
				case "reyes-leader":
					err = cli.RunLeader(context.Background(), c[1:], nil, &stdout, &stderr)
				case "reyes-follower":
					err = cli.RunFollower(context.Background(), c[1:], nil, &stdout, &stderr)
				}
				if err != nil {
					t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, stderr.String())
				}
				if c[0] == "reyes-follower" && !strings.Contains(stdout.String(), "host found by addresses") {
					t.Errorf("the follower's dry run:\n%s", stdout.String())
				}
			}
		})
	}
}

// TestQuickstartIPsecModeNoNote: in ipsec mode both families send IPsec
// traffic to REYES-FILTER: no note.
func TestQuickstartIPsecModeNoNote(t *testing.T) {
	out, err := runQuickstart(t, "-mode", "ipsec")
	if err != nil || strings.Contains(out, "nothing jumps to") {
		t.Fatalf("%v\n%s", err, out)
	}
}
