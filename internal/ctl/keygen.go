package ctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/reyes-fw/reyes/internal/atomicfile"
	"github.com/reyes-fw/reyes/sign"
)

// ErrExists: keygen would overwrite an existing file without --force.
var ErrExists = errors.New("file exists")

type keygenFlags struct {
	secret, public string
	name, email    string
	force          bool
}

func keygenCommand() command {
	return command{
		name:     "keygen",
		synopsis: "make a leader signing key and the public key for followers",
		usage:    "--secret FILE --public FILE [--name N] [--email E] [--force]",
		help: `
Makes a new Ed25519 OpenPGP key (GnuPG 2.2 and later read it), writes the
armored secret key to --secret (mode 0600, no passphrase: the file
permissions protect it; it belongs on the leader only) and the armored public
key to --public (for the followers' --trusted-key, and for "gpg --import"),
and prints the fingerprint. Existing files are never overwritten unless
--force is given.`,
		flags: func(c *invocation, fl *flag.FlagSet) func(context.Context, []string) error {
			var f keygenFlags
			fl.StringVar(&f.secret, "secret", "", "write the armored secret key to `FILE` (required)")
			fl.StringVar(&f.public, "public", "", "write the armored public key to `FILE` (required)")
			fl.StringVar(&f.name, "name", "reyes leader", "the key's user ID name `N`")
			fl.StringVar(&f.email, "email", "", "the key's user ID email address `E`")
			fl.BoolVar(&f.force, "force", false, "replace existing files")
			return func(ctx context.Context, _ []string) error { return c.keygen(ctx, f) }
		},
	}
}

func (c *invocation) keygen(_ context.Context, f keygenFlags) error {
	usage := func(format string, a ...any) error {
		return &UsageError{Cmd: "keygen", Err: fmt.Errorf(format, a...)}
	}
	switch {
	case f.secret == "":
		return usage("--secret is required")
	case f.public == "":
		return usage("--public is required")
	case filepath.Clean(f.secret) == filepath.Clean(f.public):
		return usage("--secret and --public name the same file")
	case f.name == "":
		return usage("--name must not be empty")
	}
	if !f.force {
		for _, p := range []string{f.secret, f.public} {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("refusing to overwrite %s: %w (use --force)", p, ErrExists)
			}
		}
	}
	for _, p := range []string{f.secret, f.public} {
		if err := checkDir(p); err != nil {
			return err
		}
	}
	secret, public, err := sign.GenerateKey(f.name, f.email, c.now())
	if err != nil {
		return err
	}
	signer, err := sign.ParseSigner(secret)
	if err != nil {
		return fmt.Errorf("reading back the new key: %w", err)
	}
	if err := writeFile(f.secret, secret, 0o600, f.force); err != nil {
		return err
	}
	if err := writeFile(f.public, public, 0o644, f.force); err != nil {
		if !f.force {
			os.Remove(f.secret) // made by us a moment ago; leave nothing half done
		}
		return err
	}
	fmt.Fprintf(c.stdout, "fingerprint: %s\nsecret key:  %s (mode 0600; the leader's --signing-key, keep it there only)\npublic key:  %s (the followers' --trusted-key; gpg --import reads it)\n",
		signer.Fingerprint(), f.secret, f.public)
	return nil
}

// writeFile writes data to path with mode perm. Without force it fails
// with ErrExists when path exists (O_EXCL: no race). With force it writes a
// temporary file next to path and renames it over, so that the file is
// always whole and a secret key never sits, even briefly, under an older,
// wider mode.
func writeFile(path string, data []byte, perm fs.FileMode, force bool) error {
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("refusing to overwrite %s: %w (use --force)", path, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("writing key: %w", err)
		}
		if err := writeClose(f, data); err != nil {
			os.Remove(path)
			return fmt.Errorf("writing %s: %w", path, err)
		}
		return nil
	}
	if err := atomicfile.Write(path, data, perm); err != nil {
		return fmt.Errorf("writing key: %w", err)
	}
	return nil
}

// checkDir fails, naming the directory, when the directory path is to be
// written in does not exist or is not a directory (a bare "open ...: no
// such file or directory" does not say that /etc/reyes is what is missing).
func checkDir(path string) error {
	err := atomicfile.CheckDir(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("writing %s: %w (create it first, e.g. install -d -m 0700 %s)", path, err, filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func writeClose(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
