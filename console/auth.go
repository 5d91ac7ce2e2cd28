package console

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Names the browser and the console agree on.
const (
	// cookieName carries the session a login sets.
	cookieName = "herald_console"
	// actionHeader must accompany every action made with the cookie: a
	// form or a simple cross-site request cannot send it, and a script
	// of another origin cannot without a preflight the console never
	// answers.
	actionHeader = "X-Herald-Console"
)

// sessionValue is what the cookie holds: derived from the token, so the
// token itself is never stored in the browser, and changing the token
// ends every session.
func sessionValue(token string) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("herald console session v1"))
	return []byte(hex.EncodeToString(m.Sum(nil)))
}

// authorized reports whether r carries the token (as a bearer) or the
// session cookie.
func (c *Console) authorized(r *http.Request) bool {
	if c.session == nil {
		return false
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return subtle.ConstantTimeCompare([]byte(tok), []byte(c.cfg.Token)) == 1
	}
	if ck, err := r.Cookie(cookieName); err == nil {
		return subtle.ConstantTimeCompare([]byte(ck.Value), c.session) == 1
	}
	return false
}

// presented reports whether r carries a token or a session at all, right
// or wrong.
func presented(r *http.Request) bool {
	if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		return true
	}
	_, err := r.Cookie(cookieName)
	return err == nil
}

// wrongGuess delays the answer to a wrong token or session by a second,
// one at a time over every client together, so a token is not found by
// trying.
func (c *Console) wrongGuess(ctx context.Context) {
	select {
	case c.guesses <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-c.guesses }()
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Refusals of an action, as the page shows them.
var (
	errCrossSite = errors.New("cross-site request refused")
	errNoHeader  = errors.New("the request lacks the " + actionHeader + " header (or a bearer token)")
	errReadOnly  = errors.New("this console is read-only: start it with an access token (--access-token) to act")
	errNoToken   = errors.New("sign in with the console's access token first")
)

// sameOrigin is the check against cross-site requests every action goes
// through first: the browser's Sec-Fetch-Site or, lacking it, Origin
// against Host (net/http's CrossOriginProtection), and a header a form
// cannot send.
func (c *Console) sameOrigin(r *http.Request) error {
	if err := http.NewCrossOriginProtection().Check(r); err != nil {
		return errCrossSite
	}
	if r.Header.Get(actionHeader) == "" && !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		return errNoHeader
	}
	return nil
}

// allowedHost reports whether the request's Host is one the console
// answers to: an IP literal, localhost, or one of Config.Hosts. A page
// that reached a loopback console through a rebound DNS name has another.
func (c *Console) allowedHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	switch {
	case net.ParseIP(host) != nil, strings.EqualFold(host, "localhost"):
		return true
	case slices.Contains(c.cfg.Hosts, "*"):
		return true
	}
	return slices.ContainsFunc(c.cfg.Hosts, func(h string) bool { return strings.EqualFold(h, host) })
}
