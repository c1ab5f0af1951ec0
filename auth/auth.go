// Package auth keeps pirack's users: who may connect to the MQTT broker or log in to the
// dashboard, and with which role. Users live in one JSON file (conventionally
// <data-dir>/users.json) holding hashes, never passwords: bcrypt for people's passwords, a fast
// keyed hash (HMAC-SHA-256, salted) for agents' generated 120-bit secrets.
//
// The broker binds each agent user to one Pi: its name is the Pi's MAC, and the broker only lets
// it publish under that Pi's topics. Plug users are smart plugs (Tasmota, Shelly) measuring a
// row's power: each is bound to its row, and publishes only to the plug topics the power bridge
// maps to that row. The other roles are people and programs: viewers read, automations read and
// send LED commands, Home Assistant reads and sends LED commands with its own status topic,
// admins do anything.
package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pirack/pirack/internal/secretfile"
	"github.com/pirack/pirack/topics"
)

// Sentinel errors. They are returned wrapped, with the detail the user needs.
var (
	// ErrInvalidRole is returned by ParseRole, Add and Set for a role that is not one of Roles.
	ErrInvalidRole = errors.New("invalid role")
	// ErrInvalidUser is returned by Add and Set for a bad name, or a MAC or row that is missing
	// (a MAC for agents, a row for agents and plugs), present (other roles) or malformed.
	ErrInvalidUser = errors.New("invalid user")
	// ErrInvalidPassword is returned by Add and Set for a password shorter than MinPasswordLen or
	// longer than MaxPasswordLen bytes.
	ErrInvalidPassword = errors.New("invalid password")
	// ErrUserExists is returned by Add when a user of that name already exists; Set replaces it.
	ErrUserExists = errors.New("user already exists")
	// ErrNoSuchUser is returned by Remove for an unknown name.
	ErrNoSuchUser = errors.New("no such user")
	// ErrBadCredentials is returned by Authenticate for an unknown user and for a wrong password
	// alike, so that a caller cannot tell which one it was.
	ErrBadCredentials = errors.New("bad username or password")
	// ErrInsecureFile is returned by Open (and by Authenticate when the file changes) when the
	// users file can be read or written by anyone but its owner, and by CheckSecretFile for any
	// secret file (a TLS private key) in that state.
	ErrInsecureFile = secretfile.ErrInsecure
)

// Role says what a user may do.
type Role string

// The roles.
const (
	// RolePlug is a smart plug that measures a row's power (see package powerbridge). It is
	// bound to that row (User.Row) and may publish only to the plug topics the power bridge maps
	// to its row, never under the pirack root, and may read only its relay's command topic
	// when pirack may switch it (auth.PlugTopics).
	RolePlug Role = "plug"
	// RoleAgent is a Pi's agent: it publishes its own topics and reads its own LED commands.
	RoleAgent Role = "agent"
	// RoleAutomation reads every pirack topic and may send LED commands.
	RoleAutomation Role = "automation"
	// RoleViewer reads every pirack topic.
	RoleViewer Role = "viewer"
	// RoleHomeAssistant is Home Assistant's MQTT integration with its default settings: it
	// reads every pirack topic and Home Assistant's discovery topics, leaves its Will and
	// birth on homeassistant/status, and sends LED commands (its Locate button).
	RoleHomeAssistant Role = "homeassistant"
	// RoleAdmin may do anything, including reading $SYS.
	RoleAdmin Role = "admin"
)

// Roles lists every role, in order of increasing power.
var Roles = []Role{RolePlug, RoleAgent, RoleViewer, RoleHomeAssistant, RoleAutomation, RoleAdmin}

// ParseRole parses a role name such as "viewer".
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if r.Valid() {
		return r, nil
	}
	return "", fmt.Errorf("%w %q: want one of %s", ErrInvalidRole, clip(s), roleNames)
}

// roleNames lists the roles for error messages.
const roleNames = "plug, agent, viewer, homeassistant, automation, admin"

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool {
	switch r {
	case RolePlug, RoleAgent, RoleAutomation, RoleViewer, RoleHomeAssistant, RoleAdmin:
		return true
	}
	return false
}

