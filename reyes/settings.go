package reyes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/reyes-fw/reyes/apply"
	"github.com/reyes-fw/reyes/render"
)

// settingsFormat versions the settings document: a follower that hashes
// its settings another way re-applies once, never skips wrongly.
const settingsFormat = "reyes.settings/v1"

// settingsDoc is every local setting of a Follower that shapes the plan
// or the trust decision, in a canonical form. Its SHA-256 is recorded with
// each completed apply; a run whose settings hash differs does not trust
// the conditional GET's "not modified" and verifies, renders and applies
// again.
type settingsDoc struct {
	Format string `json:"format"`
	// Trust: the pinned keys (fingerprints and digests of their public
	// parts) and the size cap.
	Trusted []string `json:"trusted"`
	MaxSize int64    `json:"max_size"`
	// Freshness, with defaults resolved so that "0" and the default
	// compare equal.
	Scope       string        `json:"scope"`
	MaxSkew     time.Duration `json:"max_skew"`
	MaxValidity time.Duration `json:"max_validity"`
	// Identity: what the operator configured (the identity found is
	// checked apart, see identityProbe).
	Groups               []string       `json:"groups"`
	Addrs                []netip.Addr   `json:"addrs"`
	VPCCIDRs             []netip.Prefix `json:"vpc_cidrs"`
	VPCID                string         `json:"vpc_id"`
	DisableIMDS          bool           `json:"disable_imds"`
	IMDSEndpoint         string         `json:"imds_endpoint"`
	DisableAddressLookup bool           `json:"disable_address_lookup"`
	// Render: every render option (mode, table, foreign ranges, logging,
	// fail-safe, baseline). render.Options is encoded whole, so an option
	// added to it later is covered without a change here.
	Render render.Options `json:"render"`
	// Apply: what shapes the kernel beyond the plan.
	Backend  apply.Backend     `json:"backend"`
	FailSafe []render.FailSafe `json:"apply_fail_safe"`
}

