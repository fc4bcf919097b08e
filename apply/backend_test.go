package apply

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reyes-fw/reyes/apply/applytest"
	"github.com/reyes-fw/reyes/render"
)

func TestMultiBackend(t *testing.T) {
	for _, c := range []struct {
		file string
		want Backend
		ok   bool
	}{
		{"/usr/sbin/xtables-nft-multi", BackendNFT, true},
		{"/usr/sbin/xtables-legacy-multi", BackendLegacy, true},
		{"/sbin/xtables-multi", "", false},        // before 1.8: ask
		{"/usr/sbin/iptables-wrapper", "", false}, // a script that decides at run time
		{"/usr/sbin/iptables", "", false},         // a copy, not a link
		{"/opt/xtables-nft-multi.sh", "", false},
	} {
		t.Run(filepath.Base(c.file), func(t *testing.T) {
			got, ok := multiBackend(c.file)
			if got != c.want || ok != c.ok {
				t.Errorf("multiBackend(%q) = %q %v, want %q %v", c.file, got, ok, c.want, c.ok)
			}
		})
	}
}

// binDir makes a directory of programs as a Debian host has them: the
// multi-call binaries (empty executables), the suffixed names linking to
// them, and the plain names linking through an alternatives directory to
// the suffixed names of backend def. Extra names map to files to create
// (executable scripts) instead.
func binDir(t *testing.T, def Backend, scripts ...string) string {
	t.Helper()
	dir := t.TempDir()
	sbin, alt := filepath.Join(dir, "sbin"), filepath.Join(dir, "alternatives")
	for _, d := range []string{sbin, alt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name string) {
		if err := os.WriteFile(filepath.Join(sbin, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) {
		if err := os.Symlink(target, name); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range scripts {
		write(s)
	}
	for _, b := range []Backend{BackendNFT, BackendLegacy} {
		multi := "xtables-" + string(b) + "-multi"
		write(multi)
		for _, p := range []string{"iptables", "ip6tables"} {
			for _, suffix := range []string{"", "-save", "-restore"} {
				name := p + "-" + string(b) + suffix
				if !slices.Contains(scripts, name) {
					link(multi, filepath.Join(sbin, name)) // relative, as Debian's are
				}
			}
		}
	}
	for _, p := range []string{"iptables", "ip6tables"} {
		for _, suffix := range []string{"", "-save", "-restore"} {
			name := p + suffix
			if slices.Contains(scripts, name) {
				continue
			}
			link(filepath.Join(sbin, p+"-"+string(def)+suffix), filepath.Join(alt, name))
			link(filepath.Join(alt, name), filepath.Join(sbin, name))
		}
	}
	return sbin
}

func TestExecRunnerResolvePath(t *testing.T) {
	sbin := binDir(t, BackendLegacy, "iptables-wrapper")
	empty := t.TempDir()
	for _, c := range []struct {
		name    string
		r       ExecRunner
		path    string // the process's PATH
		program string
		want    string // base name of the file; "" for an error
	}{
		{"plain name through alternatives", ExecRunner{}, sbin, "iptables", "xtables-legacy-multi"},
		{"suffixed name", ExecRunner{}, empty + ":" + sbin, "ip6tables-nft-restore", "xtables-nft-multi"},
		{"a script stays itself", ExecRunner{}, sbin, "iptables-wrapper", "iptables-wrapper"},
		{"not on PATH", ExecRunner{}, empty, "iptables", ""},
		{"a directory is not a program", ExecRunner{}, filepath.Dir(sbin), "sbin", ""},
		{"namespace: PATH from Env", ExecRunner{Netns: "x", Env: []string{"PATH=" + empty, "PATH=" + sbin}}, empty, "iptables-nft", "xtables-nft-multi"},
		{"namespace: the process's PATH without one", ExecRunner{Netns: "x"}, sbin, "iptables", "xtables-legacy-multi"},
		{"no namespace: Env's PATH is not exec's", ExecRunner{Env: []string{"PATH=" + sbin}}, empty, "iptables", ""},
		{"a path with a slash", ExecRunner{}, empty, filepath.Join(sbin, "iptables"), "xtables-legacy-multi"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("PATH", c.path)
			got, err := c.r.ResolvePath(c.program)
			switch {
			case c.want == "" && err == nil:
				t.Errorf("ResolvePath(%q) = %q, want an error", c.program, got)
			case c.want != "" && err != nil:
				t.Errorf("ResolvePath(%q): %v", c.program, err)
			case c.want != "" && filepath.Base(got) != c.want:
				t.Errorf("ResolvePath(%q) = %q, want .../%s", c.program, got, c.want)
			}
		})
	}
}

// linkRunner is the fake kernel with a PathResolver: names resolve to the
// files in links; others are not found.
type linkRunner struct {
	*applytest.Kernel
	links map[string]string
}

func (l linkRunner) ResolvePath(name string) (string, error) {
	if f, ok := l.links[name]; ok {
		return f, nil
	}
	return "", exec.ErrNotFound
}

// TestBackendFromLinks: the backend and its programs are read from the
// multi-call binary the programs link to, and no program runs; when they
// link elsewhere (or the Runner cannot tell) the programs are asked with
// --version, as before.
func TestBackendFromLinks(t *testing.T) {
	ctx := context.Background()
	nft := map[string]string{"iptables": "/usr/sbin/xtables-nft-multi", "iptables-nft": "/usr/sbin/xtables-nft-multi",
		"iptables-legacy": "/usr/sbin/xtables-legacy-multi"}
	for _, c := range []struct {
		name    string
		kernel  string // what --version reports
		links   map[string]string
		force   Backend
		want    Backend
		tool    string // the IPv4 restore program
		calls   []string
		wantErr bool
	}{
		{name: "auto, linked", kernel: "nft", links: nft, want: BackendNFT, tool: "iptables-nft-restore"},
		{name: "forced legacy, linked", kernel: "nft", links: nft, force: BackendLegacy, want: BackendLegacy, tool: "iptables-legacy-restore"},
		{name: "auto, a wrapper script: asked", kernel: "legacy",
			links: map[string]string{"iptables": "/usr/sbin/iptables-wrapper", "iptables-legacy": "/usr/sbin/xtables-legacy-multi"},
			want:  BackendLegacy, tool: "iptables-legacy-restore", calls: []string{"iptables --version"}},
		{name: "auto, not a PathResolver: asked", kernel: "nft", want: BackendNFT, tool: "iptables-nft-restore",
			calls: []string{"iptables --version", "iptables-nft --version"}},
		{name: "forced, the suffixed program links to the other backend: asked", kernel: "nft",
			links: map[string]string{"iptables-nft": "/usr/sbin/xtables-legacy-multi"}, force: BackendNFT, want: BackendNFT,
			tool: "iptables-nft-restore", calls: []string{"iptables-nft --version"}},
		{name: "forced, nothing found: asked", kernel: "legacy", links: map[string]string{}, force: BackendLegacy,
			want: BackendLegacy, tool: "iptables-legacy-restore", calls: []string{"iptables-legacy --version"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := applytest.New(c.kernel)
			var r Runner = k
			if c.links != nil {
				r = linkRunner{k, c.links}
			}
			opts := Options{Runner: r, Backend: c.force}
			b, tl, err := opts.tools(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if b != c.want || tl[render.IPv4].restore != c.tool || tl[render.IPv6].restore != "ip6"+strings.TrimPrefix(c.tool, "ip") {
				t.Errorf("backend %q, tools %+v; want %q, %s", b, tl, c.want, c.tool)
			}
			var got []string
			for _, call := range k.Calls() {
				got = append(got, call.String())
			}
			if !slices.Equal(got, c.calls) {
				t.Errorf("ran %q, want %q", got, c.calls)
			}
		})
	}
}

// TestFirstApplyLinkedBackendCommands: with a Runner that resolves the
// programs to their multi-call binary, a first apply runs no --version:
// 2 reads (each family's table) and 3 changes, where the floor is 4
// changes (ipset restore and iptables-restore per family).
func TestFirstApplyLinkedBackendCommands(t *testing.T) {
	ctx := context.Background()
	k := applytest.New("nft")
	opts := fakeOpts(t, k)
	opts.Runner = linkRunner{k, map[string]string{"iptables": "/usr/sbin/xtables-nft-multi", "iptables-nft": "/usr/sbin/xtables-nft-multi"}}
	got := firstApplyCalls(t, ctx, opts, k, 2)
	want := []string{
		"ip6tables-nft-save -t filter",
		"iptables-nft-save -t filter",
		"ipset restore",
		"iptables-nft-restore --wait --noflush",
		"ip6tables-nft-restore --wait --noflush",
	}
	if !slices.Equal(got, want) {
		t.Errorf("first apply ran\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestLinkedBackendMatchesVersion: on this host, for every iptables
// program installed, the backend read from its links is the one it
// reports with --version (the real tool as oracle).
func TestLinkedBackendMatchesVersion(t *testing.T) {
	ctx := context.Background()
	r := ExecRunner{}
	n := 0
	for _, name := range []string{"iptables", "ip6tables", "iptables-nft", "iptables-legacy", "ip6tables-nft", "ip6tables-legacy"} {
		if _, err := exec.LookPath(name); errors.Is(err, exec.ErrNotFound) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			out, err := r.Run(ctx, nil, name, "--version")
			if err != nil {
				t.Fatal(err)
			}
			want, ok := versionBackend(strings.Replace(strings.TrimSpace(string(out)), "ip6tables", "iptables", 1))
			if !ok {
				t.Fatalf("%s --version: %q", name, out)
			}
			got, linked := linkedBackend(r, name)
			if !linked {
				t.Skipf("%s is not a link to a multi-call binary here", name)
			}
			if got != want {
				t.Errorf("%s links to the %s backend; --version says %s", name, got, want)
			}
		})
		n++
	}
	if n == 0 {
		t.Skip("no iptables installed")
	}
}
