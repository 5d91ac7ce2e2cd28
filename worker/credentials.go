package worker

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/herald-dev/herald/signature"
)

// Errors of the endpoint allowlist.
var (
	// ErrEndpointNotAllowed: a broadcast's endpoint is outside the
	// workers' allowlist, so nothing is sent to it.
	ErrEndpointNotAllowed = errors.New("worker: endpoint not allowed")
	// ErrAllowPattern: an allowlist pattern cannot be read.
	ErrAllowPattern = errors.New("worker: bad endpoint allowlist pattern")
)

// Allowlist is the set of endpoint origins workers may send deliveries to.
// Whoever can write a trigger chooses the endpoint URL; without a list, a
// fleet inside a private network would POST wherever it is told. A nil or
// empty Allowlist allows nothing.
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
type Allowlist struct {
	rules []allowRule
}

type allowRule struct {
	text   string // as given, for String and errors
	scheme string
	host   string     // lower case, no trailing dot; for a wildcard the suffix with its leading dot
	ip     netip.Addr // valid when host is an IP address
	wild   bool       // "*.suffix"
	any    bool       // "*"
	port   string     // "" means any
}

// ParseAllowlist reads patterns (see Allowlist); an empty slice gives a
// list that allows nothing.
func ParseAllowlist(patterns []string) (*Allowlist, error) {
	a := &Allowlist{}
	for _, p := range patterns {
		r, err := parseAllowRule(p)
		if err != nil {
			return nil, err
		}
		a.rules = append(a.rules, r)
	}
	return a, nil
}

// maxAllowFile bounds an allowlist file: thousands of patterns fit.
const maxAllowFile = 1 << 20

// ReadAllowlistFile reads patterns from a file of one pattern a line;
// blank lines and everything after a # are ignored.
func ReadAllowlistFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("worker: read allowlist: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxAllowFile+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("worker: read allowlist %s: %w", path, err)
	case len(data) > maxAllowFile:
		return nil, fmt.Errorf("worker: read allowlist %s: more than %d bytes", path, maxAllowFile)
	}
	var out []string
	n := 0
	for raw := range strings.Lines(string(data)) {
		n++
		line, _, _ := strings.Cut(raw, "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if _, err := parseAllowRule(line); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, line)
	}
	return out, nil
}

func parseAllowRule(p string) (allowRule, error) {
	bad := func(why string) (allowRule, error) {
		return allowRule{}, fmt.Errorf("%w %q: %s", ErrAllowPattern, p, why)
	}
	r := allowRule{text: p}
	scheme, rest, ok := strings.Cut(strings.TrimSpace(p), "://")
	if !ok {
		return bad("want scheme://host:port")
	}
	r.scheme = strings.ToLower(scheme)
	if r.scheme != "http" && r.scheme != "https" {
		return bad("scheme must be http or https")
	}
	if strings.ContainsAny(rest, "/?#@") {
		return bad("an origin has no user, path, query or fragment")
	}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return bad("unclosed [ in an IPv6 address")
		}
		host, port = rest[1:end], rest[end+1:]
		if port != "" && !strings.HasPrefix(port, ":") {
			return bad("text after the IPv6 address")
		}
		port = strings.TrimPrefix(port, ":")
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() {
			return bad("not an IPv6 address in brackets")
		}
		r.ip = ip
	} else {
		if i := strings.LastIndexByte(rest, ':'); i >= 0 {
			host, port = rest[:i], rest[i+1:]
			if port == "" {
				return bad("empty port (leave out the colon for the default)")
			}
		}
		host = strings.TrimSuffix(strings.ToLower(host), ".")
		switch {
		case host == "*":
			r.any = true
		case strings.HasPrefix(host, "*."):
			r.wild, host = true, host[1:]
			if !hostName(host[1:]) {
				return bad("wildcard must be followed by a DNS name")
			}
		default:
			if ip, err := netip.ParseAddr(host); err == nil {
				if ip.Is6() {
					return bad("IPv6 addresses go in brackets")
				}
				r.ip = ip
			} else if !hostName(host) {
				return bad("host is not a DNS name or IP address; a wildcard is allowed only as the leftmost label(s), as in *.example.com")
			}
		}
	}
	r.host = host
	switch {
	case port == "":
		r.port = defaultPort(r.scheme)
	case port == "*":
		r.port = ""
	default:
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return bad("port must be 1 to 65535 or *")
		}
		r.port = port
	}
	return r, nil
}

