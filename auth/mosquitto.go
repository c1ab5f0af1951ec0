package auth

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// DefaultMosquittoIterations is the PBKDF2 iteration count of the Mosquitto hashes stored
// beside the bcrypt ones (User.MosquittoHash).
//
// Mosquitto checks the password at every CONNECT, on its single thread and with no cache (pirack
// caches verified passwords; Mosquitto does not), so a fleet reconnecting after an outage costs
// one PBKDF2 run per client, serialised. 10000 rounds of HMAC-SHA512 took about 20 ms in Go on
// a 2-core test host (OpenSSL, which Mosquitto uses, is faster): a thousand agents reconnecting
// cost seconds, not minutes, while a stolen hash of a human-chosen password costs an attacker
// 100 times more than at mosquitto_passwd's default of 101 rounds. Generated passwords (120 bits)
// do not depend on the count at all.
const DefaultMosquittoIterations = 10000

// Mosquitto hash format: $7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512 key>, as
// mosquitto_passwd writes it (12-byte salt, 64-byte key, standard base64 with padding).
const (
	mosquittoPrefix  = "$7$"
	mosquittoSaltLen = 12
	mosquittoKeyLen  = sha512.Size
)

// MosquittoHash returns password hashed for a Mosquitto 2.0 password file: PBKDF2-SHA512 with a
// random salt and the given iteration count (zero: DefaultMosquittoIterations).
func MosquittoHash(password string, iterations int) (string, error) {
	salt := make([]byte, mosquittoSaltLen)
	_, _ = rand.Read(salt) // never fails (Go 1.24+)
	return mosquittoHash(password, salt, iterations)
}

func mosquittoHash(password string, salt []byte, iterations int) (string, error) {
	if iterations == 0 {
		iterations = DefaultMosquittoIterations
	}
	if iterations < 1 {
		return "", fmt.Errorf("mosquitto hash: %d iterations: want at least 1", iterations)
	}
	key, err := pbkdf2.Key(sha512.New, password, salt, iterations, mosquittoKeyLen)
	if err != nil {
		return "", fmt.Errorf("mosquitto hash: %w", err)
	}
	return mosquittoPrefix + strconv.Itoa(iterations) + "$" +
		base64.StdEncoding.EncodeToString(salt) + "$" + base64.StdEncoding.EncodeToString(key), nil
}

// VerifyMosquittoHash reports whether password matches a hash made by MosquittoHash (or by
// mosquitto_passwd with its default sha512-pbkdf2). It is for tests and diagnostics: pirack
// itself authenticates with the bcrypt hash.
func VerifyMosquittoHash(hash, password string) bool {
	rest, ok := strings.CutPrefix(hash, mosquittoPrefix)
	if !ok {
		return false
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 3 {
		return false
	}
	n, err := strconv.Atoi(parts[0])
	if err != nil || n < 1 {
		return false
	}
	salt, err := base64.StdEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	want, err := mosquittoHash(password, salt, n)
	return err == nil && want == hash
}
