package apply

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/reyes-fw/reyes/internal/atomicfile"
	"github.com/reyes-fw/reyes/internal/regfile"

	"github.com/reyes-fw/reyes/render"
)

// state is what apply remembers between runs for one family, so that it
// can tell unchanged sets without reading their members back. The kernel
// stays the authority: a set that is missing or has another number of
// members than recorded is reloaded whatever the state says.
type state struct {
	Backend Backend  `json:"backend"`
	Chains  []string `json:"chains"`
	// Sets maps each set of the plan to the kernel set its rules use: the
	// set's own name or its second slot (see the package doc).
	Sets map[string]string `json:"sets"`
	// Hashes holds render.Set.Hash of each set of the plan, by its name:
	// the cheap test of an unchanged set (no sorting of members).
	Hashes map[string]string `json:"hashes,omitempty"`
	// Plan, Table, Hooks and Entries let Check tell drift from a few
	// reads: the plan hash, the table mode and hooks, and each set's
	// number of members.
	Plan    string         `json:"plan,omitempty"`
	Table   string         `json:"table,omitempty"`
	Hooks   []render.Hook  `json:"hooks,omitempty"`
	Entries map[string]int `json:"entries,omitempty"`
	// Rules holds a hash of each reyes chain's rules, as iptables-save
	// prints them, for Check.
	Rules map[string]string `json:"rules,omitempty"`
	// Text is the hash of the rules text loaded (IPv4 only), kept in
	// apply-ipv4.rules so that a run can put those rules back if IPv6
	// fails after IPv4 changed; empty when not kept.
	Text string `json:"text,omitempty"`
	// Members holds a hash of each kernel set's sorted, distinct members;
	// Entries their number. Both are keyed by kernel set name.
	Members map[string]string `json:"members,omitempty"`
}

func statePath(dir string, fam render.Family) string {
	return filepath.Join(dir, fmt.Sprintf("apply-ipv%d.json", fam))
}

// rulesPath is where the rules text a run loaded is kept (see state.Text).
func rulesPath(dir string, fam render.Family) string {
	return filepath.Join(dir, fmt.Sprintf("apply-ipv%d.rules", fam))
}

// textHash identifies a kept rules text.
func textHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// pendingSuffix ends the name of a state prepared before a kernel change
// and not yet committed. While it exists the recorded state may not
// describe the kernel (a run was killed between its kernel change and its
// commit), so apply reads the kernel instead.
const pendingSuffix = ".new"

// readState returns the recorded state, or nil when there is none, it
// cannot be read, or a prepared state was never committed (apply then
// reads the kernel instead).
func readState(dir string, fam render.Family) *state {
	if dir == "" || pending(dir, fam) {
		return nil
	}
	p := statePath(dir, fam)
	b, err := readFile(p)
	if err != nil {
		return nil
	}
	var st state
	if json.Unmarshal(b, &st) != nil {
		return nil
	}
	return &st
}

// recordedBackend returns the backend of the last committed state, whether
// or not a prepared state makes it distrusted; "" if there is none.
func recordedBackend(dir string, fam render.Family) Backend {
	if dir == "" {
		return ""
	}
	b, err := readFile(statePath(dir, fam))
	if err != nil {
		return ""
	}
	var st struct {
		Backend Backend `json:"backend"`
	}
	if json.Unmarshal(b, &st) != nil {
		return ""
	}
	return st.Backend
}

// pending reports whether a prepared state was left uncommitted.
func pending(dir string, fam render.Family) bool {
	if dir == "" {
		return false
	}
	_, err := os.Lstat(statePath(dir, fam) + pendingSuffix)
	return err == nil
}

// ErrStateNotWritable is wrapped by the error Apply returns when the state
// directory cannot take the new state (read-only, full): the kernel was
// not changed.
var ErrStateNotWritable = errors.New("state directory not writable; the kernel was not changed")

