package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/reyes-fw/reyes/render"
)

// Backend is the iptables backend: the nf_tables-based iptables-nft or
// the old x_tables iptables-legacy. Rules loaded through one are invisible
// to the other, so reyes must use the one the host uses.
type Backend string

const (
	// BackendAuto follows the host: whatever "iptables --version" reports.
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

// DetectBackend returns the backend of the host's default iptables, as
// "iptables --version" reports it.
func DetectBackend(ctx context.Context, r Runner) (Backend, error) {
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
// plain names if those report the same backend. b must not be auto.
func resolveTools(ctx context.Context, r Runner, b Backend) (map[render.Family]tools, error) {
	suffixed := func(base string) string { return base + "-" + string(b) }
	out, err := r.Run(ctx, nil, suffixed("iptables"), "--version")
	plain := false
	if err != nil {
		out2, err2 := r.Run(ctx, nil, "iptables", "--version")
		if err2 != nil {
			return nil, fmt.Errorf("%w: neither %s nor iptables can run: %w", ErrBackend, suffixed("iptables"), err)
		}
		got, ok := versionBackend(strings.TrimSpace(string(out2)))
		if !ok || got != b {
			return nil, fmt.Errorf("%w: %s is not installed and iptables is %q", ErrBackend, suffixed("iptables"), strings.TrimSpace(string(out2)))
		}
		plain = true
	} else if got, ok := versionBackend(strings.TrimSpace(string(out))); ok && got != b {
		return nil, fmt.Errorf("%w: %s reports %q", ErrBackend, suffixed("iptables"), strings.TrimSpace(string(out)))
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
