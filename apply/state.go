package apply

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/reyes-fw/reyes/render"
)

// state is what apply remembers between runs for one family, so that it
// can tell unchanged sets without reading their members back. The kernel
// stays the authority: a set that is missing or has another number of
// members than recorded is reloaded whatever the state says.
type state struct {
	Backend Backend           `json:"backend"`
	Chains  []string          `json:"chains"`
	Sets    map[string]string `json:"sets"` // name -> Set.Hash()
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
	// Members holds a hash of each set's sorted, distinct members.
	Members map[string]string `json:"members,omitempty"`
}

func statePath(dir string, fam render.Family) string {
	return filepath.Join(dir, fmt.Sprintf("apply-ipv%d.json", fam))
}

// readState returns the recorded state, or nil when there is none or it
// cannot be read (apply then reads the kernel instead).
func readState(dir string, fam render.Family) *state {
	if dir == "" {
		return nil
	}
	b, err := os.ReadFile(statePath(dir, fam))
	if err != nil {
		return nil
	}
	var st state
	if json.Unmarshal(b, &st) != nil {
		return nil
	}
	return &st
}

// writeState records st atomically (write a temporary file, rename).
func writeState(dir string, fam render.Family, st *state) error {
	if dir == "" {
		return nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding state: %w", err)
	}
	p := statePath(dir, fam)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("writing state: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("writing state: %w", err)
	}
	return nil
}

func removeState(dir string, fam render.Family) error {
	if dir == "" {
		return nil
	}
	if err := os.Remove(statePath(dir, fam)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing state: %w", err)
	}
	return nil
}
