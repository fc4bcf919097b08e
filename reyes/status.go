package reyes

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/reyes-fw/reyes/render"
)

// StatusFormat is the format identifier of the status file.
const StatusFormat = "reyes.status/v1"

// StatusFile is the name of the status file inside the state directory.
const StatusFile = "status.json"

// maxStatusSize caps the status file; a real one is a few kilobytes.
const maxStatusSize = 1 << 20

// Stage names the step of a follower run that failed: the failures metric
// counts by it, and the status file records it.
type Stage string

// The stages, in the order a run meets them.
const (
	StageConfig    Stage = "config"    // the configuration (file, flags, keys, store URL)
	StageLock      Stage = "lock"      // another run holds the state lock
	StageState     Stage = "state"     // reading or writing the state directory
	StageStore     Stage = "store"     // fetching the object
	StageSignature Stage = "signature" // opening the signed object: signer, signature, size
	StageDecode    Stage = "decode"    // decoding the verified payload as a ruleset
	StageFreshness Stage = "freshness" // scope, expiry, validity, clock skew, an expired unchanged object
	StageRollback  Stage = "rollback"  // older than (or other content than) the last accepted serial
	StageIdentity  Stage = "identity"  // finding the host
	StageRender    Stage = "render"    // rendering the plan
	StageApply     Stage = "apply"     // loading the kernel, or checking it for drift
)

// RunResult is how a follower run ended.
type RunResult string

// The results of a run.
const (
	ResultApplied   RunResult = "applied"   // a ruleset was verified and applied (the kernel may not have needed a change)
	ResultUnchanged RunResult = "unchanged" // the object, settings and identity were those of the last apply
	ResultPaused    RunResult = "paused"    // the flag file paused the run
	ResultFailed    RunResult = "failed"    // refused or failed; the kernel kept the last good rules
)

// Status is what the follower records about itself in the state directory
// after every run (not in dry-run), for "reyesctl status" and for the
// metrics of the next run: what is loaded, the last run, the last drift
// check. The rollback protection lives in [State]; but Loaded, when it
// matches the state (same digest, serial and acceptance time), is what the
// next run's shortcuts trust: its Parts and Keys decide which cached parts
// stand for the current records and whether a new root's change list
// leaves the plan as it is. A status that does not match the state makes
// the next run take the full path, never a shorter one.
type Status struct {
	Format string `json:"format"`
	// LastRun is the last run.
	LastRun *RunRecord `json:"last_run,omitempty"`
	// LastSuccess and LastFailure are when a run last succeeded (applied
	// or unchanged) and last failed.
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastFailure time.Time `json:"last_failure,omitzero"`
	// Loaded is the ruleset the last completed apply loaded.
	Loaded *LoadedRecord `json:"loaded,omitempty"`
	// DriftCheck is the last time the kernel was compared with (or made
	// to hold) the applied rules.
	DriftCheck *DriftRecord `json:"drift_check,omitempty"`
}

// RunRecord describes one follower run.
type RunRecord struct {
	At       time.Time `json:"at"`
	Result   RunResult `json:"result"`
	Stage    Stage     `json:"stage,omitempty"` // failed runs only
	Error    string    `json:"error,omitempty"`
	Duration float64   `json:"duration_seconds"`
	// StoreBytes is what the run read from the store (root or whole
	// object, and parts); PartsFetched and PartsCached count the parts of
	// a split ruleset read from the store and from the local cache.
	StoreBytes   int64 `json:"store_bytes"`
	PartsFetched int   `json:"parts_fetched,omitempty"`
	PartsCached  int   `json:"parts_cached,omitempty"`
	// Version is the follower binary's version (internal/version).
	Version string `json:"version,omitempty"`
}

