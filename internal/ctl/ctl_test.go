package ctl

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reyes-fw/reyes/internal/cli"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sgsource"
	"github.com/reyes-fw/reyes/sign"
)

const inventoryDir = "../../examples/quickstart/inventory"

// fixture is a temp directory with keys made by "reyesctl keygen" and
// signed objects of the quickstart estate, good and bad.
type fixture struct {
	dir                string
	secret, public     string // made by reyesctl keygen
	otherPub           string // a key that signed nothing here
	oldPub             string // the key that signed expired.obj
	good               string // sealed with secret, valid for an hour
	expired            string // generated 3 h ago, TTL 1 h
	tampered           string // good with one payload byte changed
	untrusted          string // sealed with a key not in public
	notRuleset         string // a well signed payload that is not a ruleset
	garbage            string // not an object at all
	rs                 *ruleset.Ruleset
	signer             *sign.Signer
	payload, goodBytes []byte
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	now := time.Now()
	dir := t.TempDir()
	f := &fixture{dir: dir, secret: filepath.Join(dir, "leader.sec"), public: filepath.Join(dir, "leader.pub")}
	if _, _, err := runCLI(t, now, "keygen", "--secret", f.secret, "--public", f.public, "--name", "test leader"); err != nil {
		t.Fatalf("keygen: %v", err)
	}
	signer, err := sign.LoadSigner(f.secret)
	if err != nil {
		t.Fatal(err)
	}
	f.signer = signer

	inv, err := sgsource.ReadDir(ctx, inventoryDir)
	if err != nil {
		t.Fatal(err)
	}
	build := func(at time.Time) []byte {
		rs, err := ruleset.Build(inv, ruleset.BuildOptions{GeneratedAt: at, Scope: "quickstart", Serial: 42, Exclude: []string{"bastion"}})
		if err != nil {
			t.Fatal(err)
		}
		f.rs = rs
		b, err := ruleset.Encode(rs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	seal := func(payload []byte, s *sign.Signer, at time.Time) []byte {
		obj, err := sign.Seal(payload, s, at)
		if err != nil {
			t.Fatal(err)
		}
		return obj
	}
	keyFile := func(name string, at time.Time) (*sign.Signer, string) {
		sec, pub, err := sign.GenerateKey(name, "", at)
		if err != nil {
			t.Fatal(err)
		}
		s, err := sign.ParseSigner(sec)
		if err != nil {
			t.Fatal(err)
		}
		return s, write(name+".pub", pub)
	}

	old := now.Add(-3 * time.Hour)
	oldSigner, oldPub := keyFile("old", old.Add(-time.Minute))
	f.oldPub = oldPub
	f.expired = write("expired.obj", seal(build(old), oldSigner, old))
	otherSigner, otherPub := keyFile("other", now.Add(-time.Minute))
	f.otherPub = otherPub

	f.payload = build(now)
	f.goodBytes = seal(f.payload, signer, now)
	f.good = write("good.obj", f.goodBytes)
	f.untrusted = write("untrusted.obj", seal(f.payload, otherSigner, now))
	bad := bytes.Clone(f.goodBytes)
	i := bytes.Index(bad, []byte(`"scope":"quickstart"`))
	bad[i+len(`"scope":"`)] = 'Q'
	f.tampered = write("tampered.obj", bad)
	f.notRuleset = write("not-ruleset.obj", seal([]byte(`{"format":"something/else"}`), signer, now))
	f.garbage = write("garbage.obj", []byte("hello, world\n"))
	return f
}

// runCLI runs the command line at time now and returns stdout, stderr and
// the error.
func runCLI(t *testing.T, now time.Time, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	c := &invocation{stdout: &stdout, stderr: &stderr, now: func() time.Time { return now }}
	err := c.run(t.Context(), args)
	return stdout.String(), stderr.String(), err
}

// runCase is one command line and what it must do.
type runCase struct {
	name    string
	args    []string
	code    int
	out     []string // substrings of stdout
	notOut  []string // substrings stdout must not hold
	stderr  []string // substrings of stderr
	errIs   error    // the error must match
	errHas  string   // substring of the error
	checkFS func(t *testing.T)
}

func (tc runCase) run(t *testing.T, now time.Time) {
	t.Helper()
	stdout, stderr, err := runCLI(t, now, tc.args...)
	stdout = squeeze(stdout)
	if got := ExitCode(err); got != tc.code {
		t.Fatalf("reyesctl %s: exit %d (err %v), want %d\nstdout:\n%s", strings.Join(tc.args, " "), got, err, tc.code, stdout)
	}
	if err != nil && strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
	if tc.errIs != nil && !errors.Is(err, tc.errIs) {
		t.Errorf("error %v does not match %v", err, tc.errIs)
	}
	if tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)) {
		t.Errorf("error %v does not say %q", err, tc.errHas)
	}
	for _, s := range tc.out {
		if !strings.Contains(stdout, squeeze(s)) {
			t.Errorf("stdout lacks %q:\n%s", s, stdout)
		}
	}
	for _, s := range tc.notOut {
		if strings.Contains(stdout, squeeze(s)) {
			t.Errorf("stdout has %q:\n%s", s, stdout)
		}
	}
	for _, s := range tc.stderr {
		if !strings.Contains(stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, stderr)
		}
	}
	if tc.checkFS != nil {
		tc.checkFS(t)
	}
}