// settingsDigest returns the hex SHA-256 of the follower's settings
// document.
func (f *Follower) settingsDigest() string {
	d := settingsDoc{
		Format:               settingsFormat,
		MaxSize:              f.maxSize(),
		Scope:                f.Freshness.Scope,
		MaxSkew:              f.Freshness.MaxSkew,
		MaxValidity:          f.Freshness.MaxValidity,
		Groups:               sortedClone(f.Identity.Groups, strings.Compare),
		Addrs:                sortedClone(f.Identity.Addrs, netip.Addr.Compare),
		VPCCIDRs:             sortedClone(f.Identity.VPCCIDRs, comparePrefix),
		VPCID:                f.Identity.VPCID,
		DisableIMDS:          f.Identity.DisableIMDS,
		IMDSEndpoint:         f.Identity.IMDSEndpoint,
		DisableAddressLookup: f.Identity.DisableAddressLookup,
		Render:               f.Render,
		Backend:              f.Apply.Backend,
		FailSafe:             f.Apply.FailSafe,
	}
	if d.MaxSkew <= 0 {
		d.MaxSkew = DefaultMaxSkew
	}
	if d.MaxValidity <= 0 {
		d.MaxValidity = DefaultMaxValidity
	}
	if d.IMDSEndpoint == "" && !d.DisableIMDS {
		d.IMDSEndpoint = DefaultIMDSEndpoint
	}
	if d.Render.ForeignCIDRs == nil {
		d.Render.ForeignCIDRs = render.DefaultForeignCIDRs
	}
	if f.Trusted != nil {
		// The keys' whole public part, not only their fingerprints: a
		// revocation imported into the trusted key file changes the trust
		// decision and not the fingerprint.
		d.Trusted = append(f.Trusted.Fingerprints(), f.Trusted.KeyDigests()...)
		slices.Sort(d.Trusted)
	}
	b, err := json.Marshal(d)
	if err != nil {
		// Every field is plain data; this cannot fail. Should it ever, an
		// empty digest never equals a recorded one: the run applies.
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// identityProbe returns a digest of what the host's identity was found
// from, for the identity method last used, cheaply enough for a poll that
// found the object unchanged: the host's own addresses for the address
// lookup, the metadata service's view of the host for IMDS (only when
// withIMDS, as it costs a few HTTP requests). Explicit identities are
// covered by the settings. It returns "" when it cannot tell (the caller
// then keeps what it has).
func (f *Follower) identityProbe(ctx context.Context, method IdentityMethod, withIMDS bool) string {
	opts := f.identity()
	switch method {
	case IdentityAddresses:
		list := opts.InterfaceAddrs
		if list == nil {
			list = localAddrs
		}
		addrs, err := list()
		if err != nil {
			opts.Logger.Debug("listing the host's addresses for the identity check", "err", err)
			return ""
		}
		return hashJSON(sortedClone(addrs, netip.Addr.Compare))
	case IdentityIMDS:
		if !withIMDS {
			return ""
		}
		host, err := newIMDS(opts).host(ctx)
		if err != nil {
			opts.Logger.Debug("asking the metadata service for the identity check", "err", err)
			return ""
		}
		return hostDigest(host, opts.VPCCIDRs)
	}
	return ""
}

// recordedIdentity returns the digest to record after an apply whose host
// was found by src: the same digest identityProbe returns while nothing
// changed.
func (f *Follower) recordedIdentity(ctx context.Context, host render.Host, src IdentitySource) string {
	switch src.Method {
	case IdentityIMDS:
		return hostDigest(host, nil)
	case IdentityAddresses:
		return f.identityProbe(ctx, IdentityAddresses, false)
	}
	return ""
}

// hostDigest hashes a host view, with vpcCIDRs replacing its VPC CIDRs
// when given (as Identify does).
func hostDigest(h render.Host, vpcCIDRs []netip.Prefix) string {
	if len(vpcCIDRs) > 0 {
		h.VPCCIDRs = slices.Clone(vpcCIDRs)
	}
	return hashJSON(h)
}

// kernelRecordDigest hashes apply's record of what it loaded (its
// apply-*.json files in the state directory), whatever their format: a
// record that changed or vanished since the last apply (reyesctl remove,
// another tool, a restore from backup) means the kernel may not hold what
// the follower applied.
//
// The digest also names the kernel the record is about: the boot and the
// network namespace. apply's record outlives them (the state directory is
// on disk), the rules do not: after a reboot, or in a network namespace
// made anew, the same record describes an empty kernel, and the next run
// must load the rules at once rather than say "unchanged" until a drift
// check is due (or never, with drift checks off).
func kernelRecordDigest(dir string) string {
	// apply-ipv4.json and, while a killed run's change is not committed,
	// apply-ipv4.json.new: then apply distrusts its record, and so must
	// "unchanged".
	paths, err := filepath.Glob(filepath.Join(dir, "apply-*.json*"))
	if err != nil {
		return ""
	}
	slices.Sort(paths)
	h := sha256.New()
	fmt.Fprintf(h, "kernel %s\n", kernelInstance())
	for _, p := range paths {
		b, err := readCapped(p, 1<<30) // never a FIFO's endless wait
		if err != nil {
			return "unreadable"
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(p), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func hashJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func sortedClone[T any](s []T, cmp func(a, b T) int) []T {
	if s == nil {
		return nil
	}
	c := slices.Clone(s)
	slices.SortFunc(c, cmp)
	return c
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// Where kernelInstance reads the boot and the network namespace.
const (
	procBootID = "/proc/sys/kernel/random/boot_id"
	procNetNS  = "/proc/self/ns/net"
)

// kernelInstance names the running kernel's boot and this process's
// network namespace (device and inode of its nsfs file, and its cookie),
// "" for what cannot be read. The inode alone does not do: a namespace
// made anew (a container restarted) may get the number of the one it
// replaces, which the kernel freed and hands out again; the cookie is
// never reused within a boot.
func kernelInstance() string {
	boot, _ := os.ReadFile(procBootID)
	ns := ""
	if fi, err := os.Stat(procNetNS); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ns = fmt.Sprintf("%d:%d", st.Dev, st.Ino)
		}
	}
	return strings.TrimSpace(string(boot)) + " netns " + ns + " cookie " + netnsCookie()
}
