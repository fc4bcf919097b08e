package apply

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/reyes-fw/reyes/render"
)

// Backend is the iptables backend: the nf_tables-based iptables-nft or
// the old x_tables iptables-legacy. Rules loaded through one are invisible
// to the other, so reyes must use the one the host uses.
type Backend string

const (
	// BackendAuto follows the host: the backend of the iptables program
	// on PATH (see DetectBackend).
	BackendAuto Backend = ""
	// BackendNFT is iptables-nft (iptables over nf_tables).
	BackendNFT Backend = "nft"
	// BackendLegacy is iptables-legacy (x_tables).
	BackendLegacy Backend = "legacy"
)

// ErrBackend is wrapped by errors about the iptables backend.
var ErrBackend = errors.New("iptables backend")

// ParseBackend parses "auto" (or ""), "nft" or "legacy".
func ParseBackend(s string) (Backend, error) {
	switch s {
	case "", "auto":
		return BackendAuto, nil
	case "nft", "nf_tables":
		return BackendNFT, nil
	case "legacy":
		return BackendLegacy, nil
	}
	return "", fmt.Errorf("%w: unknown backend %q (want auto, nft or legacy)", ErrBackend, s)
}

// String returns "auto", "nft" or "legacy".
func (b Backend) String() string {
	if b == BackendAuto {
		return "auto"
	}
	return string(b)
}

// versionBackend reads the backend from iptables --version output:
// "iptables v1.8.9 (nf_tables)" or "iptables v1.8.9 (legacy)".
func versionBackend(out string) (Backend, bool) {
	switch {
	case strings.Contains(out, "(nf_tables)"):
		return BackendNFT, true
	case strings.Contains(out, "(legacy)"):
		return BackendLegacy, true
	case strings.HasPrefix(out, "iptables v1.4"), strings.HasPrefix(out, "iptables v1.6"):
		// Before 1.8 there was only x_tables, and no suffix.
		return BackendLegacy, true
	}
	return "", false
}

// multiBackend reads the backend from the name of the file an iptables
// program resolves to, all symbolic links followed: iptables 1.8 and
// later install every program (iptables, iptables-nft, ip6tables-legacy,
// their -save and -restore) as a link to one of two multi-call binaries,
// and Debian's and Red Hat's alternatives switch the plain names by
// re-pointing the link. Any other file (an older release's xtables-multi,
// a wrapper script, a copy) says nothing.
func multiBackend(file string) (Backend, bool) {
	switch filepath.Base(file) {
	case "xtables-nft-multi":
		return BackendNFT, true
	case "xtables-legacy-multi":
		return BackendLegacy, true
	}
	return "", false
}

// linkedBackend returns the backend of program name without running it,
// when r can say which file name runs (a PathResolver) and that file is
// one of iptables' multi-call binaries. found is false otherwise: the
// program is missing, r cannot tell, or the file is something else, and
// only running the program (--version) can say.
func linkedBackend(r Runner, name string) (b Backend, found bool) {
	pr, ok := r.(PathResolver)
	if !ok {
		return "", false
	}
	file, err := pr.ResolvePath(name)
	if err != nil {
		return "", false
	}
	return multiBackend(file)
}

// DetectBackend returns the backend of the host's default iptables: read
// from the multi-call binary the iptables program links to
// (xtables-nft-multi or xtables-legacy-multi) when r is a PathResolver
// that finds one, which costs no process; else as "iptables --version"
// reports it.
func DetectBackend(ctx context.Context, r Runner) (Backend, error) {
	if b, ok := linkedBackend(r, "iptables"); ok {
		return b, nil
	}
	out, err := r.Run(ctx, nil, "iptables", "--version")
	if err != nil {
		return "", fmt.Errorf("%w: detecting: %w", ErrBackend, err)
	}
	b, ok := versionBackend(strings.TrimSpace(string(out)))
	if !ok {
		return "", fmt.Errorf("%w: cannot tell the backend from %q", ErrBackend, strings.TrimSpace(string(out)))
	}
	return b, nil
}

// tools are the programs of one backend and family.
type tools struct {
	iptables string // iptables-nft, ip6tables-legacy, ...
	restore  string // iptables-nft-restore, ...
	save     string // iptables-nft-save, ...
}

// resolveTools picks the programs of backend b for both families: the
// suffixed names (iptables-nft, iptables-legacy) when they exist, else the
// plain names if those report the same backend. b must not be auto. When
// the suffixed program links to b's multi-call binary (linkedBackend),
// nothing runs; else the programs are asked with --version.
func resolveTools(ctx context.Context, r Runner, b Backend) (map[render.Family]tools, error) {
	suffixed := func(base string) string { return base + "-" + string(b) }
	plain := false
	if got, ok := linkedBackend(r, suffixed("iptables")); !ok || got != b {
		var err error
		if plain, err = askTools(ctx, r, b); err != nil {
			return nil, err
		}
	}
	m := map[render.Family]tools{}
	for fam, base := range map[render.Family]string{render.IPv4: "iptables", render.IPv6: "ip6tables"} {
		if plain {
			m[fam] = tools{iptables: base, restore: base + "-restore", save: base + "-save"}
		} else {
			m[fam] = tools{iptables: suffixed(base), restore: suffixed(base) + "-restore", save: suffixed(base) + "-save"}
		}
	}
	return m, nil
}

// askTools finds backend b's programs by running them with --version: the
// suffixed iptables program (plain is false) when it runs and does not
// report another backend, else the plain one (plain is true) when it
// reports b.
func askTools(ctx context.Context, r Runner, b Backend) (plain bool, err error) {
	name := "iptables-" + string(b)
	out, err := r.Run(ctx, nil, name, "--version")
	if err == nil {
		if got, ok := versionBackend(strings.TrimSpace(string(out))); ok && got != b {
			return false, fmt.Errorf("%w: %s reports %q", ErrBackend, name, strings.TrimSpace(string(out)))
		}
		return false, nil
	}
	out2, err2 := r.Run(ctx, nil, "iptables", "--version")
	if err2 != nil {
		return false, fmt.Errorf("%w: neither %s nor iptables can run: %w", ErrBackend, name, err)
	}
	got, ok := versionBackend(strings.TrimSpace(string(out2)))
	if !ok || got != b {
		return false, fmt.Errorf("%w: %s is not installed and iptables is %q", ErrBackend, name, strings.TrimSpace(string(out2)))
	}
	return true, nil
}
