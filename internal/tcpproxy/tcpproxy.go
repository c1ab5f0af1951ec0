// Package tcpproxy is a TCP relay on 127.0.0.1 for tests of what crosses a network: its links
// can be cut the way a crashed host cuts them (closed, no MQTT DISCONNECT), frozen the way a
// pulled cable does (no byte and no FIN), and restored. It is imported by tests only.
package tcpproxy

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy relays every connection made to Addr to a target address.
type Proxy struct {
	ln     net.Listener
	target string
	down   atomic.Bool // new connections are closed at once
	frozen atomic.Bool // bytes are dropped, both ways
	mu     sync.Mutex
	conns  []net.Conn
}

// New starts a proxy to target on a free loopback port; it is closed when the test ends.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
	})
	return p
}

// Addr is the proxy's host:port, to dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go p.relay(up, c)
		go p.relay(c, up)
	}
}

// relay copies src to dst, dropping what arrives while the proxy is frozen.
func (p *Proxy) relay(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Cut closes every relayed connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.down.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Restore accepts and relays connections again, and unfreezes.
func (p *Proxy) Restore() {
	p.frozen.Store(false)
	p.down.Store(false)
}

// Freeze stops forwarding bytes, both ways and on every link, without closing anything.
func (p *Proxy) Freeze() { p.frozen.Store(true) }