// hostName reports whether s is made of DNS labels of letters, digits,
// hyphens and underscores (the last appear in real service names).
func hostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// Allows reports whether u's origin matches a pattern. u is compared as
// net/http will dial it, so callers pass the very URL that is sent to.
func (a *Allowlist) Allows(u *url.URL) bool {
	if a == nil || u == nil {
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
	for _, r := range a.rules {
		if r.scheme != scheme || (r.port != "" && r.port != port) {
			continue
		}
		switch {
		case r.any:
			return true
		case r.wild:
			if !isIP && len(host) > len(r.host) && strings.HasSuffix(host, r.host) && host[0] != '.' {
				return true
			}
		case r.ip.IsValid():
			if isIP && ip.WithZone("").Unmap() == r.ip.Unmap() {
				return true
			}
		case !isIP && host == r.host:
			return true
		}
	}
	return false
}

// Check parses rawURL and returns nil if its origin is allowed, or an error
// wrapping ErrEndpointNotAllowed that names the origin (never the list,
// which is the operator's business, not the trigger author's).
func (a *Allowlist) Check(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: not a URL", ErrEndpointNotAllowed)
	}
	return a.CheckURL(u)
}

// maxOriginInError keeps a hostile URL from filling the reason stored
// with a rejected broadcast.
const maxOriginInError = 100

// CheckURL is Check for a parsed URL.
func (a *Allowlist) CheckURL(u *url.URL) error {
	if a.Allows(u) {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrEndpointNotAllowed, a.why(u))
}

// why says why u is not allowed.
func (a *Allowlist) why(u *url.URL) string {
	origin := strings.ToLower(u.Scheme) + "://" + u.Host
	if len(origin) > maxOriginInError {
		origin = strings.ToValidUTF8(origin[:maxOriginInError], "") + "..."
	}
	if a.Len() == 0 {
		return origin + ": the workers allow no endpoint at all (configure --allow-endpoint)"
	}
	return origin + " is not in the workers' endpoint allowlist"
}

// senderCheck is the check the delivery Sender makes before every attempt,
// with the reason worded for a dead letter.
func (a *Allowlist) senderCheck(u *url.URL) error {
	if a.Allows(u) {
		return nil
	}
	return errors.New(a.why(u))
}

// Len is the number of patterns.
func (a *Allowlist) Len() int {
	if a == nil {
		return 0
	}
	return len(a.rules)
}

// String lists the patterns, comma-separated, as given.
func (a *Allowlist) String() string {
	if a == nil {
		return ""
	}
	texts := make([]string, len(a.rules))
	for i, r := range a.rules {
		texts[i] = r.text
	}
	return strings.Join(texts, ",")
}

// senderAllow is the Sender's check before every attempt. Intake has
// already refused what the list does not allow, so a refusal here means a
// spec reached etcd without passing intake (written there directly, or by
// a worker with another list): counted, so it can raise an alarm.
func (w *Worker) senderAllow(u *url.URL) error {
	err := w.cfg.Allow.senderCheck(u)
	if err != nil {
		w.admit.notAllowed.WithLabelValues("sender").Inc()
	}
	return err
}

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

// loadCredentials reads the secrets e names. A refusal is returned as the
// spec field at fault and a message that never quotes a secret's value.
func loadCredentials(src Secrets, e EndpointSpec) (c credentials, field, msg string) {
	read := func(name string) ([]byte, string) {
		if src == nil {
			return nil, fmt.Sprintf("no secret named %q: the workers have no secrets configured (--secrets-dir, HERALD_SECRET_<NAME>)", name)
		}
		v, err := src.Secret(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Sprintf("no secret named %q on the workers", name)
		case err != nil:
			return nil, fmt.Sprintf("secret %q cannot be read: %v", name, err)
		}
		return v, ""
	}
	if name := e.SigningSecret; name != "" {
		v, msg := read(name)
		if msg != "" {
			return c, "endpoint.signing_secret", msg
		}
		keys, err := signature.ParseKeys(v)
		if err != nil {
			return c, "endpoint.signing_secret", fmt.Sprintf("secret %q does not hold signing keys: %v", name, err)
		}
		c.keys = keys
	}
	if name := e.AuthSecret; name != "" {
		v, msg := read(name)
		if msg != "" {
			return c, "endpoint.auth_secret", msg
		}
		// A trailing newline is what most ways of writing a file leave.
		c.auth = strings.TrimSpace(string(v))
		if c.auth == "" || !validHeaderValue(c.auth) {
			return c, "endpoint.auth_secret", fmt.Sprintf("secret %q is not a usable Authorization value (empty, or control characters)", name)
		}
	}
	return c, "", ""
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

// underDir reports whether path, made absolute against the working
// directory and cleaned, lies inside dir. It compares names only: links
// inside dir are the operator's and are trusted.
func underDir(dir, path string) bool {
	if path == "" {
		return false
	}
	d, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	p, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && rel != "."
}
