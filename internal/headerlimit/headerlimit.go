// Package headerlimit bounds the request headers Herald's HTTP servers read
// and counts the requests net/http refuses for their size: a default for
// http.Server.MaxHeaderBytes, and a listener wrapper that reports each 431
// Request Header Fields Too Large net/http answers on its own.
//
// It imports only the standard library, so the reference endpoint (sink)
// and the commands' servers share it without pulling in any client. It
// starts no goroutine and keeps no state beyond the wrapped listener.
package headerlimit

import (
	"bytes"
	"net"
)

// DefaultMaxBytes bounds the request line and headers Herald's HTTP
// servers read: deliveries and probes carry a few short headers, and
// net/http's own default (1 MiB) would let each connection hold a mebibyte.
const DefaultMaxBytes = 16 << 10

// CountRefusals wraps ln so that refused is called each time net/http
// answers 431 Request Header Fields Too Large on one of its connections.
// net/http sends that answer itself, before any handler runs, for a request
// whose headers pass http.Server.MaxHeaderBytes; nothing else tells a
// server it happened. refused must be safe for concurrent use.
func CountRefusals(ln net.Listener, refused func()) net.Listener {
	return &refusalListener{Listener: ln, refused: refused}
}

type refusalListener struct {
	net.Listener
	refused func()
}

func (l *refusalListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &refusalConn{Conn: c, refused: l.refused}, nil
}

// status431 starts the answer net/http writes, in one Write, for headers
// over the limit.
var status431 = []byte("HTTP/1.1 431 ")

type refusalConn struct {
	net.Conn
	refused func()
}

func (c *refusalConn) Write(p []byte) (int, error) {
	if bytes.HasPrefix(p, status431) {
		c.refused()
	}
	return c.Conn.Write(p)
}

// CloseWrite keeps the half-close net/http uses after such an answer, so
// the client reads the 431 rather than a reset.
func (c *refusalConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
