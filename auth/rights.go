package auth

import "github.com/pirack/pirack/topics"

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

// Rights returns u's rights. plugTopics maps each row to the topic filters its smart plugs
// publish to (powerbridge.File.PublishFilters); a plug user may write its own row's. A plug
// without a row, or an unknown role, has no rights.
func (u User) Rights(plugTopics map[string][]string) Rights {
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
				topics.LEDStateTopic(u.Row, u.MAC), topics.PowerTopic(u.Row),
			},
		}
	case RolePlug:
		// A plug reads nothing (pirack never commands plugs) and writes only its own row's
		// plug topics, never a pirack topic: the bridge republishes a reading under the
		// contract after checking it.
		if u.Row == "" {
			return Rights{}
		}
		return Rights{Write: append([]string(nil), plugTopics[u.Row]...)}
	}
	return Rights{}
}