// preparedState is a state written to disk, not yet in force: commit
// renames it over the recorded state, abort removes it.
type preparedState struct {
	path string // the state file; the prepared one is path+pendingSuffix
	// rules is the kept rules text file, when one was prepared too.
	rules string
	done  bool
	// keep: the run began with a prepared state left by a killed run, so
	// the recorded one may not describe the kernel; an abort must leave a
	// prepared file so that the next run does not trust the record either.
	keep bool
}

// prepareState writes st next to the state file (fsync'd), so that a
// state directory that is read-only or full is found before the kernel is
// touched. With no dir it does nothing.
func prepareState(dir string, fam render.Family, st *state, text []byte) (*preparedState, error) {
	if dir == "" {
		return &preparedState{done: true}, nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encoding state: %w", err)
	}
	ps := &preparedState{path: statePath(dir, fam)}
	tmp := ps.path + pendingSuffix
	// The kept text and the state are independent files, written
	// concurrently. The text is not fsync'd: a run uses it only when its
	// hash is the one the state records (saveOld), so a text a crash
	// tore is not used (the table is read back instead), and the
	// state's own sync finds a read-only or full directory. At 20,000
	// rules it is megabytes, which a sync would write out on every
	// reload.
	writes := []func() error{func() error { return atomicfile.WriteSync(tmp, b, 0o600) }}
	if text != nil {
		ps.rules = rulesPath(dir, fam)
		writes = append(writes, func() error {
			if err := os.WriteFile(ps.rules+pendingSuffix, text, 0o600); err != nil {
				return fmt.Errorf("writing %s: %w", ps.rules+pendingSuffix, err)
			}
			return nil
		})
	}
	if err := errors.Join(parallel(writes...)...); err != nil {
		_ = os.Remove(tmp)
		if ps.rules != "" {
			_ = os.Remove(ps.rules + pendingSuffix)
		}
		return nil, fmt.Errorf("%w: %w", ErrStateNotWritable, err)
	}
	return ps, nil
}

// commit puts the prepared state in force: rename. The directory is not
// synced after, on purpose: the record describes the kernel's tables and
// sets, which a crash of the machine (the only thing a sync protects
// against; a killed process leaves the page cache whole) takes with it. A
// record that did not reach the disk leaves the prepared file, which makes
// the next run read the kernel; one that did describes rules a reboot
// emptied, which every run must (and does) recognise anyway. The sync
// before the kernel is touched stays: it is what finds a full or failing
// disk in time (prepareState).
func (p *preparedState) commit() error {
	if p == nil || p.done {
		return nil
	}
	p.done = true
	// The text first: a kill between the two leaves a text the recorded
	// hash does not match, which is not used.
	if p.rules != "" {
		if err := os.Rename(p.rules+pendingSuffix, p.rules); err != nil {
			return fmt.Errorf("recording state: %w", err)
		}
	}
	if err := os.Rename(p.path+pendingSuffix, p.path); err != nil {
		return fmt.Errorf("recording state: %w", err)
	}
	return nil
}

// abort drops the prepared state; the recorded one stays in force.
func (p *preparedState) abort() {
	if p == nil || p.done {
		return
	}
	p.done = true
	if p.rules != "" {
		_ = os.Remove(p.rules + pendingSuffix)
	}
	if !p.keep {
		_ = os.Remove(p.path + pendingSuffix)
	}
}

func removeState(dir string, fam render.Family) error {
	if dir == "" {
		return nil
	}
	for _, p := range []string{statePath(dir, fam) + pendingSuffix, statePath(dir, fam), rulesPath(dir, fam), rulesPath(dir, fam) + pendingSuffix} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing state: %w", err)
		}
	}
	return nil
}

// readFile reads a file of the state directory. Only a regular file is
// read: a FIFO there (an odd state directory) would otherwise wait for a
// writer in open(2) for ever; regfile refuses it at once.
func readFile(path string) ([]byte, error) { return regfile.Read(path, 0, 0) }
