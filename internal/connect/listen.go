package connect

import (
	"net"

	"github.com/herald-dev/herald/internal/headerlimit"
)

// DefaultMaxHeaderBytes bounds the request line and headers the commands'
// HTTP servers read; it is headerlimit.DefaultMaxBytes.
const DefaultMaxHeaderBytes = headerlimit.DefaultMaxBytes

// CountHeaderRefusals is headerlimit.CountRefusals: it wraps ln so that
// refused is called each time net/http answers 431 Request Header Fields
// Too Large on one of its connections.
func CountHeaderRefusals(ln net.Listener, refused func()) net.Listener {
	return headerlimit.CountRefusals(ln, refused)
}