// LoadedRecord describes the ruleset the last completed apply loaded, and
// the host it was rendered for.
type LoadedRecord struct {
	Scope       string    `json:"scope"`
	Serial      uint64    `json:"serial"`
	GeneratedAt time.Time `json:"generated_at"`
	NotAfter    time.Time `json:"not_after"`
	AppliedAt   time.Time `json:"applied_at"`
	// AcceptedAt is when a later root that left this host's plan as it
	// was (FollowerResult.PlanUnchanged) was accepted; zero until then.
	// Scope, Serial, GeneratedAt, NotAfter, Digest and Signer are that
	// root's.
	AcceptedAt time.Time `json:"accepted_at,omitzero"`
	// Parts names the parts of the split ruleset the plan was made from,
	// sorted (none for a whole ruleset). A root that lists all of them
	// makes the same plan for the same host and settings.
	Parts []string `json:"parts,omitempty"`
	// Keys names the records of those parts the plan was made from
	// (ruleset.ViewKey), sorted: a later root whose change list holds
	// none of them makes the same plan.
	Keys []string `json:"keys,omitempty"`
	// Digest is the SHA-256 of the verified payload.
	Digest Digest `json:"sha256"`
	// Signer is the fingerprint of the primary key that signed it. When
	// that key is no longer trusted (rotated out after a leak), its serial
	// no longer binds the follower: only its generation time does.
	Signer string `json:"signer,omitempty"`
	// Identity is how the host was found, and what it was found to be.
	Identity IdentityRecord `json:"identity"`
	// Table and Mode are the render options' table and filter modes.
	Table string `json:"table"`
	Mode  string `json:"mode"`
	// PlanIPv4 and PlanIPv6 are the plans' hashes (render.FamilyPlan.Hash),
	// as the first rule of REYES-INPUT carries them in its comment.
	PlanIPv4 string `json:"plan_ipv4"`
	PlanIPv6 string `json:"plan_ipv6"`
	// PlanDigest is the SHA-256 of everything the plan loads (sets,
	// members and rules, both families): a later ruleset that gives the
	// same digest, with nothing else changed, is accepted without a
	// kernel call.
	PlanDigest string `json:"plan_digest,omitempty"`
	// Rules and Members count the iptables rules in reyes' chains and the
	// members of reyes' sets, both families.
	Rules   int `json:"rules"`
	Members int `json:"members"`
	// ApplySeconds is how long the run that applied it took.
	ApplySeconds float64 `json:"apply_seconds"`
	// Version is the version of the follower binary that applied it.
	Version string `json:"version,omitempty"`
	// Settings is the SHA-256 of the follower's local settings that shape
	// the plan or the trust decision (trusted keys, size cap, scope, skew,
	// validity, identity options, render options, backend, fail-safe) as
	// of this apply, and IdentityDigest a digest of what the host's
	// identity was found from (its own addresses, or the metadata
	// service's view). A run whose settings or identity differ does not
	// take the store's "not modified" for "unchanged": it verifies,
	// renders and applies again.
	Settings       string `json:"settings,omitempty"`
	IdentityDigest string `json:"identity_digest,omitempty"`
	// KernelRecord is a digest of apply's record of what it loaded (the
	// apply-*.json files of the state directory) right after this apply;
	// a run that finds it changed reloads everything.
	KernelRecord string `json:"kernel_record,omitempty"`
}

// IdentityRecord is the host as the follower found it.
type IdentityRecord struct {
	Method        IdentityMethod         `json:"method"`
	Interfaces    []render.HostInterface `json:"interfaces"`
	VPCCIDRs      []netip.Prefix         `json:"vpc_cidrs"`
	UnknownGroups []string               `json:"unknown_groups,omitempty"`
}

// Groups returns the host's security groups, each once, in the order of
// its interfaces.
func (r IdentityRecord) Groups() []string {
	seen := map[string]bool{}
	var out []string
	for _, i := range r.Interfaces {
		for _, g := range i.Groups {
			if !seen[g] {
				seen[g] = true
				out = append(out, g)
			}
		}
	}
	return out
}

// DriftRecord is the last comparison of the kernel with the applied rules.
type DriftRecord struct {
	At time.Time `json:"at"`
	// Result is "clean" (the kernel holds the applied rules), "drift"
	// (Drift lists what differed; the rules were reloaded), "error" (the
	// check failed; the rules were reloaded) or "applied" (the run
	// applied, which counts as a check).
	Result string   `json:"result"`
	Drift  []string `json:"drift,omitempty"`
	Error  string   `json:"error,omitempty"`
}

// LoadStatus reads the status file in dir. A missing file is the zero
// Status. Fields it does not know are ignored (a newer follower may have
// written it).
func LoadStatus(dir string) (Status, error) {
	return loadCapped(filepath.Join(dir, StatusFile), maxStatusSize, "status", nil, func(data []byte) (Status, error) {
		var s Status
		if err := json.Unmarshal(data, &s); err != nil {
			return Status{}, err
		}
		if s.Format != StatusFormat {
			return Status{}, fmt.Errorf("format %q, want %q", s.Format, StatusFormat)
		}
		return s, nil
	})
}

// SaveStatus writes s to dir atomically: a reader sees the old file or
// the new. It does not fsync (see saveJSON): after a crash of the machine
// the file may say less than the last run did, never more; a status that
// does not match the state (lastApplied) only costs one full run. dir is
// created (0700) if missing.
func SaveStatus(dir string, s Status) error {
	s.Format = StatusFormat
	if err := saveJSON(dir, StatusFile, s); err != nil {
		return fmt.Errorf("saving status: %w", err)
	}
	return nil
}

// loadedFromState is the best LoadedRecord a state without a status file
// (written by an older follower) gives.
func loadedFromState(s State) *LoadedRecord {
	if s.IsZero() {
		return nil
	}
	return &LoadedRecord{Scope: s.Scope, Serial: s.Serial, GeneratedAt: s.GeneratedAt, NotAfter: s.NotAfter,
		AppliedAt: s.AcceptedAt, Digest: s.Digest}
}