// User is one account. Hash is a bcrypt hash, or for an agent's secret of at least 20 bytes
// $hmac-sha256$<salt>$<sum> (see agentHash); an agent stored by an earlier pirack with a bcrypt
// hash is rehashed at its first successful Authenticate. MAC is set for agents only; Row for agents (the
// Pi's row) and plugs (the row the plug measures). A plug user stored by a pirack that did not
// bind plugs to rows has no Row: the broker refuses it until it is created again with one.
//
// MosquittoHash is the same password hashed for a Mosquitto password file
// ($7$<iterations>$<salt>$<key>, PBKDF2-SHA512, see MosquittoHash), for running agents against
// an external Mosquitto (`pirack broker-config mosquitto`). Add and Set store it with every new
// password; users stored by a pirack that did not have it have none (the field is absent from
// users.json) until they are created again, since a bcrypt hash cannot be converted.
type User struct {
	Name          string    `json:"name"`
	Role          Role      `json:"role"`
	MAC           string    `json:"mac,omitempty"` // normalised, as in topics (b827eb3f1a2c)
	Row           string    `json:"row,omitempty"`
	Hash          string    `json:"hash"`
	MosquittoHash string    `json:"mosquitto_hash,omitempty"`
	Created       time.Time `json:"created"`
	// Pending marks an agent that enrolled itself (pirack-agent enroll) and waits for an
	// operator's approval: on the Control Center's page, or by a press of its own button.
	Pending bool `json:"pending,omitempty"`
}

// Password length limits. bcrypt ignores (x/crypto refuses) bytes past 72.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 72
)

// MaxNameLen is the longest user name allowed.
const MaxNameLen = 64

// normalize checks u and returns it with its MAC normalised and, for an agent, its name
// defaulted to that MAC.
func (u User) normalize() (User, error) {
	if !u.Role.Valid() {
		return u, fmt.Errorf("user %q: %w %q: want one of %s", clip(u.Name), ErrInvalidRole, clip(string(u.Role)), roleNames)
	}
	if u.Role == RoleAgent {
		mac, err := topics.NormalizeMAC(u.MAC)
		if err != nil {
			return u, fmt.Errorf("%w: an agent needs its Pi's MAC: %w", ErrInvalidUser, err)
		}
		if err := topics.ValidateRow(u.Row); err != nil {
			return u, fmt.Errorf("%w: an agent needs its row: %w", ErrInvalidUser, err)
		}
		// The broker binds an agent to its MAC through its user name, so the two must agree.
		if u.Name != "" && u.Name != mac {
			if m, err := topics.NormalizeMAC(u.Name); err != nil || m != mac {
				return u, fmt.Errorf("%w %q: an agent's name must be its MAC %s (leave the name empty)", ErrInvalidUser, clip(u.Name), mac)
			}
		}
		u.Name, u.MAC = mac, mac
	} else if u.MAC != "" {
		return u, fmt.Errorf("%w %q: only agents have a MAC, not role %s", ErrInvalidUser, clip(u.Name), u.Role)
	}
	switch {
	case u.Role == RolePlug:
		// The broker lets a plug publish only under its own row's plug, as it binds an agent
		// to its Pi: one compromised plug cannot report another row's power.
		if err := topics.ValidateRow(u.Row); err != nil {
			return u, fmt.Errorf("%w %q: a plug needs the row it measures: %w", ErrInvalidUser, clip(u.Name), err)
		}
	case u.Role != RoleAgent && u.Row != "":
		return u, fmt.Errorf("%w %q: only agents and plugs have a row, not role %s", ErrInvalidUser, clip(u.Name), u.Role)
	}
	if err := validateName(u.Name); err != nil {
		return u, err
	}
	return u, nil
}

// validateName allows 1-64 characters of [A-Za-z0-9._-]: safe in logs, file names and MQTT
// client ids, and unambiguous on a command line.
func validateName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: name %q must be 1-%d characters of A-Z, a-z, 0-9, '.', '_' or '-'", ErrInvalidUser, clip(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("%w: name %q: character %q not allowed; use A-Z, a-z, 0-9, '.', '_' or '-'", ErrInvalidUser, clip(name), c)
		}
	}
	return nil
}

func validatePassword(p string) error {
	if len(p) < MinPasswordLen || len(p) > MaxPasswordLen {
		return fmt.Errorf("%w: want %d-%d bytes, got %d (or leave it out to have one generated)", ErrInvalidPassword, MinPasswordLen, MaxPasswordLen, len(p))
	}
	return nil
}

// GeneratePassword returns a random 20-character URL-safe password (120 bits of entropy).
func GeneratePassword() string {
	b := make([]byte, 15)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+): it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}

// clip keeps hostile input out of error messages at a bounded length.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