// squeeze collapses runs of blanks, so that tests do not depend on the
// column widths of aligned output.
func squeeze(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

func TestTopLevel(t *testing.T) {
	now := time.Now()
	for _, tc := range []runCase{
		{name: "no command", args: nil, code: ExitUsage, errHas: "no command given"},
		{name: "unknown command", args: []string{"frobnicate"}, code: ExitUsage, errHas: `unknown command "frobnicate"`},
		{name: "-h", args: []string{"-h"}, out: []string{"keygen", "verify", "unpack", "inspect", "explain", "Exit status"}},
		{name: "--help", args: []string{"--help"}, out: []string{"Commands:"}},
		{name: "help", args: []string{"help"}, out: []string{"Commands:"}},
		{name: "help command", args: []string{"help", "unpack"}, out: []string{"Usage: reyesctl unpack", "does NOT verify", "gpg --verify DIR/payload.json.asc DIR/payload.json"}},
		{name: "help unknown", args: []string{"help", "nope"}, code: ExitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, now) })
	}
}

// TestHelpListsEveryFlag checks that each command's -h names every flag
// it accepts, and that --help works too.
func TestHelpListsEveryFlag(t *testing.T) {
	for _, cmd := range commands() {
		t.Run(cmd.name, func(t *testing.T) {
			for _, h := range []string{"-h", "--help"} {
				out, _, err := runCLI(t, time.Now(), cmd.name, h)
				if err != nil {
					t.Fatalf("%s %s: %v", cmd.name, h, err)
				}
				fl := newFlagSet(cmd.name)
				cmd.flags(&invocation{}, fl)
				n := 0
				fl.VisitAll(func(f *flag.Flag) {
					n++
					if !strings.Contains(out, "--"+f.Name) {
						t.Errorf("help of %s lacks --%s:\n%s", cmd.name, f.Name, out)
					}
					if !strings.Contains(cmd.usage, "--"+f.Name) {
						t.Errorf("usage line of %s lacks --%s: %s", cmd.name, f.Name, cmd.usage)
					}
				})
				if n == 0 && cmd.argNames == "" {
					t.Errorf("%s has neither flags nor arguments", cmd.name)
				}
			}
		})
	}
}

