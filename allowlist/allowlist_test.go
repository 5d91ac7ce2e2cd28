package allowlist

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMatches(t *testing.T) {
	list := []string{
		"https://*.push.example.com:443",
		"https://api.example.org",
		"http://127.0.0.1:*",
		"http://[::1]:8080",
		"HTTPS://Mixed.Example.NET.:8443",
		"http://10.1.2.3",
	}
	a, err := Parse(list)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url  string
		want bool
	}{
		{"https://eu.push.example.com/v1/push", true},
		{"https://a.b.push.example.com:443/x", true},
		{"https://EU.Push.Example.com./x", true},
		{"https://push.example.com/x", false},           // the wildcard needs a label
		{"https://evilpush.example.com/x", false},       // not a label boundary
		{"https://eu.push.example.com.evil.io/", false}, // suffix only
		{"http://eu.push.example.com/x", false},         // wrong scheme
		{"https://eu.push.example.com:8443/x", false},   // wrong port
		{"https://api.example.org/hook", true},
		{"https://api.example.org:443/hook", true},
		{"https://api.example.org:444/hook", false},
		{"https://user:pass@api.example.org/hook?q=1#f", true},
		{"https://api.example.org@evil.io/hook", false}, // the host is evil.io
		{"http://127.0.0.1:9000/push", true},
		{"http://127.0.0.1/push", true},
		{"https://127.0.0.1:9000/push", false},
		{"http://127.0.0.2:9000/push", false},
		{"http://localhost:9000/push", false}, // names are not resolved
		{"http://[::ffff:127.0.0.1]:9000/push", true},
		{"http://[::1]:8080/push", true},
		{"http://[0:0:0:0:0:0:0:1]:8080/push", true},
		{"http://[::1]:8081/push", false},
		{"https://mixed.example.net:8443/", true},
		{"http://10.1.2.3/", true},
		{"http://10.1.2.3:8080/", false},
		{"http://10.1.2.3./", true}, // the trailing dot is ignored, as for names
		{"ftp://api.example.org/", false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if got := a.Allows(u); got != tt.want {
				t.Errorf("Allows(%s) = %v, want %v", tt.url, got, tt.want)
			}
			err = a.Check(tt.url)
			if tt.want != (err == nil) || (err != nil && !errors.Is(err, ErrNotAllowed)) {
				t.Errorf("Check(%s) = %v", tt.url, err)
			}
		})
	}
}

func TestWildcardsNeverMatchAddresses(t *testing.T) {
	a, err := Parse([]string{"http://*.1:*", "http://*.0.0.1:*"})
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"http://10.0.0.1/", "http://127.0.0.1:80/"} {
		u, _ := url.Parse(raw)
		if a.Allows(u) {
			t.Errorf("%s allowed by a name wildcard", raw)
		}
	}
	anyHost, _ := Parse([]string{"https://*:443"})
	u, _ := url.Parse("https://10.0.0.1/")
	if !anyHost.Allows(u) {
		t.Error("host * should allow every host, addresses included")
	}
}

func TestEmptyDeniesAll(t *testing.T) {
	var nilList *List
	empty, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]*List{"nil": nilList, "empty": empty} {
		t.Run(name, func(t *testing.T) {
			err := a.Check("http://127.0.0.1:8080/push")
			if !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), "--allow-endpoint") {
				t.Errorf("Check = %v, want a refusal that says how to allow", err)
			}
			if a.Len() != 0 || a.String() != "" {
				t.Errorf("Len %d String %q", a.Len(), a.String())
			}
		})
	}
}

func TestPatternErrors(t *testing.T) {
	for _, p := range []string{
		"",
		"127.0.0.1:8080",
		"ftp://example.com",
		"http://example.com/path",
		"http://user@example.com",
		"http://example.com:",
		"http://example.com:0",
		"http://example.com:65536",
		"http://example.com:08080",
		"http://example.com:http",
		"http://*example.com",
		"http://a.*.example.com",
		"http://exa mple.com",
		"http://::1",
		"http://[::1",
		"http://[::1]x",
		"http://[127.0.0.1]",
		"http://" + strings.Repeat("a", 64) + ".com",
	} {
		t.Run(p, func(t *testing.T) {
			if _, err := Parse([]string{p}); !errors.Is(err, ErrPattern) {
				t.Errorf("Parse(%q) = %v, want ErrPattern", p, err)
			}
		})
	}
}

func TestReadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "allow")
	text := "# endpoints of the push gateway\nhttps://*.push.example.com\n\n  http://127.0.0.1:*   # local sink\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "https://*.push.example.com,http://127.0.0.1:*" {
		t.Errorf("got %q", got)
	}
	if err := os.WriteFile(path, []byte("https://ok.example.com\nnot a pattern\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); !errors.Is(err, ErrPattern) || !strings.Contains(err.Error(), ":2:") {
		t.Errorf("bad line: %v, want ErrPattern naming line 2", err)
	}
}

func TestNotAllowedReasonIsBounded(t *testing.T) {
	a, _ := Parse([]string{"https://ok.example.com"})
	err := a.Check("https://" + strings.Repeat("x", 10000) + ".example.com/")
	if err == nil || len(err.Error()) > 200 {
		t.Errorf("reason of %d bytes: %.80v", len(err.Error()), err)
	}
}

// FuzzAllowlist: no pattern or URL makes the parser or matcher panic, a
// pattern that parses allows the URL made from its own parts, and nothing
// is allowed by an empty list.
func FuzzAllowlist(f *testing.F) {
	f.Add("https://*.push.example.com:443", "https://eu.push.example.com/x")
	f.Add("http://[::1]:*", "http://[::1]:9/")
	f.Add("http://127.0.0.1", "http://127.0.0.1:80/p")
	f.Add("https://*:*", "https://%31.2.3.4/")
	f.Fuzz(func(t *testing.T, pattern, raw string) {
		a, err := Parse([]string{pattern})
		if err != nil {
			if !errors.Is(err, ErrPattern) {
				t.Fatalf("Parse(%q) = %v", pattern, err)
			}
			a = nil
		}
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		if a == nil && a.Allows(u) {
			t.Fatalf("a nil list allowed %q", raw)
		}
		if a.Allows(u) && !strings.EqualFold(u.Scheme, a.rules[0].scheme) {
			t.Fatalf("%q allowed %q with another scheme", pattern, raw)
		}
	})
}
