package auth

import (
	"cmp"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// fileVersion is the "v" of the users file; Open refuses a file written by a newer pirack.
const fileVersion = 1

type usersFile struct {
	V     int    `json:"v"`
	Users []User `json:"users"`
}

// Users is the user store, backed by one JSON file. It is safe for concurrent use.
//
// People's passwords are stored as bcrypt hashes, agents' generated secrets as a fast keyed
// hash (see agentHash for why). Authenticate rewrites the file to upgrade an agent whose
// secret an earlier pirack hashed with bcrypt.
//
// Another process (the `pirack user` command) may change the file while a server runs: Get,
// List and Authenticate notice the change and reload it, so a new agent can connect without a
// restart. Removing a user refuses its next connection, not a connection already open.
type Users struct {
	// Cost is the bcrypt cost of new hashes (people's passwords, and agent passwords shorter
	// than a generated secret); zero means bcrypt.DefaultCost. Tests and simulated
	// agents set bcrypt.MinCost. Set it before the first Add or Set.
	Cost int
	// MosquittoIterations is the PBKDF2 iteration count of the Mosquitto hash stored with each
	// new password (User.MosquittoHash); zero means DefaultMosquittoIterations. Set it before
	// the first Add or Set.
	MosquittoIterations int

	path string
	// macKey keys the cache of verified passwords, so the cache holds no plain hash of a password.
	macKey []byte

	mu     sync.RWMutex
	users  map[string]User
	loaded fs.FileInfo // the file as last read or written; nil when there was none

	cacheMu  sync.Mutex
	verified map[string]verifiedEntry // user name -> last password verified against its hash

	upMu      sync.Mutex
	upgrades  map[string][2]string // user name -> {bcrypt hash, fast hash}, waiting to be written
	upWriting bool                 // a caller of upgrade is writing them

	dummyOnce sync.Once
	dummy     []byte // hash checked for unknown users, so they cost as much as known ones
}

type verifiedEntry struct {
	hash string
	mac  [sha256.Size]byte
}

// Open loads the users file at path. A missing file is an empty store (the file is created by
// the first Add or Set). A file that others may read or write is refused: it holds password
// hashes, and a file others may write would let them add an admin.
func Open(path string) (*Users, error) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	s := &Users{path: path, macKey: key, users: map[string]User{}, verified: map[string]verifiedEntry{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reloadLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the file the store reads and writes.
func (s *Users) Path() string { return s.path }

// reloadLocked reads the file if it changed since it was last read or written. s.mu is held.
func (s *Users) reloadLocked() error {
	fi, err := os.Stat(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		s.users, s.loaded = map[string]User{}, nil
		return nil
	}
	if err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	if s.loaded != nil && os.SameFile(fi, s.loaded) && fi.ModTime().Equal(s.loaded.ModTime()) && fi.Size() == s.loaded.Size() {
		return nil
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o and holds password hashes; run: chmod 600 %s", ErrInsecureFile, s.path, perm, s.path)
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("read users file: %w", err)
	}
	var f usersFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("users file %s is damaged: %w", s.path, err)
	}
	if f.V != fileVersion {
		return fmt.Errorf("users file %s has version %d; this pirack reads version %d", s.path, f.V, fileVersion)
	}
	users := make(map[string]User, len(f.Users))
	for _, u := range f.Users {
		if err := checkStored(u); err != nil {
			return fmt.Errorf("users file %s: %w; fix that entry, or remove it with pirack user remove", s.path, err)
		}
		if _, dup := users[u.Name]; dup {
			return fmt.Errorf("users file %s: user %q is there twice; remove one", s.path, clip(u.Name))
		}
		users[u.Name] = u
	}
	s.users, s.loaded = users, fi
	return nil
}

// refresh reloads the file if another process changed it. A failed reload keeps the users
// already loaded and returns the error.
func (s *Users) refresh() error {
	fi, err := os.Stat(s.path)
	s.mu.RLock()
	same := s.loaded != nil && err == nil && os.SameFile(fi, s.loaded) &&
		fi.ModTime().Equal(s.loaded.ModTime()) && fi.Size() == s.loaded.Size()
	absent := s.loaded == nil && errors.Is(err, fs.ErrNotExist)
	s.mu.RUnlock()
	if same || absent {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked()
}

// Add creates a user with the given password. For an agent, leave u.Name empty: it becomes the
// MAC. Created defaults to now. An existing name is an error wrapping ErrUserExists.
func (s *Users) Add(u User, password string) error {
	return s.put(u, password, false, s.cost())
}

// Set creates or replaces a user, keeping the original creation time of a replaced one. The
// demo uses it to give its simulated agents fresh passwords at each start.
func (s *Users) Set(u User, password string) error {
	return s.put(u, password, true, s.cost())
}

// SetWithCost is Set with its own bcrypt cost, for accounts that live as briefly as the demo's
// simulated agents (bcrypt.MinCost) in a store whose real users keep Cost.
func (s *Users) SetWithCost(u User, password string, cost int) error {
	return s.put(u, password, true, cost)
}

func (s *Users) put(u User, password string, replace bool, cost int) error {
	u, err := u.normalize()
	if err != nil {
		return err
	}
	if err := validatePassword(password); err != nil {
		return err
	}
	// Hash before taking the lock: bcrypt is slow on purpose.
	if fastHashFor(u, password) {
		u.Hash = agentHash(password)
	} else {
		h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
		if err != nil {
			return fmt.Errorf("hash password: %w", err)
		}
		u.Hash = string(h)
	}
	// Kept for `pirack broker-config mosquitto`: a bcrypt hash cannot be turned into one
	// Mosquitto reads, and the password is only known here.
	if u.MosquittoHash, err = MosquittoHash(password, s.MosquittoIterations); err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reloadLocked(); err != nil { // don't overwrite another process's change
		return err
	}
	old, exists := s.users[u.Name]
	if exists && !replace {
		return fmt.Errorf("%w: %q (remove it first, or pick another name)", ErrUserExists, u.Name)
	}
	if u.Created.IsZero() {
		u.Created = time.Now().UTC().Truncate(time.Second)
		if exists {
			u.Created = old.Created
		}
	}
	next := maps.Clone(s.users)
	next[u.Name] = u
	if err := s.saveLocked(next); err != nil {
		return err
	}
	s.forget(u.Name)
	return nil
}

// Update changes a user's fields other than its password (the name and hash stay), with the
// file written once. An unknown name is an error wrapping ErrNoSuchUser.
func (s *Users) Update(name string, change func(u *User)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reloadLocked(); err != nil {
		return err
	}
	u, ok := s.users[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrNoSuchUser, clip(name))
	}
	change(&u)
	u.Name, u.Hash, u.MosquittoHash = name, s.users[name].Hash, s.users[name].MosquittoHash
	u, err := u.normalize()
	if err != nil {
		return err
	}
	next := maps.Clone(s.users)
	next[name] = u
	if err := s.saveLocked(next); err != nil {
		return err
	}
	s.forget(name)
	return nil
}

// SetPassword gives an existing user a new password, keeping everything else. An unknown name
// is an error wrapping ErrNoSuchUser.
func (s *Users) SetPassword(name, password string) error {
	u, ok := s.Get(name)
	if !ok {
		return fmt.Errorf("%w: %q", ErrNoSuchUser, clip(name))
	}
	return s.put(u, password, true, s.cost())
}

// Remove deletes a user. An unknown name is an error wrapping ErrNoSuchUser.
func (s *Users) Remove(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reloadLocked(); err != nil {
		return err
	}
	if _, ok := s.users[name]; !ok {
		return fmt.Errorf("%w: %q", ErrNoSuchUser, clip(name))
	}
	next := maps.Clone(s.users)
	delete(next, name)
	if err := s.saveLocked(next); err != nil {
		return err
	}
	s.forget(name)
	return nil
}

// Get returns the user of that name.
func (s *Users) Get(name string) (User, bool) {
	_ = s.refresh() // on error, answer from the users already loaded
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.users[name]
	return u, ok
}

// List returns every user, sorted by name.
func (s *Users) List() []User {
	_ = s.refresh()
	s.mu.RLock()
	out := make([]User, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, u)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b User) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Authenticate checks a name and password and returns the user. An unknown user and a wrong
// password both return ErrBadCredentials, after the same work (a fast check for a name shaped
// like an agent's, a bcrypt one for any other). Any other error means the users file could not
// be read; callers should refuse and log it.
//
// An agent's secret in the fast form (see agentHash) is checked directly. A bcrypt hash is
// checked once per user per server lifetime: successful checks are remembered until the user
// is changed. An agent stored with a bcrypt hash by an earlier pirack is rehashed to the fast
// form at its first successful check, and the users file rewritten (see upgrade), so the next
// restart no longer costs it a bcrypt run.
func (s *Users) Authenticate(name, password string) (User, error) {
	if err := s.refresh(); err != nil {
		return User{}, err
	}
	s.mu.RLock()
	u, ok := s.users[name]
	s.mu.RUnlock()
	if !ok {
		if looksLikeAgent(name) {
			_ = verifyAgentHash(dummyAgentHash, password)
		} else {
			_ = bcrypt.CompareHashAndPassword(s.dummyHash(), []byte(password))
		}
		return User{}, ErrBadCredentials
	}
	if isAgentHash(u.Hash) {
		if u.Role != RoleAgent || !verifyAgentHash(u.Hash, password) {
			return User{}, ErrBadCredentials
		}
		return u, nil
	}
	sum := s.sum(name, password)
	s.cacheMu.Lock()
	e, hit := s.verified[name]
	s.cacheMu.Unlock()
	if hit && e.hash == u.Hash && hmac.Equal(e.mac[:], sum[:]) {
		return u, nil
	}
	if err := bcrypt.CompareHashAndPassword([]byte(u.Hash), []byte(password)); err != nil {
		return User{}, ErrBadCredentials
	}
	s.cacheMu.Lock()
	s.verified[name] = verifiedEntry{hash: u.Hash, mac: sum}
	s.cacheMu.Unlock()
	if fastHashFor(u, password) {
		s.upgrade(name, u.Hash, agentHash(password))
	}
	return u, nil
}

// upgrade replaces name's bcryptHash by fastHash in the users file, unless it changed meanwhile.
// After a restart a whole fleet may pass here within seconds: rather than one rewrite of the
// file per agent, the first caller writes, and the upgrades that arrive while it writes are
// written together by it in the next round (a group commit, on the caller's goroutine; the
// others return at once). A failed write is not an authentication failure: the user keeps its
// bcrypt hash and is upgraded at its first check in a later server lifetime.
func (s *Users) upgrade(name, bcryptHash, fastHash string) {
	s.upMu.Lock()
	if s.upgrades == nil {
		s.upgrades = map[string][2]string{}
	}
	s.upgrades[name] = [2]string{bcryptHash, fastHash}
	if s.upWriting {
		s.upMu.Unlock()
		return
	}
	s.upWriting = true
	for len(s.upgrades) > 0 {
		batch := s.upgrades
		s.upgrades = nil
		s.upMu.Unlock()
		_ = s.applyUpgrades(batch)
		s.upMu.Lock()
	}
	s.upWriting = false
	s.upMu.Unlock()
}

func (s *Users) applyUpgrades(batch map[string][2]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reloadLocked(); err != nil { // don't overwrite another process's change
		return err
	}
	next := maps.Clone(s.users)
	changed := false
	for name, h := range batch {
		if u, ok := next[name]; ok && u.Hash == h[0] {
			u.Hash = h[1]
			next[name] = u
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return s.saveLocked(next)
}

// Lookup returns the user of that name, reloading the file if it changed, without checking a
// password: for callers that authenticated the user another way (the broker, by a client
// certificate whose CN names an agent). An unknown user is ErrBadCredentials; any other error
// means the users file could not be read, and callers should refuse and log it.
func (s *Users) Lookup(name string) (User, error) {
	if err := s.refresh(); err != nil {
		return User{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.users[name]
	if !ok {
		return User{}, ErrBadCredentials
	}
	return u, nil
}

func (s *Users) sum(name, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, s.macKey)
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return out
}

func (s *Users) forget(name string) {
	s.cacheMu.Lock()
	delete(s.verified, name)
	s.cacheMu.Unlock()
}

func (s *Users) cost() int {
	if s.Cost == 0 {
		return bcrypt.DefaultCost
	}
	return s.Cost
}

func (s *Users) dummyHash() []byte {
	s.dummyOnce.Do(func() {
		s.dummy, _ = bcrypt.GenerateFromPassword([]byte("pirack-no-such-user"), s.cost())
	})
	return s.dummy
}

// saveLocked writes users atomically: a temporary file in the same directory, fsync, rename,
// fsync of the directory. A full disk or a crash leaves the old file whole. s.mu is held.
func (s *Users) saveLocked(users map[string]User) error {
	f := usersFile{V: fileVersion, Users: make([]User, 0, len(users))}
	for _, u := range users {
		f.Users = append(f.Users, u)
	}
	slices.SortFunc(f.Users, func(a, b User) int { return cmp.Compare(a.Name, b.Name) })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode users: %w", err)
	}
	b = append(b, '\n')

	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(s.path)+".tmp*") // created 0600
	if err != nil {
		return fmt.Errorf("save users: create temporary file in %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("save users: write %s (disk full?): %w; %s is unchanged", tmp.Name(), err, s.path)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save users: sync %s: %w; %s is unchanged", tmp.Name(), err, s.path)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save users: close %s: %w; %s is unchanged", tmp.Name(), err, s.path)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("save users: replace %s: %w", s.path, err)
	}
	if d, err := os.Open(dir); err == nil { // make the rename itself durable
		_ = d.Sync()
		d.Close()
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("save users: %w", err)
	}
	s.users, s.loaded = users, fi
	return nil
}

// checkStored refuses an entry pirack would not have written (a hand-edited or damaged file): an
// unknown role, an agent without its MAC or row, a bad name. It would otherwise load with
// rights nobody chose. A plug without a row, as an earlier pirack wrote it, loads: the broker
// refuses it at CONNECT with what to do.
func checkStored(u User) error {
	if u.Role == RolePlug && u.Row == "" {
		return validateName(u.Name)
	}
	n, err := u.normalize()
	if err != nil {
		return err
	}
	if n.Name != u.Name || n.MAC != u.MAC {
		return fmt.Errorf("%w %q: stored as name %q, MAC %q, where pirack writes name and MAC %q", ErrInvalidUser, clip(u.Name), clip(u.Name), clip(u.MAC), n.MAC)
	}
	return nil
}
