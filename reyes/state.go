package reyes

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/reyes-fw/reyes/internal/atomicfile"
	"github.com/reyes-fw/reyes/internal/regfile"
	"github.com/reyes-fw/reyes/ruleset"
)

// StateFormat is the format identifier of the state file.
const StateFormat = "reyes.state/v1"

// StateFile is the name of the state file inside the state directory.
const StateFile = "state.json"

// maxStateSize caps the state file; a real one is a few hundred bytes.
const maxStateSize = 64 << 10

// ErrCorruptState: the state file exists but cannot be read as a state. It is
// never silently reset: a follower that forgot its last serial would accept
// a rollback.
var ErrCorruptState = errors.New("corrupt state file")

// Digest is the SHA-256 of a verified payload.
type Digest [sha256.Size]byte

// SumPayload returns the digest of payload.
func SumPayload(payload []byte) Digest { return sha256.Sum256(payload) }

// String returns the digest in lower-case hex.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// IsZero reports whether d is the zero digest.
func (d Digest) IsZero() bool { return d == Digest{} }

// MarshalText encodes d as lower-case hex.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText decodes 64 hex digits.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) != 2*sha256.Size {
		return fmt.Errorf("decoding sha256: %d characters, want %d", len(b), 2*sha256.Size)
	}
	_, err := hex.Decode(d[:], b)
	if err != nil {
		return fmt.Errorf("decoding sha256: %w", err)
	}
	return nil
}

// State is what a follower remembers of the last ruleset it accepted: enough
// to refuse a rollback, to make the next fetch conditional, and to say how
// stale it is. The zero State means nothing was accepted yet.
type State struct {
	Scope       string    `json:"scope"`
	Serial      uint64    `json:"serial"`
	GeneratedAt time.Time `json:"generated_at"`
	NotAfter    time.Time `json:"not_after"`
	// Digest is the SHA-256 of the verified payload.
	Digest Digest `json:"sha256"`
	// ETag is the store's entity tag of the object it came in, for the next
	// conditional fetch.
	ETag string `json:"etag,omitempty"`
	// AcceptedAt is when the follower accepted (applied) it.
	AcceptedAt time.Time `json:"accepted_at"`
}

// NewState returns the state that records the ruleset with header h and
// digest d, fetched with etag and accepted at now.
func NewState(h ruleset.Header, d Digest, etag string, now time.Time) State {
	return State{
		Scope:       h.Scope,
		Serial:      h.Serial,
		GeneratedAt: h.GeneratedAt.UTC(),
		NotAfter:    h.NotAfter.UTC(),
		Digest:      d,
		ETag:        etag,
		AcceptedAt:  now.UTC(),
	}
}

// IsZero reports whether s records nothing.
func (s State) IsZero() bool { return s.Digest.IsZero() && s.Serial == 0 && s.Scope == "" }

// stateFile is the on-disk form.
type stateFile struct {
	Format string `json:"format"`
	State
}

// LoadState reads the state in dir. A missing state file (or directory) is
// the zero State; a state file that cannot be read as one is an error that
// matches [ErrCorruptState].
func LoadState(dir string) (State, error) {
	return loadCapped(filepath.Join(dir, StateFile), maxStateSize, "state", ErrCorruptState, decodeState)
}

// loadCapped reads the file at path, at most max bytes, and decodes it: a
// missing file is the zero T. Errors say "loading what"; one for a file
// over max also matches tooLarge, when that is not nil.
func loadCapped[T any](path string, max int64, what string, tooLarge error, decode func([]byte) (T, error)) (T, error) {
	var zero T
	data, err := readCapped(path, max)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return zero, nil
	case errors.Is(err, errFileTooLarge) && tooLarge != nil:
		return zero, fmt.Errorf("loading %s %s: %w: %w", what, path, tooLarge, err)
	case errors.Is(err, errFileTooLarge):
		return zero, fmt.Errorf("loading %s %s: %w", what, path, err)
	case err != nil:
		return zero, fmt.Errorf("loading %s: %w", what, err)
	}
	v, err := decode(data)
	if err != nil {
		return zero, fmt.Errorf("loading %s %s: %w", what, path, err)
	}
	return v, nil
}

// decodeState strictly decodes a state file: known fields only, one JSON
// value, the right format, a digest.
func decodeState(data []byte) (State, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var sf stateFile
	if err := dec.Decode(&sf); err != nil {
		return State{}, fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return State{}, fmt.Errorf("%w: data after the state", ErrCorruptState)
	}
	if sf.Format != StateFormat {
		return State{}, fmt.Errorf("%w: format %q, want %q", ErrCorruptState, sf.Format, StateFormat)
	}
	if sf.Digest.IsZero() || sf.Scope == "" {
		return State{}, fmt.Errorf("%w: scope or sha256 missing", ErrCorruptState)
	}
	return sf.State, nil
}

// SaveState writes s to dir atomically: a temporary file in dir, fsync,
// rename over the state file, fsync of dir. A crash leaves the old state or
// the new one, never a mix. dir is created (0700) if missing.
func SaveState(dir string, s State) error {
	commit, _, err := PrepareState(dir, s)
	if err != nil {
		return err
	}
	return commit()
}

// PrepareState writes s to a temporary file in dir (created 0700 if
// missing) and syncs it, without putting it in force: commit renames it
// over the state file (and syncs dir), abort removes it. The follower
// prepares before it touches the kernel, so that a state directory that is
// read-only or full stops the run before anything is applied that could
// not be recorded. Call exactly one of commit and abort.
func PrepareState(dir string, s State) (commit func() error, abort func(), err error) {
	if s.IsZero() {
		return nil, nil, fmt.Errorf("saving state: refusing to save an empty state")
	}
	data, err := json.MarshalIndent(stateFile{Format: StateFormat, State: s}, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("saving state: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("saving state: %w", err)
	}
	p, err := atomicfile.Prepare(filepath.Join(dir, StateFile), append(data, '\n'), 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("saving state: %w", err)
	}
	commit = func() error {
		if err := p.Commit(); err != nil {
			return fmt.Errorf("saving state: %w", err)
		}
		return nil
	}
	return commit, p.Abort, nil
}

// saveJSON writes v, indented, as the file name in dir, atomically
// (atomicfile.Replace: readers see the old file or the new), creating dir
// (0700) if missing. It does not fsync: it writes the status file, which
// describes what the kernel holds (a crash of the machine empties the
// kernel whatever the file says) and the last run; the state, whose
// serial must survive a crash, is written with PrepareState.
func saveJSON(dir, name string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return atomicfile.Replace(filepath.Join(dir, name), append(data, '\n'), 0o644)
}

// errFileTooLarge is readCapped's error for a file over its cap.
var errFileTooLarge = regfile.ErrTooLarge

// readCapped reads a small file of ours (state, status, metrics), at most
// max bytes: a larger one is an error wrapping errFileTooLarge, a missing
// one an error wrapping fs.ErrNotExist, one that is not regular (a FIFO:
// never waited on) ErrNotRegular.
func readCapped(path string, max int64) ([]byte, error) { return regfile.Read(path, max, 0) }
