package auth

import (
	"fmt"
	"os"
)

// CheckSecretFile refuses a secret file (a TLS private key, for instance) that anyone but its
// owner may read or write: it returns an error wrapping ErrInsecureFile that names the chmod to
// run. what says what the file is ("MQTT TLS key"), for the message. A missing or unreadable
// file is an error too.
func CheckSecretFile(path, what string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s %s has mode %04o; it must be readable by its owner only: run chmod 600 %s", ErrInsecureFile, what, path, perm, path)
	}
	return nil
}
