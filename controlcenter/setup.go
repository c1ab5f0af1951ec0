package controlcenter

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/pirack/pirack/auth"
	"github.com/pirack/pirack/powerbridge"
)

// bootstrapAdmin creates the "admin" user on first run, with a generated password written to
// <data-dir>/admin.password (0600). The announcement names the file, not the password: under
// systemd stdout goes to the journal, which more people may read than the data directory.
//
// Only a users file without any user is bootstrapped: once users exist, an admin is not made
// behind the operator's back (removing the last admin does not bring one back); a warning
// says how to add one.
func bootstrapAdmin(users *auth.Users, dataDir string, stdout io.Writer, log *slog.Logger) error {
	list := users.List()
	if len(list) > 0 {
		if !slices.ContainsFunc(list, func(u auth.User) bool { return u.Role == auth.RoleAdmin }) {
			log.Warn("no admin user: nobody can send commands from the Control Center; add one with pirack user add NAME --role admin",
				"users_file", users.Path())
		}
		return nil
	}
	password := auth.GeneratePassword()
	if err := users.Add(auth.User{Name: "admin", Role: auth.RoleAdmin}, password); err != nil {
		return fmt.Errorf("create the first admin user: %w", err)
	}
	path := filepath.Join(dataDir, AdminPasswordFile)
	if err := os.WriteFile(path, []byte(password+"\n"), 0o600); err != nil {
		return fmt.Errorf("save the admin password to %s: %w", path, err)
	}
	fmt.Fprintf(stdout, "Created the dashboard user \"admin\"; its password is in %s (readable by this user only): store it elsewhere, then delete that file.\n", path)
	return nil
}

// loadPowerBridge reads the power bridge file: Config.PowerBridgeFile, or else
// <data-dir>/power-bridge.json if there is one. No file means no plugs.
func loadPowerBridge(cfg Config, users *auth.Users, log *slog.Logger) (powerbridge.File, error) {
	path := cfg.PowerBridgeFile
	if path == "" {
		path = filepath.Join(cfg.DataDir, powerbridge.FileName)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			checkPlugUsers(powerbridge.File{}, path, users.List(), log)
			return powerbridge.File{}, nil
		}
	}
	f, err := powerbridge.LoadFile(path)
	if err != nil && cfg.PowerBridgeFile == "" {
		err = fmt.Errorf("%w (fix it, or move it out of the data directory to run without smart plugs)", err)
	}
	if err != nil {
		return f, err
	}
	log.Info("power bridge file loaded", "file", path, "plugs", len(f.Plugs))
	checkPlugUsers(f, path, users.List(), log)
	return f, nil
}

// checkPlugUsers warns of what keeps a plug from reporting, or a plug user from doing anything,
// since the broker binds each plug user to its row: a plug user without a row (made by an
// earlier pirack), which the broker refuses; a plug user whose row has no plug in the file,
// which may publish nothing; and a row of the file whose plug no plug user may publish for.
func checkPlugUsers(f powerbridge.File, path string, users []auth.User, log *slog.Logger) {
	filters := f.PlugTopics().Filters()
	covered := map[string]bool{} // plug folders some plug user may publish to
	for _, u := range users {
		if u.Role != auth.RolePlug {
			continue
		}
		rowFilters, ok := filters[u.Row]
		switch {
		case u.Row == "":
			log.Warn("power bridge: plug user "+u.Name+" has no row (made by an earlier pirack), so the broker refuses it: re-create it with "+
				"pirack user remove "+u.Name+" and pirack user add "+u.Name+" --role plug --row ROW", "user", u.Name)
		case !ok:
			log.Warn("power bridge: plug user "+u.Name+" is for row "+u.Row+", which has no plug in "+filepath.Base(path)+", so it may publish nothing",
				"user", u.Name, "row", u.Row, "file", path)
		default:
			for _, fl := range rowFilters {
				covered[fl] = true
			}
		}
	}
	for _, row := range slices.Sorted(maps.Keys(filters)) {
		if !slices.ContainsFunc(filters[row], func(fl string) bool { return !covered[fl] }) {
			continue
		}
		log.Warn("power bridge: no plug user for row "+row+", so its plug cannot connect: add one with pirack user add plug-"+row+" --role plug --row "+row,
			"row", row)
	}
}
