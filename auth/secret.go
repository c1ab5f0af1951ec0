package auth

import "github.com/pirack/pirack/internal/secretfile"

// CheckSecretFile refuses a secret file (a TLS private key, for instance) that anyone but its
// owner may read or write: it returns an error wrapping ErrInsecureFile that names the chmod to
// run. what says what the file is ("MQTT TLS key"), for the message. A missing or unreadable
// file is an error too.
func CheckSecretFile(path, what string) error { return secretfile.Check(path, what) }
