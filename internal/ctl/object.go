package ctl

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/reyes-fw/reyes/render"
	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
	"github.com/reyes-fw/reyes/sign"
)

// objectFlags are the flags of every command that reads a signed object.
type objectFlags struct {
	maxSize   int64
	pathStyle bool
	trusted   stringList
	// maxSkew is how far in the future the signature (and generated_at)
	// may be; 0 means the default. Set by defineFreshness.
	maxSkew, maxValidity time.Duration
}

// defineFreshness defines the follower's freshness flags, for the commands
// that check an object as a follower would.
func (o *objectFlags) defineFreshness(fl *flag.FlagSet) {
	fl.DurationVar(&o.maxSkew, "max-skew", reyes.DefaultMaxSkew, "how far in the future generated_at and the signature may be, as the followers' max_skew `D`")
	fl.DurationVar(&o.maxValidity, "max-validity", reyes.DefaultMaxValidity, "the longest validity followers accept, as their max_validity `D`")
}

// policy is the freshness policy of the flags for scope.
func (o *objectFlags) policy(scope string) reyes.FreshnessPolicy {
	return reyes.FreshnessPolicy{Scope: scope, MaxSkew: o.maxSkew, MaxValidity: o.maxValidity}
}

func (o *objectFlags) define(fl *flag.FlagSet, trustedUsage string) {
	fl.Int64Var(&o.maxSize, "max-size", sign.DefaultMaxSize, "refuse objects larger than `N` bytes")
	fl.BoolVar(&o.pathStyle, "s3-path-style", false, "address S3 as http://endpoint/bucket/key (most S3-compatible servers need it)")
	if trustedUsage != "" {
		fl.Var(&o.trusted, "trusted-key", trustedUsage)
	}
}

// objectCommand is the flags of a command that takes the object flags
// alone (trustedUsage as for define; the key is optional): once they
// check, run does the command.
func objectCommand(cmd, trustedUsage string, run func(ctx context.Context, c *invocation, o objectFlags, args []string) error) func(*invocation, *flag.FlagSet) func(context.Context, []string) error {
	return func(c *invocation, fl *flag.FlagSet) func(context.Context, []string) error {
		var o objectFlags
		o.define(fl, trustedUsage)
		return func(ctx context.Context, args []string) error {
			if err := o.check(cmd, false); err != nil {
				return err
			}
			return run(ctx, c, o, args)
		}
	}
}

func (o *objectFlags) check(cmd string, needTrusted bool) error {
	if o.maxSize <= 0 {
		return &UsageError{Cmd: cmd, Err: fmt.Errorf("--max-size must be positive, got %d", o.maxSize)}
	}
	if o.maxSkew < 0 || o.maxValidity < 0 {
		return &UsageError{Cmd: cmd, Err: fmt.Errorf("--max-skew and --max-validity must not be negative")}
	}
	if needTrusted && len(o.trusted) == 0 {
		return &UsageError{Cmd: cmd, Err: errors.New("--trusted-key is required")}
	}
	return nil
}

// fetch reads the object at url (a path or s3://bucket/key), at most
// o.maxSize bytes, and returns it with the store it came from.
func (o *objectFlags) fetch(ctx context.Context, url string) ([]byte, reyes.Store, error) {
	st, err := reyes.OpenStore(ctx, url, reyes.StoreOptions{MaxSize: o.maxSize, PathStyle: o.pathStyle})
	if err != nil {
		return nil, nil, err
	}
	body, _, err := st.Get(ctx, "")
	if err != nil {
		return nil, nil, err // the stores' errors name the object
	}
	return body, st, nil
}

// opened is a fetched object and the ruleset in it.
type opened struct {
	// verified is nil when the signature was not checked.
	verified *sign.Verified
	payload  []byte
	rs       *ruleset.Ruleset
	// root is the root of a split ruleset (nil for a whole one); rs is
	// then every part joined, each checked against the root.
	root *ruleset.Root
}

