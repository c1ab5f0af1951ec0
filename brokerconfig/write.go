package brokerconfig

import (
	"fmt"
	"os"
	"path/filepath"
)

// The files WriteMosquitto writes in its directory.
const (
	PasswdFileName = "passwd"
	ACLFileName    = "acl"
)

// WriteMosquitto writes m's password file (mode 0600: it holds password hashes) and ACL file
// (0644: names, MACs and topics, no secrets) into dir, each atomically: a running Mosquitto
// reloading on SIGHUP reads the old file or the new one, never half of one. Files already there
// are replaced.
func WriteMosquitto(dir string, m Mosquitto) error {
	if err := writeAtomic(filepath.Join(dir, PasswdFileName), m.Passwd, 0o600); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, ACLFileName), m.ACL, 0o644)
}

// writeAtomic writes a temporary file in path's directory, syncs it and renames it over path.
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*") // created 0600
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s (disk full?): %w; %s is unchanged", tmp.Name(), err, path)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: sync: %w; %s is unchanged", tmp.Name(), err, path)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w; %s is unchanged", tmp.Name(), err, path)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil { // make the rename itself durable
		_ = d.Sync()
		d.Close()
	}
	return nil
}
