package deploy

import (
	"os/exec"
	"strings"
	"testing"
)

// The polkit rule the agent package ships grants the pirack user power-off and reboot, and
// nothing else, to nobody else: evaluated in Node (polkit rules are JavaScript), as polkit
// would call it.
func TestPolkitRuleIsNarrow(t *testing.T) {
	needTools(t, "node")
	const harness = `
const fs = require("fs");
let rule;
global.polkit = { Result: { YES: "yes", NO: "no", NOT_HANDLED: "not handled" }, addRule: (f) => { rule = f; } };
eval(fs.readFileSync("50-pirack-agent.rules", "utf8"));
const ask = (id, user) => id + " " + user + " " + rule({ id }, { user });
console.log([
  ask("org.freedesktop.login1.power-off", "pirack"),
  ask("org.freedesktop.login1.reboot", "pirack"),
  ask("org.freedesktop.login1.power-off-multiple-sessions", "pirack"),
  ask("org.freedesktop.login1.power-off", "pi"),
  ask("org.freedesktop.systemd1.manage-units", "pirack"),
  ask("org.freedesktop.login1.set-wall-message", "pirack"),
].join("\n"));
`
	out, err := exec.Command("node", "-e", harness).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	want := strings.Join([]string{
		"org.freedesktop.login1.power-off pirack yes",
		"org.freedesktop.login1.reboot pirack yes",
		"org.freedesktop.login1.power-off-multiple-sessions pirack yes",
		"org.freedesktop.login1.power-off pi not handled",
		"org.freedesktop.systemd1.manage-units pirack not handled",
		"org.freedesktop.login1.set-wall-message pirack not handled",
	}, "\n")
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("the rule answers:\n%s\nwant:\n%s", got, want)
	}
}