// partsOf returns where the parts of the store's root are.
func partsOf(st reyes.Store) (reyes.Objects, error) {
	ps, ok := st.(reyes.PartStore)
	if !ok {
		return nil, fmt.Errorf("%s holds a split ruleset, but its parts cannot be read from it", st)
	}
	return ps.Parts(), nil
}

// open fetches the object at url, verifies it against the trusted keys (or
// only unpacks it when there are none and verify is false) and decodes the
// ruleset strictly.
func (o *objectFlags) open(ctx context.Context, url string, now time.Time, verify bool) (*opened, error) {
	var kr *sign.Keyring
	if verify || len(o.trusted) > 0 {
		var err error
		if kr, err = sign.LoadKeyring(o.trusted...); err != nil {
			return nil, fmt.Errorf("loading trusted keys: %w", err)
		}
	}
	body, st, err := o.fetch(ctx, url)
	if err != nil {
		return nil, err
	}
	var res opened
	if kr != nil {
		v, err := sign.OpenVerified(bytes.NewReader(body), kr, now, sign.WithMaxSize(o.maxSize), o.policy("").SkewOption())
		if err != nil {
			return nil, fmt.Errorf("verifying %s: %w", url, err)
		}
		res.verified, res.payload = v, v.Payload
	} else {
		payload, _, err := sign.Unpack(body)
		if err != nil {
			return nil, fmt.Errorf("unpacking %s: %w", url, err)
		}
		res.payload = payload
	}
	if !ruleset.IsRoot(res.payload) {
		if res.rs, err = ruleset.Decode(res.payload); err != nil {
			return nil, fmt.Errorf("decoding the ruleset in %s: %w", url, err)
		}
		return &res, nil
	}
	if res.root, err = ruleset.DecodeRoot(res.payload, ruleset.Limits{}); err != nil {
		return nil, fmt.Errorf("decoding the root in %s: %w", url, err)
	}
	objs, err := partsOf(st)
	if err != nil {
		return nil, err
	}
	// Every part, each checked against the root (size and SHA-256) before
	// it is parsed, then checked against each other.
	if res.rs, err = ruleset.Join(ctx, res.root, reyes.FetchParts(objs)); err != nil {
		return nil, fmt.Errorf("reading the parts of %s: %w", url, err)
	}
	return &res, nil
}

// ---- verify ----

func verifyCommand() command {
	return command{
		name:     "verify",
		synopsis: "check a signed ruleset as a follower would",
		usage:    "--trusted-key FILE [--trusted-key FILE]... [--scope NAME] [--max-size N] [--max-skew D] [--max-validity D] [--s3-path-style] OBJECT",
		argNames: "OBJECT",
		help: `
Fetches OBJECT, verifies its signature against the trusted public keys
(several for key rotation), decodes the ruleset strictly and checks its
header as a follower does (format, scope, not expired, not generated in the
future, validity not too long; the rollback check needs a follower's state
and is not made). Prints the signer's fingerprint, the scope, serial,
generated_at, not_after and whether the ruleset has expired. Exits non-zero,
naming the reason, when a follower would refuse the object.`,
		flags: func(c *invocation, fl *flag.FlagSet) func(context.Context, []string) error {
			var o objectFlags
			var scope string
			o.define(fl, "trust the public key(s) in `FILE`, as gpg --export writes them (repeatable; required)")
			fl.StringVar(&scope, "scope", "", "the scope `NAME` that followers expect (default: the object's own scope)")
			o.defineFreshness(fl)
			return func(ctx context.Context, args []string) error {
				if err := o.check("verify", true); err != nil {
					return err
				}
				return c.verify(ctx, o, scope, args[0])
			}
		},
	}
}

