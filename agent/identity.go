package agent

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/pirack/pirack/topics"
)

// netIface is what identity needs of a network interface, so the choice is testable on literals.
type netIface struct {
	name  string
	up    bool
	loop  bool
	mac   string // hardware address as net.HardwareAddr.String() prints it; "" if none
	addrs []string
}

// systemInterfaces lists the machine's interfaces in kernel index order.
func systemInterfaces() ([]netIface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]netIface, 0, len(ifs))
	for _, i := range ifs {
		n := netIface{name: i.Name, up: i.Flags&net.FlagUp != 0, loop: i.Flags&net.FlagLoopback != 0}
		if len(i.HardwareAddr) == 6 { // MAC-48 only: topics use 12 hex digits
			n.mac = i.HardwareAddr.String()
		}
		if addrs, err := i.Addrs(); err == nil {
			for _, a := range addrs {
				n.addrs = append(n.addrs, a.String())
			}
		}
		out = append(out, n)
	}
	return out, nil
}

// pickPrimary returns the first interface that is up, not loopback and has a MAC-48 address.
func pickPrimary(ifs []netIface) (netIface, bool) {
	for _, i := range ifs {
		if i.up && !i.loop && i.mac != "" {
			return i, true
		}
	}
	return netIface{}, false
}

// pickIP returns the address to report for the interface: the first IPv4 address, else the
// first global IPv6 one, else "".
func pickIP(i netIface) string {
	var v6 string
	for _, a := range i.addrs {
		ip, _, err := net.ParseCIDR(a)
		if err != nil {
			ip = net.ParseIP(a)
		}
		switch {
		case ip == nil:
		case ip.To4() != nil:
			return ip.String()
		case v6 == "" && ip.IsGlobalUnicast():
			v6 = ip.String()
		}
	}
	return v6
}

// interfaceIP is the IP of the interface carrying mac (normalised), else of the primary
// interface. It is looked up at each connection, since DHCP may have changed it.
func interfaceIP(mac string) string {
	ifs, err := systemInterfaces()
	if err != nil {
		return ""
	}
	return ipFor(ifs, mac)
}

func ipFor(ifs []netIface, mac string) string {
	for _, i := range ifs {
		if i.mac != "" && strings.ReplaceAll(i.mac, ":", "") == mac {
			return pickIP(i)
		}
	}
	if p, ok := pickPrimary(ifs); ok {
		return pickIP(p)
	}
	return ""
}

// PrimaryMAC is the MAC an agent uses when none is given: that of the first interface that is
// up, not loopback, with a hardware address (and the interface's name), normalised.
func PrimaryMAC() (mac, iface string, err error) {
	ifaces, err := systemInterfaces()
	if err != nil {
		return "", "", fmt.Errorf("list network interfaces: %w", err)
	}
	p, ok := pickPrimary(ifaces)
	if !ok {
		return "", "", errors.New("no network interface that is up with a hardware address; pass the MAC with --mac")
	}
	mac, err = topics.NormalizeMAC(p.mac)
	return mac, p.name, err
}
