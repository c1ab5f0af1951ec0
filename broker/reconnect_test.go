package broker

import (
	"testing"
)

// A clean-session client that reconnects with the same client id the moment its previous
// connection dropped keeps receiving: the old connection's cleanup must not unregister the new
// one (a race in Mochi, which deletes clients by id).
func TestQuickReconnectSameID(t *testing.T) {
	b := startBroker(t)
	for i := range 50 {
		conn := rawConnect(t, b.Addr(), connectPacket{id: "quick", user: "admin", pass: password})
		expectConnack(t, conn, 0)
		msg := publishPacket("quick/x", 0, "ok")
		if _, err := conn.Write(append(subscribePacket("quick/x"), msg...)); err != nil {
			t.Fatal(err)
		}
		want := append([]byte{0x90, 3, 0, 1, 1}, msg...)
		got := readN(t, conn, len(want))
		if string(got) != string(want) {
			t.Fatalf("round %d: received % x, want % x", i, got, want)
		}
		conn.Close() // abruptly, and reconnect at once
	}
}