func (c *invocation) verify(ctx context.Context, o objectFlags, scope, url string) error {
	now := c.now()
	res, err := o.open(ctx, url, now, true)
	if err != nil {
		return err
	}
	h := res.rs.Header
	w := tabwriter.NewWriter(c.stdout, 0, 0, 1, ' ', 0)
	fmt.Fprintf(w, "object:\t%s\n", url)
	printSigner(w, res.verified)
	printHeader(w, res, now)
	if scope == "" {
		scope = h.Scope
	}
	_, cerr := o.policy(scope).Check(h, reyes.SumPayload(res.payload), now, reyes.State{})
	if cerr != nil {
		fmt.Fprintf(w, "status:\tREFUSED: %v\n", cerr)
	} else {
		fmt.Fprintf(w, "status:\tOK: followers of scope %q accept it (unless they already accepted a newer one)\n", scope)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("checking %s: %w", url, cerr)
	}
	return nil
}

func printSigner(w io.Writer, v *sign.Verified) {
	if v == nil {
		fmt.Fprintf(w, "signer:\tUNVERIFIED: no --trusted-key given, the signature was NOT checked; anyone could have written this\n")
		return
	}
	fmt.Fprintf(w, "signer:\t%s (good signature)\n", v.Signer)
	if v.Key != v.Signer {
		fmt.Fprintf(w, "signing subkey:\t%s\n", v.Key)
	}
	fmt.Fprintf(w, "signed at:\t%s\n", v.SignedAt.UTC().Format(time.RFC3339))
}

func printHeader(w io.Writer, res *opened, now time.Time) {
	rs := res.rs
	h := rs.Header
	if res.root != nil {
		var size int64
		for _, p := range res.root.Parts {
			size += p.Size
		}
		fmt.Fprintf(w, "format:\t%s (%s), %d parts, %d bytes, every part checked\n", ruleset.RootFormat, h.Type, len(res.root.Parts), size)
		if c := res.root.Changes; c != nil {
			// A follower whose status says it accepted the root of this
			// SHA-256 last may take the list instead of reading parts.
			fmt.Fprintf(w, "changes:\tsince the root whose payload has SHA-256 %x: about %d records (a filter of %d bytes, k=%d)\n", c.Since, c.Estimate(), len(c.Bits), c.K)
			if e := res.root.EarlierChanges; e != nil {
				fmt.Fprintf(w, "earlier changes:\tsince the root whose payload has SHA-256 %x: about %d records (a filter of %d bytes, k=%d)\n", e.Since, e.Estimate(), len(e.Bits), e.K)
			}
		} else {
			fmt.Fprintf(w, "changes:\tnone listed (followers read the parts that changed)\n")
		}
	} else {
		fmt.Fprintf(w, "format:\t%s (%s)\n", h.Format, h.Type)
	}
	fmt.Fprintf(w, "scope:\t%s\n", h.Scope)
	fmt.Fprintf(w, "serial:\t%d\n", h.Serial)
	fmt.Fprintf(w, "generated_at:\t%s (%s)\n", h.GeneratedAt.UTC().Format(time.RFC3339Nano), ago(now.Sub(h.GeneratedAt)))
	fmt.Fprintf(w, "not_after:\t%s\n", h.NotAfter.UTC().Format(time.RFC3339Nano))
	if now.After(h.NotAfter) {
		fmt.Fprintf(w, "expired:\tYES, %s ago\n", round(now.Sub(h.NotAfter)))
	} else {
		fmt.Fprintf(w, "expired:\tno (valid for %s more)\n", round(h.NotAfter.Sub(now)))
	}
	fmt.Fprintf(w, "contents:\t%d VPCs, %d groups, %d interfaces\n", len(rs.VPCs), len(rs.Groups), len(rs.Interfaces))
}

// ago describes an age: "5m3s ago", or "2m0s in the future".
func ago(d time.Duration) string {
	if d < 0 {
		return round(-d) + " in the future"
	}
	return "age " + round(d)
}

func round(d time.Duration) string { return d.Round(time.Second).String() }

// ---- inspect ----