func TestKeygen(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	existing := p("existing")
	if err := os.WriteFile(existing, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	unchanged := func(t *testing.T) {
		if b, _ := os.ReadFile(existing); string(b) != "keep me" {
			t.Errorf("existing file changed: %q", b)
		}
	}
	mode := func(name string, want os.FileMode) func(t *testing.T) {
		return func(t *testing.T) {
			fi, err := os.Stat(p(name))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm()&^want != 0 {
				t.Errorf("%s: mode %v, want at most %v", name, fi.Mode().Perm(), want)
			}
		}
	}
	for _, tc := range []runCase{
		{name: "ok", args: []string{"keygen", "--secret", p("a.sec"), "--public", p("a.pub"), "--email", "ops@example.com"},
			out: []string{"fingerprint: ", "a.sec", "a.pub"}, checkFS: func(t *testing.T) {
				mode("a.sec", 0o600)(t)
				sec, _ := os.ReadFile(p("a.sec"))
				pub, _ := os.ReadFile(p("a.pub"))
				if !bytes.HasPrefix(sec, []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----")) || !bytes.HasPrefix(pub, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
					t.Errorf("keys not armored:\n%s\n%s", sec, pub)
				}
				s, err := sign.ParseSigner(sec)
				if err != nil {
					t.Fatal(err)
				}
				kr, err := sign.ParseKeyring(pub)
				if err != nil {
					t.Fatal(err)
				}
				if kr.Fingerprints()[0] != s.Fingerprint() {
					t.Errorf("public key %v is not the secret key's %s", kr.Fingerprints(), s.Fingerprint())
				}
			}},
		{name: "refuses existing secret", args: []string{"keygen", "--secret", existing, "--public", p("b.pub")},
			code: ExitFailure, errIs: ErrExists, checkFS: func(t *testing.T) {
				unchanged(t)
				if _, err := os.Stat(p("b.pub")); err == nil {
					t.Error("public key written although the secret key was refused")
				}
			}},
		{name: "refuses existing public", args: []string{"keygen", "--secret", p("c.sec"), "--public", existing},
			code: ExitFailure, errIs: ErrExists, checkFS: func(t *testing.T) {
				unchanged(t)
				if _, err := os.Stat(p("c.sec")); err == nil {
					t.Error("secret key written although the public key was refused")
				}
			}},
		{name: "force replaces", args: []string{"keygen", "--secret", existing, "--public", p("d.pub"), "--force"},
			out: []string{"fingerprint: "}, checkFS: func(t *testing.T) {
				mode("existing", 0o600)(t) // was 0644: the new secret key is not left readable
				if _, err := sign.LoadSigner(existing); err != nil {
					t.Error(err)
				}
			}},
		{name: "missing --secret", args: []string{"keygen", "--public", p("e.pub")}, code: ExitUsage, errHas: "--secret is required"},
		{name: "missing --public", args: []string{"keygen", "--secret", p("e.sec")}, code: ExitUsage, errHas: "--public is required"},
		{name: "same file", args: []string{"keygen", "--secret", p("f"), "--public", p("./f")}, code: ExitUsage, errHas: "same file"},
		{name: "empty name", args: []string{"keygen", "--secret", p("g.sec"), "--public", p("g.pub"), "--name", ""}, code: ExitUsage},
		{name: "unknown flag", args: []string{"keygen", "--secret", p("h.sec"), "--public", p("h.pub"), "--bits", "4096"}, code: ExitUsage, errHas: "-bits"},
		{name: "stray argument", args: []string{"keygen", "--secret", p("i.sec"), "--public", p("i.pub"), "extra"}, code: ExitUsage},
		// The error was a bare "open ...: no such file or directory".
		{name: "unwritable dir", args: []string{"keygen", "--secret", p("no/such/dir/j.sec"), "--public", p("j.pub")}, code: ExitFailure,
			errHas: "directory " + p("no/such/dir") + " does not exist",
			checkFS: func(t *testing.T) {
				if _, err := os.Stat(p("j.pub")); err == nil {
					t.Error("public key written although the secret key failed")
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, now) })
	}
}

func TestVerifyInspectUnpack(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	unpackDir := filepath.Join(f.dir, "unpacked", "deep")
	for _, tc := range []runCase{
		// verify
		{name: "verify ok", args: []string{"verify", "--trusted-key", f.public, f.good},
			out: []string{"signer:", f.signer.Fingerprint(), "(good signature)", "scope:", "quickstart", "serial:", "42",
				"generated_at:", "not_after:", "expired:", "no (valid for", "status:", "OK"}},
		{name: "verify flags after object", args: []string{"verify", f.good, "--trusted-key", f.public}, out: []string{"OK"}},
		{name: "verify rotation: two keys", args: []string{"verify", "--trusted-key", f.otherPub, "--trusted-key", f.public, f.good}, out: []string{"OK"}},
		{name: "verify file:// url", args: []string{"verify", "--trusted-key", f.public, "file://" + f.good}, out: []string{"OK"}},
		{name: "verify expected scope", args: []string{"verify", "--trusted-key", f.public, "--scope", "quickstart", f.good}, out: []string{"OK"}},
		{name: "verify wrong scope", args: []string{"verify", "--trusted-key", f.public, "--scope", "prod", f.good},
			code: ExitFailure, errIs: reyes.ErrWrongScope, out: []string{"REFUSED"}},
		{name: "verify expired", args: []string{"verify", "--trusted-key", f.oldPub, f.expired},
			code: ExitFailure, errIs: reyes.ErrExpired, out: []string{"expired:", "YES", "REFUSED"}},
		{name: "verify tampered", args: []string{"verify", "--trusted-key", f.public, f.tampered},
			code: ExitFailure, errIs: sign.ErrBadSignature, notOut: []string{"scope:"}},
		{name: "verify untrusted signer", args: []string{"verify", "--trusted-key", f.public, f.untrusted},
			code: ExitFailure, errIs: sign.ErrUnknownSigner},
		{name: "verify not an object", args: []string{"verify", "--trusted-key", f.public, f.garbage},
			code: ExitFailure, errIs: sign.ErrUnknownFormat},
		{name: "verify not a ruleset", args: []string{"verify", "--trusted-key", f.public, f.notRuleset},
			code: ExitFailure, errIs: ruleset.ErrUnknownFormat},
		{name: "verify over the cap", args: []string{"verify", "--trusted-key", f.public, "--max-size", "100", f.good},
			code: ExitFailure, errIs: reyes.ErrTooLarge},
		{name: "verify missing object", args: []string{"verify", "--trusted-key", f.public, filepath.Join(f.dir, "nope")},
			code: ExitFailure, errIs: reyes.ErrNotFound},
		{name: "verify bad key file", args: []string{"verify", "--trusted-key", f.garbage, f.good},
			code: ExitFailure, errHas: "loading trusted keys"},
		{name: "verify missing key file", args: []string{"verify", "--trusted-key", filepath.Join(f.dir, "nope.pub"), f.good},
			code: ExitFailure, errHas: "loading trusted keys"},
		{name: "verify refuses a secret key as trusted", args: []string{"verify", "--trusted-key", f.secret, f.good}, code: ExitFailure, errHas: "followers need only the public key"},
		{name: "verify without key", args: []string{"verify", f.good}, code: ExitUsage, errHas: "--trusted-key is required"},
		{name: "verify without object", args: []string{"verify", "--trusted-key", f.public}, code: ExitUsage},
		{name: "verify two objects", args: []string{"verify", "--trusted-key", f.public, f.good, f.good}, code: ExitUsage},
		{name: "verify bad max-size", args: []string{"verify", "--trusted-key", f.public, "--max-size", "0", f.good}, code: ExitUsage},
		{name: "verify bad scheme", args: []string{"verify", "--trusted-key", f.public, "http://example.com/x"}, code: ExitFailure, errHas: "unknown scheme"},

		// inspect
		{name: "inspect unverified", args: []string{"inspect", f.good},
			out: []string{"UNVERIFIED", "NOT checked", "serial:", "42", "generated_at:", "age ", "contents:", "4 VPCs, 8 groups, 5 interfaces",
				"GROUP", "MEMBERS", "sg-b238c182ba23a5210  api", "vpc-f7fb0634aa419bc31", "eu-west-1",
				"sg-bbd193eaf1c36c316 bastion vpc-b924a88a459e9bf73 us-west-2 excluded 1"}},
		{name: "inspect verified", args: []string{"inspect", "--trusted-key", f.public, f.good},
			out: []string{"(good signature)", "sg-41c9bbb04cf721a80  db"}, notOut: []string{"UNVERIFIED"}},
		{name: "inspect tampered, unverified: shows what it holds", args: []string{"inspect", f.tampered},
			out: []string{"UNVERIFIED", "scope: Quickstart"}},
		{name: "inspect tampered verified", args: []string{"inspect", "--trusted-key", f.public, f.tampered},
			code: ExitFailure, errIs: sign.ErrBadSignature},
		{name: "inspect untrusted", args: []string{"inspect", "--trusted-key", f.public, f.untrusted},
			code: ExitFailure, errIs: sign.ErrUnknownSigner},
		{name: "inspect expired says so", args: []string{"inspect", f.expired}, out: []string{"YES", "age 3h0m"}},
		{name: "inspect garbage", args: []string{"inspect", f.garbage}, code: ExitFailure, errIs: sign.ErrUnknownFormat},
		{name: "inspect no object", args: []string{"inspect"}, code: ExitUsage},

		// unpack
		{name: "unpack", args: []string{"unpack", f.good, unpackDir},
			out: []string{"payload.json", "nothing was verified", "gpg --verify"}, checkFS: func(t *testing.T) {
				payload, err := os.ReadFile(filepath.Join(unpackDir, PayloadFile))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(payload, f.payload) {
					t.Error("payload.json is not the payload")
				}
				sig, err := os.ReadFile(filepath.Join(unpackDir, SignatureFile))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(sig, []byte("-----BEGIN PGP SIGNATURE-----")) {
					t.Errorf("signature file: %q", sig)
				}
			}},
		{name: "unpack again replaces", args: []string{"unpack", f.good, unpackDir}, out: []string{"payload.json"}},
		{name: "unpack does not verify", args: []string{"unpack", f.untrusted, filepath.Join(f.dir, "u2")}, out: []string{"nothing was verified"}},
		{name: "unpack garbage", args: []string{"unpack", f.garbage, filepath.Join(f.dir, "u3")}, code: ExitFailure, errIs: sign.ErrUnknownFormat,
			checkFS: func(t *testing.T) {
				if _, err := os.Stat(filepath.Join(f.dir, "u3")); err == nil {
					t.Error("directory made for a garbage object")
				}
			}},
		{name: "unpack one argument", args: []string{"unpack", f.good}, code: ExitUsage},
		{name: "unpack into a file", args: []string{"unpack", f.good, f.garbage}, code: ExitFailure},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, now) })
	}
}

