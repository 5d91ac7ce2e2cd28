package allowlist

import (
	"net/netip"
	"strconv"
	"strings"
)

// rule is one parsed pattern.
type rule struct {
	text   string // as given, for String and errors
	scheme string
	host   string     // lower case, no trailing dot; for a wildcard the suffix with its leading dot
	ip     netip.Addr // valid when host is an IP address
	wild   bool       // "*.suffix"
	any    bool       // "*"
	port   string     // "" means any
}

func parseRule(p string) (rule, error) {
	bad := func(why string) (rule, error) { return rule{}, badPattern(p, why) }
	r := rule{text: p}
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

// matches reports whether the rule allows an origin, given as Allows
// normalises it: scheme and host in lower case, the host without a
// trailing dot and parsed as an address when it is one, the port filled
// in.
func (r rule) matches(scheme, host, port string, ip netip.Addr, isIP bool) bool {
	if r.scheme != scheme || (r.port != "" && r.port != port) {
		return false
	}
	switch {
	case r.any:
		return true
	case r.wild:
		return !isIP && len(host) > len(r.host) && strings.HasSuffix(host, r.host) && host[0] != '.'
	case r.ip.IsValid():
		return isIP && ip.WithZone("").Unmap() == r.ip.Unmap()
	default:
		return !isIP && host == r.host
	}
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
