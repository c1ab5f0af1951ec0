package auth

import (
	"slices"

	"github.com/pirack/pirack/topics"
)

// Rights are what a user may do over MQTT, as topic filters: Read for subscriptions and the
// messages delivered to them, Write for publishes (and a Will). pirack's own broker decides by
// them (package broker), and the access files for a foreign broker are written from them
// (package brokerconfig), so both enforce the same rules.
type Rights struct {
	Read, Write []string
}

// SysFilter is the broker's own status tree, which only admins read. MQTT's "#" does not
// match it.
const SysFilter = "$SYS/#"

// PlugTopics are, by row, the rights of that row's smart plug users: Write the plug's own
// topics (its device folder, where it reports), Read its command topics when pirack may switch
// its relay (powerbridge.File.PlugTopics).
type PlugTopics map[string]Rights

// Clone copies p, so that changing the original later changes no rights.
func (p PlugTopics) Clone() PlugTopics {
	out := make(PlugTopics, len(p))
	for row, r := range p {
		out[row] = Rights{Read: slices.Clone(r.Read), Write: slices.Clone(r.Write)}
	}
	return out
}

// Filters are every filter of p's rows, read and written.
func (p PlugTopics) Filters() map[string][]string {
	out := make(map[string][]string, len(p))
	for row, r := range p {
		out[row] = append(slices.Clone(r.Write), r.Read...)
	}
	return out
}

// Rights returns u's rights. plugs are the rights of each row's smart plugs; a plug user has
// its own row's. A plug without a row, or an unknown role, has no rights.
func (u User) Rights(plugs PlugTopics) Rights {
	switch u.Role {
	case RoleAdmin:
		return Rights{Read: []string{"#", SysFilter}, Write: []string{"#"}}
	case RoleViewer:
		return Rights{Read: []string{topics.AllFilter}}
	case RoleAutomation:
		return Rights{Read: []string{topics.AllFilter}, Write: []string{topics.LEDFilter}}
	case RoleHomeAssistant:
		// What Home Assistant's MQTT integration does with its defaults: subscribe to its
		// discovery prefix, birth and Will on its status topic, read the Pis' topics that the
		// discovered entities name, and press the Locate button. It may not write discovery
		// configs: those are the control center's.
		return Rights{
			Read:  []string{topics.HAFilter, topics.AllFilter},
			Write: []string{topics.HAStatusTopic, topics.LEDFilter},
		}
	case RoleAgent:
		// Only the topics an agent publishes by contract, for its own row and MAC: anything
		// else under its prefix (an alert about itself, say) would let a Pi forge the control
		// center's voice. The row's supply is read by whichever Pi of the row has the sensor.
		return Rights{
			Read: []string{topics.LEDTopic(u.MAC), topics.SystemTopic(u.MAC)},
			Write: []string{
				topics.StatusTopic(u.Row, u.MAC), topics.MetricsTopic(u.Row, u.MAC), topics.ButtonTopic(u.Row, u.MAC),
				topics.LEDStateTopic(u.Row, u.MAC), topics.PowerTopic(u.Row), topics.SystemResultTopic(u.Row, u.MAC),
			},
		}
	case RolePlug:
		// A plug writes only its own row's plug topics, never a pirack topic (the bridge
		// republishes a reading under the contract after checking it), and reads its relay's
		// command topic only when pirack may switch it.
		if u.Row == "" {
			return Rights{}
		}
		p := plugs[u.Row]
		return Rights{Read: slices.Clone(p.Read), Write: slices.Clone(p.Write)}
	}
	return Rights{}
}
