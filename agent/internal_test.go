package agent

import (
	"testing"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

func TestPickPrimary(t *testing.T) {
	ifs := []netIface{
		{name: "lo", up: true, loop: true, addrs: []string{"127.0.0.1/8"}},
		{name: "eth0", up: false, mac: "b8:27:eb:00:00:01"},
		{name: "tun0", up: true, addrs: []string{"10.8.0.2/24"}}, // no hardware address
		{name: "wlan0", up: true, mac: "b8:27:eb:00:00:02", addrs: []string{"fe80::1/64", "2001:db8::5/64", "192.168.1.20/24"}},
		{name: "docker0", up: true, mac: "02:42:ac:11:00:01", addrs: []string{"172.17.0.1/16"}},
	}
	p, ok := pickPrimary(ifs)
	if !ok || p.name != "wlan0" {
		t.Fatalf("pickPrimary = %q, %v; want wlan0", p.name, ok)
	}
	if got := pickIP(p); got != "192.168.1.20" {
		t.Errorf("pickIP = %q, want the IPv4 address", got)
	}
	if got := pickIP(netIface{addrs: []string{"fe80::1/64", "2001:db8::5/64"}}); got != "2001:db8::5" {
		t.Errorf("pickIP without IPv4 = %q, want the global IPv6 address", got)
	}
	if got := ipFor(ifs, "0242ac110001"); got != "172.17.0.1" {
		t.Errorf("ipFor a configured MAC = %q, want that interface's address", got)
	}
	if got := ipFor(ifs, "aabbccddeeff"); got != "192.168.1.20" {
		t.Errorf("ipFor an unknown MAC = %q, want the primary's address", got)
	}
	if _, ok := pickPrimary(ifs[:3]); ok {
		t.Error("picked an interface that is down, loopback or without a MAC")
	}
}

func TestNoStoreKeepsNothing(t *testing.T) {
	var s mqtt.Store = noStore{}
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.Qos, p.MessageID, p.TopicName = 1, 2, "t"
	s.Put("o.2", p)
	if s.Get("o.2") != nil || len(s.All()) != 0 {
		t.Error("noStore kept a packet: paho would re-send it besides the press queue")
	}
}
