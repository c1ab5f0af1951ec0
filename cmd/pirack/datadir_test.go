package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Without --data-dir, user, enroll and broker-config work on the data directory pirack serve
// uses: $PIRACK_DATA_DIR, else the data-dir of $PIRACK_CONFIG or of the packaged
// /etc/pirack/pirack.toml, else ./pirack-data; and they say which they took. On a packaged
// install, `pirack user add bob` used to create ./pirack-data/users.json, which serve never
// reads.
func TestDataDirAsServeFindsIt(t *testing.T) {
	tmp := t.TempDir()
	writeConf := func(name, content string) string {
		t.Helper()
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	packaged := writeConf("pirack.toml", `data-dir = "`+filepath.Join(tmp, "var-lib-pirack")+`"`+"\n")
	other := writeConf("other.toml", `data-dir = "`+filepath.Join(tmp, "other")+`"`+"\n")
	broken := writeConf("broken.toml", "data_dir = \"/x\"\n")
	env := map[string]string{}
	oldFile, oldEnv := packagedConfigFile, envLookup
	t.Cleanup(func() { packagedConfigFile, envLookup = oldFile, oldEnv })
	envLookup = func(k string) string { return env[k] }

	packagedConfigFile = filepath.Join(tmp, "absent.toml")
	if dir, from, err := lookupDataDir(); err != nil || dir != defaultDataDir || !strings.Contains(from, "no "+packagedConfigFile) {
		t.Errorf("without a config file: %q (%s), %v; want %s", dir, from, err, defaultDataDir)
	}

	// A packaged install: user add writes where serve reads, and says so.
	packagedConfigFile = packaged
	var stdout, stderr bytes.Buffer
	if err := runUser(t.Context(), []string{"add", "bob", "--role", "viewer"}, &stdout, &stderr); err != nil {
		t.Fatalf("user add: %v\n%s", err, stderr.String())
	}
	want := filepath.Join(tmp, "var-lib-pirack")
	if _, err := os.Stat(filepath.Join(want, usersFileName)); err != nil {
		t.Errorf("user add without --data-dir: %v; want the users file in the packaged config's data-dir", err)
	}
	if !strings.Contains(stderr.String(), "data directory "+want+" (from "+packaged) {
		t.Errorf("user add did not say which data directory it took:\n%s", stderr.String())
	}

	env["PIRACK_CONFIG"] = other
	if dir, _, err := lookupDataDir(); err != nil || dir != filepath.Join(tmp, "other") {
		t.Errorf("with $PIRACK_CONFIG: %q, %v", dir, err)
	}
	env["PIRACK_DATA_DIR"] = "/srv/pirack"
	if dir, from, err := lookupDataDir(); err != nil || dir != "/srv/pirack" || from != "from $PIRACK_DATA_DIR" {
		t.Errorf("with $PIRACK_DATA_DIR: %q (%s), %v", dir, from, err)
	}
	delete(env, "PIRACK_DATA_DIR")

	// A file serve would refuse gives no guess: the error names it and the way out.
	env["PIRACK_CONFIG"] = broken
	stderr.Reset()
	err := runEnroll(t.Context(), []string{"--row", "r1"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), broken) || !strings.Contains(err.Error(), "data_dir") || !strings.Contains(err.Error(), "--data-dir") {
		t.Errorf("enroll with a broken config file: %v", err)
	}

	// --data-dir wins, silently.
	stderr.Reset()
	given := t.TempDir()
	if err := runUser(t.Context(), []string{"list", "--data-dir", given}, &stdout, &stderr); err != nil || strings.Contains(stderr.String(), "data directory") {
		t.Errorf("user list --data-dir: %v, %q", err, stderr.String())
	}
}
