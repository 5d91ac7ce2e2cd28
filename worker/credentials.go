package worker

import (
	"fmt"
	"strings"

	"github.com/herald-dev/herald/signature"
	"github.com/herald-dev/herald/spec"
)

// Secrets supplies named secrets to a worker: endpoint credentials and
// signing keys that triggers refer to by name only. Secret returns the
// value of name, or an error wrapping fs.ErrNotExist when there is none.
// internal/connect reads them from a directory and the environment.
type Secrets interface {
	Secret(name string) ([]byte, error)
}

// credentials are what a broadcast's sender needs from secrets.
type credentials struct {
	keys [][]byte // signing keys, nil for unsigned
	auth string   // the Authorization header value, "" for none
}

// loadCredentials reads the secrets e names. A refusal names the spec
// field at fault, with a message that never quotes a secret's value; its
// ID is the caller's to fill in.
func loadCredentials(src Secrets, e spec.Endpoint) (credentials, *spec.Error) {
	var c credentials
	read := func(name string) ([]byte, string) {
		v, err := readSecret(src, name)
		if err != nil {
			return nil, err.Error()
		}
		return v, ""
	}
	if name := e.SigningSecret; name != "" {
		bad := func(msg string) (credentials, *spec.Error) {
			return credentials{}, &spec.Error{Field: "endpoint.signing_secret", Msg: msg}
		}
		v, msg := read(name)
		if msg != "" {
			return bad(msg)
		}
		keys, err := signature.ParseKeys(v)
		if err != nil {
			return bad(fmt.Sprintf("secret %q does not hold signing keys: %v", name, err))
		}
		c.keys = keys
	}
	if name := e.AuthSecret; name != "" {
		bad := func(msg string) (credentials, *spec.Error) {
			return credentials{}, &spec.Error{Field: "endpoint.auth_secret", Msg: msg}
		}
		v, msg := read(name)
		if msg != "" {
			return bad(msg)
		}
		// A trailing newline is what most ways of writing a file leave.
		c.auth = strings.TrimSpace(string(v))
		if c.auth == "" || !validHeaderValue(c.auth) {
			return bad(fmt.Sprintf("secret %q is not a usable Authorization value (empty, or control characters)", name))
		}
	}
	return c, nil
}

// validHeaderValue reports whether v can go in a header as is.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