func inspectCommand() command {
	return command{
		name:     "inspect",
		synopsis: "summarise a signed ruleset: header, age, groups and members",
		usage:    "[--trusted-key FILE]... [--max-size N] [--s3-path-style] OBJECT",
		argNames: "OBJECT",
		help: `
Fetches OBJECT, decodes the ruleset strictly and prints its header, its age
(now - generated_at), the number of VPCs and interfaces, and each security
group: ID, name, VPC, region, rule count (or "excluded") and member count
(addresses and delegated prefixes), then the ruleset's findings, if any:
what it cannot mirror as AWS applies it (references into accounts that were
not read, stale references, load balancers that preserve client addresses),
counted by kind, with the accounts not read. With --trusted-key the signature is verified first and any failure is an
error; without, nothing is verified and the output says UNVERIFIED.`,
		flags: objectCommand("inspect", "verify against the public key(s) in `FILE` first (repeatable)",
			func(ctx context.Context, c *invocation, o objectFlags, args []string) error {
				return c.inspect(ctx, o, args[0])
			}),
	}
}

func (c *invocation) inspect(ctx context.Context, o objectFlags, url string) error {
	now := c.now()
	res, err := o.open(ctx, url, now, false)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(c.stdout, 0, 0, 1, ' ', 0)
	fmt.Fprintf(w, "object:\t%s\n", url)
	printSigner(w, res.verified)
	printHeader(w, res, now)
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout)
	x := ruleset.NewIndex(res.rs)
	w = tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "GROUP\tNAME\tVPC\tREGION\tRULES\tMEMBERS\n")
	for _, g := range res.rs.Groups {
		rules := fmt.Sprint(len(g.Rules))
		if g.Excluded {
			rules = "excluded"
		}
		// Names come from AWS and may hold anything, terminal escapes too.
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\n", g.ID, render.Sanitize(g.Name, 64), g.VPC, g.Region, rules, len(x.Members(g.ID))+len(x.MemberPrefixes(g.ID)))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return printFindings(c.stdout, res.rs.Findings)
}

// printFindings lists what the ruleset could not mirror as AWS applies it,
// with a count per kind and the accounts referred to that were not read.
func printFindings(out io.Writer, fs []ruleset.Finding) error {
	if len(fs) == 0 {
		return nil
	}
	counts := map[string]int{}
	unread := map[string]bool{}
	for _, f := range fs {
		counts[f.Kind]++
		if f.Kind == ruleset.FindingUnreadAccount {
			unread[f.Account] = true
		}
	}
	fmt.Fprintf(out, "\nFINDINGS (%d): what this ruleset cannot mirror as AWS applies it\n", len(fs))
	for _, k := range []string{ruleset.FindingUnreadAccount, ruleset.FindingStaleReference, ruleset.FindingClientIP} {
		if counts[k] > 0 {
			fmt.Fprintf(out, "  %s: %d\n", k, counts[k])
		}
	}
	if len(unread) > 0 {
		accts := slices.Sorted(maps.Keys(unread))
		fmt.Fprintf(out, "  accounts referred to but not read: %s\n", strings.Join(accts, ","))
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "KIND\tGROUP\tREF\tACCOUNT\tDETAIL\n")
	for _, f := range fs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", f.Kind, f.Group, orDash(f.Ref), orDash(f.Account), render.Sanitize(f.Detail, 512))
	}
	return w.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ---- unpack ----

// Names of the files unpack writes: for a whole ruleset the payload and
// its signature; for a split ruleset the root and its signature, and
// every part under its own name beside them.
const (
	PayloadFile       = "payload.json"
	SignatureFile     = "payload.json.asc"
	RootFile          = "root"
	RootSignatureFile = "root.asc"
	// A compressed root (ruleset.CompressRoot, what leaders sign) is
	// written as signed, with its signature, beside its text (RootFile).
	RootGzipFile          = "root.gz"
	RootGzipSignatureFile = "root.gz.asc"
)

