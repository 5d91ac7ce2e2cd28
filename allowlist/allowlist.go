// Package allowlist decides which endpoint origins a Herald fleet may send
// deliveries to. Whoever can write a trigger chooses the endpoint URL;
// without a list, a fleet inside a private network would POST wherever it
// is told. The workers check the list at intake and again before every
// attempt; `herald trigger` can check it before producing.
//
// A List is parsed once and is then read-only, safe for concurrent use. The
// package compares origins only: it does not resolve names, read a spec or
// count refusals (the worker counts them).
package allowlist

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// Errors of the endpoint allowlist.
var (
	// ErrNotAllowed: an endpoint is outside the list, so nothing is sent
	// to it.
	ErrNotAllowed = errors.New("allowlist: endpoint not allowed")
	// ErrPattern: a pattern cannot be read.
	ErrPattern = errors.New("allowlist: bad endpoint pattern")
)

// List is the set of endpoint origins workers may send deliveries to. A
// nil or empty List allows nothing.
//
// A pattern is an origin: scheme://host:port, where
//   - scheme is http or https;
//   - host is a DNS name or an IP address (IPv6 in brackets), compared
//     without regard to case or a trailing dot; "*." in front of a name
//     stands for one or more labels ("*.push.example.com" allows
//     "eu.push.example.com" and "a.b.push.example.com", not
//     "push.example.com"), and a host of "*" alone allows every host;
//     a wildcard never matches an IP address;
//   - port is a number or "*" for any; left out, it is the scheme's
//     default (80 or 443), which is also the port of a URL without one.
//
// Only the origin is compared: paths, queries and user info play no part.
// A name is compared as written, not as resolved: an allowed name whose DNS
// points elsewhere is still allowed (docs/SECURITY.md).
type List struct {
	rules []rule
}

// Parse reads patterns (see List); an empty slice gives a list that allows
// nothing. A bad pattern is an error wrapping ErrPattern.
func Parse(patterns []string) (*List, error) {
	l := &List{}
	for _, p := range patterns {
		r, err := parseRule(p)
		if err != nil {
			return nil, err
		}
		l.rules = append(l.rules, r)
	}
	return l, nil
}

// Allows reports whether u's origin matches a pattern. u is compared as
// net/http will dial it, so callers pass the very URL that is sent to.
func (l *List) Allows(u *url.URL) bool {
	if l == nil || u == nil {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "" {
		return false
	}
	port := u.Port()
	if port == "" {
		port = defaultPort(scheme)
	}
	ip, ipErr := netip.ParseAddr(host)
	isIP := ipErr == nil
	for _, r := range l.rules {
		if r.matches(scheme, host, port, ip, isIP) {
			return true
		}
	}
	return false
}

// Check parses rawURL and returns nil if its origin is allowed. A refusal
// matches ErrNotAllowed and its text is the reason alone, worded for
// whoever wrote the trigger: it names the origin, never the list, which is
// the operator's business. Callers add their own context.
func (l *List) Check(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return notAllowed("not a URL")
	}
	return l.CheckURL(u)
}

// maxOriginInError keeps a hostile URL from filling the reason stored
// with a rejected broadcast.
const maxOriginInError = 100

// CheckURL is Check for a parsed URL.
func (l *List) CheckURL(u *url.URL) error {
	if l.Allows(u) {
		return nil
	}
	if u == nil {
		return notAllowed("not a URL")
	}
	origin := strings.ToLower(u.Scheme) + "://" + u.Host
	if len(origin) > maxOriginInError {
		origin = strings.ToValidUTF8(origin[:maxOriginInError], "") + "..."
	}
	if l.Len() == 0 {
		return notAllowed(origin + ": the workers allow no endpoint at all (configure --allow-endpoint)")
	}
	return notAllowed(origin + " is not in the workers' endpoint allowlist")
}

// notAllowed is a refusal: its text is the reason, and it matches
// ErrNotAllowed.
type notAllowed string

func (e notAllowed) Error() string        { return string(e) }
func (e notAllowed) Is(target error) bool { return target == ErrNotAllowed }

// Len is the number of patterns.
func (l *List) Len() int {
	if l == nil {
		return 0
	}
	return len(l.rules)
}

// String lists the patterns, comma-separated, as given.
func (l *List) String() string {
	if l == nil {
		return ""
	}
	texts := make([]string, len(l.rules))
	for i, r := range l.rules {
		texts[i] = r.text
	}
	return strings.Join(texts, ",")
}

// badPattern is the error of a pattern that cannot be read.
func badPattern(p, why string) error {
	return fmt.Errorf("%w %q: %s", ErrPattern, p, why)
}
