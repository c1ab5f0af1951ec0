package broker

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// wsListener is MQTT over WebSocket. It replaces Mochi's listeners.Websocket, which binds its
// port only once serving (so a port in use is logged, not returned by Start, and ":0" has no
// knowable address), sets no header timeout, and hands Mochi a connection whose write deadlines
// gorilla/websocket silently overrides. With a TLS configuration it serves wss://.
type wsListener struct {
	id, addr  string
	tls       *tls.Config // nil: plain ws://
	ln        net.Listener
	srv       *http.Server
	upgrader  websocket.Upgrader
	establish listeners.EstablishFn
	log       *slog.Logger
}

var _ listeners.Listener = (*wsListener)(nil)

// errTextFrame ends a connection that sends a text frame: MQTT travels in binary frames.
var errTextFrame = errors.New("websocket: text frame; MQTT needs binary frames")

// newWSListener builds the listener, serving wss:// if tlsConfig is not nil; connState sees
// every HTTP connection (the broker counts them as pending until upgraded) and timeout bounds
// the TLS and HTTP handshakes.
func newWSListener(id, addr string, tlsConfig *tls.Config, timeout time.Duration, connState func(net.Conn, http.ConnState), log *slog.Logger) *wsListener {
	l := &wsListener{id: id, addr: addr, log: log}
	if tlsConfig != nil {
		l.tls = tlsConfig.Clone()
		// A clone, so mqtts keeps its own. HTTP/1.1 only, said in ALPN: gorilla/websocket does
		// not do WebSocket over HTTP/2 (RFC 8441).
		l.tls.NextProtos = []string{"http/1.1"}
	}
	l.upgrader = websocket.Upgrader{
		HandshakeTimeout: timeout,
		Subprotocols:     []string{"mqtt", "mqttv3.1"},
		// Any origin: MQTT credentials travel in the CONNECT packet, never in cookies, so a page
		// from another origin has nothing of the user's to ride on; and Node-RED and browser
		// tools on other hosts must be able to connect.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	l.srv = &http.Server{
		Handler:           l,
		ReadHeaderTimeout: timeout,
		ReadTimeout:       timeout, // also bounds the TLS handshake; set again once upgraded
		IdleTimeout:       timeout,
		MaxHeaderBytes:    16 << 10,
		ConnState:         connState,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return l
}

func (l *wsListener) ID() string { return l.id }

func (l *wsListener) Protocol() string {
	if l.tls != nil {
		return "wss"
	}
	return "ws"
}

func (l *wsListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.addr
}

// Init binds the port, so that Start reports an address in use.
func (l *wsListener) Init(*slog.Logger) error {
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return err
	}
	if l.tls != nil {
		// http.Server runs the handshake itself, under its timeouts, and answers a plain HTTP
		// request with 400.
		ln = tls.NewListener(ln, l.tls)
	}
	l.ln = ln
	return nil
}

// Serve accepts connections until Close. establish is set before the first handler runs:
// http.Server.Serve starts them.
func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.establish = establish
	if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.log.Error("MQTT WebSocket listener stopped", "listener", l.id, "error", err)
	}
}

// Close stops listening and closes the connections not yet upgraded; closeClients ends the
// MQTT clients of this listener.
func (l *wsListener) Close(closeClients listeners.CloseFn) {
	_ = l.srv.Close()
	closeClients(l.id)
}

// ServeHTTP upgrades a request and runs the MQTT connection on it until it ends.
func (l *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered with an HTTP error
	}
	c := &wsConn{Conn: ws.NetConn(), ws: ws}
	defer c.Close()
	_ = l.establish(l.id, c)
}

// wsConn is a WebSocket connection as the byte stream Mochi reads MQTT from: binary frames,
// concatenated.
type wsConn struct {
	net.Conn // the underlying connection, for addresses and closing
	ws       *websocket.Conn

	r             io.Reader    // the frame being read; nil between frames
	wmu           sync.Mutex   // one writer at a time, as gorilla/websocket requires
	writeDeadline atomic.Int64 // Unix nanoseconds; 0 means none
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errTextFrame
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue // an empty frame, or the end of one: read on from the next
			}
			err = nil
		}
		return n, err
	}
}

// Write sends p as one binary frame. Mochi writes whole packets.
func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// gorilla/websocket applies its own write deadline at every write (and undoes one set on
	// the connection directly); it must not be set while a write runs.
	var deadline time.Time
	if ns := c.writeDeadline.Load(); ns != 0 {
		deadline = time.Unix(0, ns)
	}
	_ = c.ws.SetWriteDeadline(deadline)
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) SetDeadline(t time.Time) error {
	c.setWriteDeadline(t)
	return c.ws.SetReadDeadline(t)
}

func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.setWriteDeadline(t)
	return nil
}

// setWriteDeadline keeps t for the next Write; the zero time means none.
func (c *wsConn) setWriteDeadline(t time.Time) {
	if t.IsZero() {
		c.writeDeadline.Store(0)
		return
	}
	c.writeDeadline.Store(t.UnixNano())
}