func TestExplain(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	base := []string{"explain", "--store", f.good, "--trusted-key", f.public}
	ex := func(args ...string) []string { return append(append([]string{}, base...), args...) }
	for _, tc := range []runCase{
		{name: "allowed by a group rule", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "443"),
			out: []string{"host:", "eni-f9d642e9aab729078 (10.20.1.10) groups sg-b238c182ba23a5210", "own VPC:", "10.20.0.0/16",
				"packet:", "tcp 10.30.0.5 -> 10.20.1.10 port 443", "verdict:", "allow", "rule:", "-A REYES-FILTER ", "--dport 443",
				"comment:", "sg-b238c182ba23a5210 (api): tcp/443 from 0.0.0.0/0", "path:", "REYES-INPUT -> REYES-FILTER -> REYES-ALLOW",
				"host's own INPUT rules"}},
		{name: "dropped", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22"),
			out: []string{"verdict:  drop", "no security group allows this", "REYES-DROP"}, notOut: []string{"host's own INPUT rules"}},
		{name: "own VPC passes", args: ex("--src", "10.20.1.50", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "8443"),
			out: []string{"verdict:  pass", "own VPC"}},
		{name: "own VPC replaced", args: ex("--src", "10.20.1.50", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "8443", "--vpc-cidr", "10.99.0.0/16"),
			out: []string{"own VPC:  10.99.0.0/16", "verdict:  allow", "from sg-3afd97af72adefa56"}},
		{name: "icmp echo default", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "icmp"),
			out: []string{"icmp 10.30.0.5 -> 10.20.1.10 type 8 code 0", "verdict:  allow"}},
		{name: "icmp other type", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "icmp", "--icmp-type", "13"),
			out: []string{"type 13 code 0", "verdict:  drop"}},
		{name: "protocol number", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "50"),
			out: []string{"proto 50 ", "verdict:  allow", "proto 50 from 10.30.0.0/16"}},
		{name: "established", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22", "--established"),
			out: []string{"established", "verdict:  allow", "RELATED,ESTABLISHED"}},
		{name: "ipsec mode, not ipsec", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22", "--mode", "ipsec"),
			out: []string{"mode ipsec", "verdict:  pass", "foreign n/a"}},
		{name: "ipsec mode, ipsec", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22", "--mode", "ipsec", "--ipsec"),
			out: []string{"over IPsec", "verdict:  drop"}},
		{name: "exclusive table", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "443", "--table", "exclusive"),
			out: []string{"table exclusive", "verdict:  allow"}, notOut: []string{"host's own INPUT rules"}},
		{name: "foreign range excludes source", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22", "--foreign-cidr", "172.16.0.0/12"),
			out: []string{"foreign 172.16.0.0/12", "verdict:  pass"}},
		{name: "ipv6 host, default foreign range", args: ex("--src", "fd00:99::1", "--dst", "2400:6500:60ec:9c00::11", "--proto", "tcp", "--port", "443"),
			out: []string{"eni-f105372af0061d156", "verdict:  pass"}},
		{name: "ipv6 host, foreign v6 range", args: ex("--src", "fd00:99::1", "--dst", "2400:6500:60ec:9c00::11", "--proto", "tcp", "--port", "443", "--foreign-cidr", "fd00::/8"),
			out: []string{"verdict:  allow", "from ::/0"}},
		{name: "ipv6 icmpv6 default", args: ex("--src", "fd00:99::1", "--dst", "2400:6500:60ec:9c00::11", "--proto", "icmpv6", "--foreign-cidr", "fd00::/8"),
			out: []string{"icmpv6 fd00:99::1 -> 2400:6500:60ec:9c00::11 type 128 code 0", "verdict:  drop"}},
		{name: "groups override", args: ex("--src", "10.30.0.5", "--dst", "10.99.0.1", "--proto", "tcp", "--port", "5432", "--groups", "sg-41c9bbb04cf721a80"),
			out: []string{"explicit (all of the host's traffic) groups sg-41c9bbb04cf721a80", "own VPC:  10.20.0.0/16", "verdict:  drop"}},
		{name: "groups override from member", args: ex("--src", "10.20.1.11", "--dst", "10.99.0.1", "--proto", "tcp", "--port", "5432",
			"--groups", "sg-41c9bbb04cf721a80, sg-b238c182ba23a5210", "--vpc-cidr", "10.99.0.0/16"),
			out: []string{"verdict:  allow", "sg-41c9bbb04cf721a80 (db)"}},
		{name: "unknown group", args: ex("--src", "10.30.0.5", "--dst", "10.99.0.1", "--proto", "tcp", "--port", "22", "--groups", "sg-0123456789abcdef0", "--vpc-cidr", "10.99.0.0/16"),
			out: []string{"unknown groups:", "sg-0123456789abcdef0", "verdict:  drop"}},
		{name: "only unknown groups and no VPC", args: ex("--src", "10.30.0.5", "--dst", "10.99.0.1", "--proto", "tcp", "--port", "22", "--groups", "sg-0123456789abcdef0"),
			code: ExitFailure, errHas: "the host's VPC is unknown"},
		{name: "vpc filter", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "443", "--vpc", "vpc-f7fb0634aa419bc31"),
			out: []string{"verdict:  allow"}},
		{name: "expired still answers", args: []string{"explain", "--store", f.expired, "--trusted-key", f.oldPub, "--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "443"},
			out: []string{"verdict:  allow"}, stderr: []string{"warning: the ruleset (serial 42) expired"}},

		// no answer
		{name: "unknown host", args: ex("--src", "10.30.0.5", "--dst", "10.99.0.1", "--proto", "tcp", "--port", "22"),
			code: ExitFailure, errIs: reyes.ErrUnknownHost, errHas: "--groups"},
		{name: "host not in that vpc", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22", "--vpc", "vpc-8a729548306f57f8f"),
			code: ExitFailure, errIs: reyes.ErrUnknownHost},
		{name: "tampered", args: []string{"explain", "--store", f.tampered, "--trusted-key", f.public, "--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22"},
			code: ExitFailure, errIs: sign.ErrBadSignature},
		{name: "untrusted", args: []string{"explain", "--store", f.untrusted, "--trusted-key", f.public, "--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22"},
			code: ExitFailure, errIs: sign.ErrUnknownSigner},
		{name: "missing store object", args: []string{"explain", "--store", filepath.Join(f.dir, "nope"), "--trusted-key", f.public, "--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22"},
			code: ExitFailure, errIs: reyes.ErrNotFound},

		// usage
		{name: "no --store", args: []string{"explain", "--trusted-key", f.public, "--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22"}, code: ExitUsage, errHas: "--store is required"},
		{name: "no --trusted-key", args: []string{"explain", "--store", f.good, "--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22"}, code: ExitUsage, errHas: "--trusted-key is required"},
		{name: "no --src", args: ex("--dst", "10.20.1.10", "--proto", "tcp", "--port", "22"), code: ExitUsage, errHas: "--src is required"},
		{name: "no --dst", args: ex("--src", "10.30.0.5", "--proto", "tcp", "--port", "22"), code: ExitUsage, errHas: "--dst is required"},
		{name: "no --proto", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10"), code: ExitUsage, errHas: "--proto is required"},
		{name: "no --port for tcp", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp"), code: ExitUsage, errHas: "--port is required"},
		{name: "bad src", args: ex("--src", "10.30.0", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22"), code: ExitUsage, errHas: "--src"},
		{name: "bad dst", args: ex("--src", "10.30.0.5", "--dst", "host.example", "--proto", "tcp", "--port", "22"), code: ExitUsage, errHas: "--dst"},
		{name: "zone", args: ex("--src", "fe80::1%eth0", "--dst", "2400:6500:60ec:9c00::11", "--proto", "tcp", "--port", "22"), code: ExitUsage, errHas: "zones"},
		{name: "mixed families", args: ex("--src", "fd00:99::1", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22"), code: ExitUsage, errHas: "different address families"},
		{name: "bad proto", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "sctp-ish"), code: ExitUsage, errHas: "--proto"},
		{name: "proto all", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "-1"), code: ExitUsage, errHas: "--proto"},
		{name: "port out of range", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "udp", "--port", "65536"), code: ExitUsage, errHas: "--port"},
		{name: "port with icmp", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "icmp", "--port", "1"), code: ExitUsage, errHas: "--port is for tcp and udp"},
		{name: "icmp type with tcp", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "1", "--icmp-type", "8"), code: ExitUsage},
		{name: "icmp with ipv6", args: ex("--src", "fd00:99::1", "--dst", "2400:6500:60ec:9c00::11", "--proto", "icmp"), code: ExitUsage, errHas: "use icmpv6"},
		{name: "icmpv6 with ipv4", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "icmpv6"), code: ExitUsage, errHas: "use icmp"},
		{name: "icmp type out of range", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "icmp", "--icmp-type", "256"), code: ExitUsage},
		{name: "port with esp", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "50", "--port", "1"), code: ExitUsage},
		{name: "bad mode", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22", "--mode", "wireguard"), code: ExitUsage, errHas: "--mode"},
		{name: "bad table", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22", "--table", "mine"), code: ExitUsage, errHas: "--table"},
		{name: "bad foreign cidr", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22", "--foreign-cidr", "10.0.0.1/8"), code: ExitUsage, errHas: "host bits"},
		{name: "bad vpc cidr", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22", "--vpc-cidr", "nope"), code: ExitUsage, errHas: "--vpc-cidr"},
		{name: "bad group", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22", "--groups", "db"), code: ExitUsage, errHas: "security group ID"},
		{name: "bad vpc", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22", "--vpc", "main"), code: ExitUsage, errHas: "VPC ID"},
		{name: "vpc with groups", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22", "--vpc", "vpc-f7fb0634aa419bc31", "--groups", "sg-41c9bbb04cf721a80"), code: ExitUsage},
		{name: "positional argument", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22", "extra"), code: ExitUsage},
		{name: "empty repeated value", args: ex("--src", "10.30.0.5", "--dst", "10.20.1.10", "--proto", "tcp", "--port", "22", "--trusted-key", ""), code: ExitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, now) })
	}
}

// TestRunCancelled: a cancelled context stops the fetch with an error.
func TestRunCancelled(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out, errOut bytes.Buffer
	err := Run(ctx, []string{"verify", "--trusted-key", f.public, f.good}, &out, &errOut)
	if !errors.Is(err, context.Canceled) || ExitCode(err) != ExitFailure {
		t.Fatalf("err %v (exit %d), want context.Canceled, exit 1", err, ExitCode(err))
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"flags first", []string{"--force", "a", "b"}, "a b force=true"},
		{"flags between", []string{"a", "--force", "b"}, "a b force=true"},
		{"flags last", []string{"a", "b", "--force"}, "a b force=true"},
		{"double dash", []string{"a", "--", "--force", "b"}, "a --force b force=false"},
		{"none", nil, " force=false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fl := newFlagSet("test")
			force := fl.Bool("force", false, "")
			pos, err := parseInterspersed(fl, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(pos, " ") + " force=" + map[bool]string{true: "true", false: "false"}[*force]; got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestOneExitCodeScheme: reyesctl maps errors to exit statuses with the
// same function as reyes-leader and reyes-follower (it had a scheme of its
// own).
func TestOneExitCodeScheme(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"success", nil, ExitOK},
		{"usage", &UsageError{Cmd: "verify", Err: errors.New("--trusted-key is required")}, ExitUsage},
		{"configuration", fmt.Errorf("%w: scope", reyes.ErrConfig), ExitUsage},
		{"refused", fmt.Errorf("opening: %w", reyes.ErrExpired), ExitFailure},
		{"interrupted", fmt.Errorf("%w: reading: %w", reyes.ErrInterrupted, context.Canceled), ExitFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, same := ExitCode(tc.err), cli.ExitCode(tc.err); got != tc.want || got != same {
				t.Errorf("ExitCode = %d, cli.ExitCode = %d, want %d", got, same, tc.want)
			}
		})
	}
}
