package dashboard

import "github.com/pirack/pirack/audit"

// The audit log is package audit's; these are its names as the dashboard's Config and API use
// them.
const (
	AuditFile            = audit.File            // the audit log's name in Config.AuditDir
	DefaultAuditMaxBytes = audit.DefaultMaxBytes // Config.AuditMaxBytes when zero
	AuditKeep            = audit.Keep            // rotated files kept: audit.log.1 (newest) to audit.log.5
)

// AuditEntry is one line of the audit log, as GET /api/audit returns it.
type AuditEntry = audit.Entry

// Audit actions and outcomes.
const (
	AuditLogin  = "login"
	AuditLogout = "logout"
	AuditBlink  = "blink" // an LED command
	// AuditLocate is a locate (identify until found) started or stopped.
	AuditLocate = "locate"
	AuditClear  = "clear"  // a selection cleared
	AuditSelect = "select" // a Pi selected on the page
	// AuditApprove is an enrolled Pi approved from the page or the API.
	AuditApprove = "approve"
	// AuditAck is an alert acknowledged, silenced, or un-acknowledged.
	AuditAck = "ack"
	// AuditMaintenance is a Pi or row put into maintenance, or taken out.
	AuditMaintenance = "maintenance"
	// AuditSystem is a Pi shut down or rebooted remotely, or the attempt.
	AuditSystem = "system"
	// AuditRemoval: a safe removal started, confirmed off by hand, or cancelled.
	AuditRemoval = "removal"
	// AuditPower is a row's or a Pi's power switched (off, on, cycle).
	AuditPower = "power"
	// AuditKiosk is a kiosk link made or revoked.
	AuditKiosk = "kiosk"
	// AuditPassword is a user changing their own password.
	AuditPassword = "password"
	// AuditToken is an enrolment token issued from the page or the API (POST /api/enroll/tokens).
	AuditToken = "token"
	// AuditNotifyTest is a test notification sent from the page (POST /api/notify/test).
	AuditNotifyTest = "notify_test"

	AuditAllowed = "allowed" // authorised; recorded before the action is carried out
	AuditDenied  = "denied"  // refused: bad credentials, rate limit, or a role without the right
	AuditFailed  = "failed"  // allowed, then failed (the broker refused the command)
)

// auditor is what the Server needs of the audit log. *audit.Log implements it; a test swaps in
// one that fails.
type auditor interface {
	Append(e audit.Entry) error
	Tail(n int) ([]audit.Entry, error)
	Path() string
	RotateFailures() uint64
	Close() error
}

var _ auditor = (*audit.Log)(nil)
