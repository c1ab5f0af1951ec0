// Package secretfile refuses secret files (passwords, private keys, the users file) that anyone
// but their owner may read or write. It is shared by the control center (package auth) and the
// agent, which must not link auth.
package secretfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// ErrInsecure is wrapped by the errors of Check and Read for a file whose mode lets group or
// others in.
var ErrInsecure = errors.New("secret file permissions too open")

// Check refuses a secret file that is missing, unreadable, or open to group or others. what
// says what the file is ("MQTT TLS key"), for the message, which names the chmod to run.
func Check(path, what string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return checkMode(path, what, fi.Mode())
}

// Read checks a secret file as Check does, on the file it opened (so the check and the read
// see the same file), and returns at most max bytes of it.
func Read(path, what string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := checkMode(path, what, fi.Mode()); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, max))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return b, nil
}

// ReadPassword reads a password file as Read does: the first line, trimmed. An empty password
// is an error.
func ReadPassword(path, what string) (string, error) {
	b, err := Read(path, what, 4096)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pw := strings.TrimSpace(line)
	if pw == "" {
		return "", fmt.Errorf("%s %s is empty", what, path)
	}
	return pw, nil
}

func checkMode(path, what string, mode fs.FileMode) error {
	if perm := mode.Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s %s has mode %04o; it must be readable by its owner only: run chmod 600 %s", ErrInsecure, what, path, perm, path)
	}
	return nil
}