func unpackCommand() command {
	return command{
		name:     "unpack",
		synopsis: "split a signed object into its payload and signature (and parts) for gpg --verify and sha256sum -c",
		usage:    "[--max-size N] [--s3-path-style] OBJECT DIR",
		argNames: "OBJECT DIR",
		help: `
Writes the payload of OBJECT to DIR/payload.json and its detached OpenPGP
signature to DIR/payload.json.asc (DIR is created if missing; both files are
replaced atomically). unpack does NOT verify anything: it is the way to check
an object with stock GnuPG instead of reyes, after importing the leader's
public key:

  gpg --import leader.pub
  gpg --verify DIR/payload.json.asc DIR/payload.json

When OBJECT is the root of a split ruleset, unpack writes DIR/root (the
root's text: a header and one sha256sum line per part) and every part the
root names into DIR under its own name. Leaders sign the root compressed
(gzip): unpack writes the signed bytes to DIR/root.gz and the signature to
DIR/root.gz.asc (an uncompressed root's signature goes to DIR/root.asc),
so that stock tools check all of it:

  gpg --verify DIR/root.gz.asc DIR/root.gz
  gunzip -c DIR/root.gz | cmp - DIR/root
  cd DIR && sha256sum -c root`,
		flags: objectCommand("unpack", "",
			func(ctx context.Context, c *invocation, o objectFlags, args []string) error {
				return c.unpack(ctx, o, args[0], args[1])
			}),
	}
}

func (c *invocation) unpack(ctx context.Context, o objectFlags, url, dir string) error {
	body, st, err := o.fetch(ctx, url)
	if err != nil {
		return err
	}
	payload, sig, err := sign.Unpack(body)
	if err != nil {
		return fmt.Errorf("unpacking %s: %w", url, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("unpacking: %w", err)
	}
	if ruleset.IsRoot(payload) {
		return c.unpackRoot(ctx, st, url, dir, payload, sig)
	}
	pp, sp := filepath.Join(dir, PayloadFile), filepath.Join(dir, SignatureFile)
	if err := writeFile(pp, payload, 0o644, true); err != nil {
		return err
	}
	if err := writeFile(sp, sig, 0o644, true); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %s (%d bytes) and %s; nothing was verified\ncheck with: gpg --verify %s %s\n", pp, len(payload), sp, sp, pp)
	return nil
}

// unpackRoot writes a split ruleset's root, its signature and its parts.
// The root is parsed (strictly) only to know the parts' names and sizes;
// nothing is verified, as for a whole object.
func (c *invocation) unpackRoot(ctx context.Context, st reyes.Store, url, dir string, payload, sig []byte) error {
	root, err := ruleset.DecodeRoot(payload, ruleset.Limits{})
	if err != nil {
		return fmt.Errorf("decoding the root in %s: %w", url, err)
	}
	objs, err := partsOf(st)
	if err != nil {
		return err
	}
	text, err := ruleset.RootText(payload)
	if err != nil {
		return fmt.Errorf("decoding the root in %s: %w", url, err)
	}
	rp, signed, sp := filepath.Join(dir, RootFile), filepath.Join(dir, RootFile), filepath.Join(dir, RootSignatureFile)
	check := ""
	if len(text) != len(payload) || string(text) != string(payload) {
		signed, sp = filepath.Join(dir, RootGzipFile), filepath.Join(dir, RootGzipSignatureFile)
		if err := writeFile(signed, payload, 0o644, true); err != nil {
			return err
		}
		check = fmt.Sprintf(" && gunzip -c %s | cmp - %s", signed, rp)
	}
	if err := writeFile(rp, text, 0o644, true); err != nil {
		return err
	}
	if err := writeFile(sp, sig, 0o644, true); err != nil {
		return err
	}
	get := reyes.FetchParts(objs)
	var total int64
	for _, ref := range root.Parts {
		b, err := get(ctx, ref)
		if err != nil {
			return fmt.Errorf("unpacking %s: %w", url, err)
		}
		if err := writeFile(filepath.Join(dir, ref.Name), b, 0o644, true); err != nil {
			return err
		}
		total += int64(len(b))
	}
	wrote := rp + ", " + sp
	if signed != rp {
		wrote = signed + ", " + sp + ", " + rp
	}
	fmt.Fprintf(c.stdout, "wrote %s and %d parts (%d bytes) into %s; nothing was verified\ncheck with: gpg --verify %s %s%s && (cd %s && sha256sum -c %s)\n",
		wrote, len(root.Parts), total, dir, sp, signed, check, dir, RootFile)
	return nil
}
