package console

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/spec"
)

// register records a pending broadcast directly in etcd, as intake does.
func register(t *testing.T, s *stack, id, raw string) {
	t.Helper()
	if _, err := s.reg.Register(context.Background(), coordinator.Broadcast{ID: id, Spec: []byte(raw)}); err != nil {
		t.Fatal(err)
	}
}

const plainSpec = `{"id":%q,"audience":{"source":"synthetic","count":5000},"template":{"default_locale":"en","locales":{"en":{"title":"hi"}}},"endpoint":{"url":"http://127.0.0.1:9/push"}}`

func specOf(id string) string { return strings.Replace(plainSpec, "%q", `"`+id+`"`, 1) }

// TestLiveUpdates: a page's stream starts with a snapshot of what etcd
// holds, and a change made elsewhere (the CLI's SetState) reaches it
// through the console's one watch.
func TestLiveUpdates(t *testing.T) {
	s := newEtcd(t)
	register(t, s, "before", specOf("before"))
	_, srv := s.serve(Config{}, nil)
	waitFor(t, 5*time.Second, "the list", func() bool {
		code, _, _ := do(t, srv, "GET", "/api/broadcasts/before", "", nil)
		return code == http.StatusOK
	})
	all := openEvents(t, srv, "/events")
	one := openEvents(t, srv, "/events?id=after")
	waitFor(t, 5*time.Second, "snapshot", func() bool { _, ok := all.find("snapshot", `"id":"before"`); return ok })

	register(t, s, "after", specOf("after"))
	waitFor(t, 5*time.Second, "the new broadcast", func() bool { _, ok := all.find("update", `"id":"after"`); return ok })
	if err := s.reg.SetState(context.Background(), "after", coordinator.Pause); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "paused, on both streams", func() bool {
		_, a := all.find("update", `"id":"after","state":"paused"`)
		_, b := one.find("update", `"id":"after","state":"paused"`)
		return a && b
	})
	if _, ok := one.find("update", `"id":"before"`); ok {
		t.Error("a broadcast's page got another broadcast's update")
	}
	if err := s.reg.Reject(context.Background(), "refused", []byte(`{"id":"refused"}`), "endpoint.url: missing"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the rejection and its reason", func() bool {
		_, ok := all.find("update", `"id":"refused","state":"rejected"`)
		ev, _ := all.find("update", `"id":"refused"`)
		return ok && strings.Contains(ev.data, `"reason":"endpoint.url: missing"`)
	})
	ev, _ := all.find("update", `"id":"after"`)
	for _, want := range []string{`"total":5000`, `"audience":"synthetic, 5,000"`, `"endpoint":"http://127.0.0.1:9/push"`} {
		if !strings.Contains(ev.data, want) {
			t.Errorf("update lacks %s:\n%s", want, ev.data)
		}
	}
}

// TestNoSecretReachesAPage: the endpoint's credentials and query, the
// template and the secrets' names stay out of every answer.
func TestNoSecretReachesAPage(t *testing.T) {
	s := newEtcd(t)
	raw := `{"id":"sec","audience":{"source":"synthetic","count":10},"template":{"default_locale":"en","locales":{"en":{"title":"TEMPLATE-TEXT"}}},` +
		`"endpoint":{"url":"https://user:PASSWORD@push.example.com/p?key=QUERYSECRET","signing_secret":"SIGNING-NAME","auth_secret":"AUTH-NAME"}}`
	if _, _, err := spec.Parse([]byte(raw), spec.Limits{}); err != nil {
		t.Fatal(err)
	}
	register(t, s, "sec", raw)
	_, srv := s.serve(Config{}, nil)
	waitFor(t, 5*time.Second, "the list", func() bool {
		code, _, _ := do(t, srv, "GET", "/api/broadcasts/sec", "", nil)
		return code == http.StatusOK
	})
	ev := openEvents(t, srv, "/events?id=sec")
	waitFor(t, 5*time.Second, "snapshot", func() bool { _, ok := ev.find("snapshot", `"id":"sec"`); return ok })
	snap, _ := ev.find("snapshot", "sec")
	_, one, _ := do(t, srv, "GET", "/api/broadcasts/sec", "", nil)
	for _, got := range []string{snap.data, toJSON(one)} {
		for _, secret := range []string{"PASSWORD", "QUERYSECRET", "SIGNING-NAME", "AUTH-NAME", "TEMPLATE-TEXT", "user"} {
			if strings.Contains(got, secret) {
				t.Errorf("%s reached a page: %s", secret, got)
			}
		}
		if !strings.Contains(got, `"endpoint":"https://push.example.com/p"`) || !strings.Contains(got, `"signed":true`) {
			t.Errorf("the spec summary lacks the endpoint or the signature: %s", got)
		}
	}
}

// TestActions: who may act, and how a refusal looks.
func TestActions(t *testing.T) {
	s := newEtcd(t)
	register(t, s, "b1", specOf("b1"))
	_, srv := s.serve(Config{Token: testToken}, nil)
	_, ro := s.serve(Config{}, nil)
	bearer := map[string]string{"Authorization": "Bearer " + testToken}
	page := map[string]string{actionHeader: "1"}

	// Sign in to get the cookie.
	code, _, h := do(t, srv, "POST", "/api/login", `{"token":"`+testToken+`"}`, page)
	if code != http.StatusOK {
		t.Fatalf("login: %d", code)
	}
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == cookieName {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || strings.Contains(cookie.Value, testToken) {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, not the token", cookie)
	}
	withCookie := func(more map[string]string) map[string]string {
		m := map[string]string{"Cookie": cookieName + "=" + cookie.Value}
		for k, v := range more {
			m[k] = v
		}
		return m
	}

	tests := []struct {
		name string
		srv  string
		hdr  map[string]string
		want int
	}{
		{"no token", "rw", page, http.StatusUnauthorized},
		{"wrong bearer", "rw", map[string]string{"Authorization": "Bearer wrong-token-0123456789"}, http.StatusUnauthorized},
		{"cookie without the page's header", "rw", withCookie(nil), http.StatusForbidden},
		{"cookie, cross-site", "rw", withCookie(map[string]string{actionHeader: "1", "Sec-Fetch-Site": "cross-site"}), http.StatusForbidden},
		{"cookie, other origin", "rw", withCookie(map[string]string{actionHeader: "1", "Origin": "http://evil.example"}), http.StatusForbidden},
		{"read-only console", "ro", bearer, http.StatusForbidden},
		{"bearer", "rw", bearer, http.StatusOK},
		{"cookie from the page", "rw", withCookie(map[string]string{actionHeader: "1", "Sec-Fetch-Site": "same-origin"}), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			to := srv
			if tt.srv == "ro" {
				to = ro
			}
			code, out, _ := do(t, to, "POST", "/api/broadcasts/b1/pause", "", tt.hdr)
			if code == http.StatusOK {
				// Allowed: undo, for the next case.
				if err := s.reg.SetState(context.Background(), "b1", coordinator.Resume); err != nil {
					t.Fatal(err)
				}
			}
			if code != tt.want {
				t.Fatalf("pause: %d %v, want %d", code, out, tt.want)
			}
			if code != http.StatusOK && out["error"] == "" {
				t.Errorf("a refusal without a reason: %v", out)
			}
		})
	}
	if st, _ := s.reg.Status(context.Background(), "b1"); st.State != coordinator.StatePending {
		t.Errorf("state %s after the refusals and undone passes, want pending", st.State)
	}

	code, out, _ := do(t, srv, "POST", "/api/broadcasts/nope/cancel", "", bearer)
	if code != http.StatusNotFound {
		t.Errorf("cancel of an unknown id: %d %v", code, out)
	}
	code, out, _ = do(t, srv, "POST", "/api/broadcasts/b1/resume", "", bearer)
	if code != http.StatusConflict {
		t.Errorf("resume of a pending broadcast: %d %v, want 409", code, out)
	}
	code, _, _ = do(t, srv, "POST", "/api/login", `{"token":"not-the-token-at-all"}`, page)
	if code != http.StatusUnauthorized {
		t.Errorf("login with a wrong token: %d", code)
	}
	code, _, _ = do(t, srv, "POST", "/api/login", strings.Repeat("x", maxLoginBody+1), page)
	if code != http.StatusBadRequest {
		t.Errorf("login with a large body: %d", code)
	}
}

// TestTrigger: a spec is checked as `herald trigger` checks it, a refusal
// names its field, and only a valid one is produced.
func TestTrigger(t *testing.T) {
	s := newEtcd(t)
	var produced atomic.Int32
	prod := ProducerFunc(func(ctx context.Context, raw []byte) (spec.Spec, error) {
		sp, _, err := spec.Parse(raw, spec.Limits{})
		if err != nil {
			return spec.Spec{}, err
		}
		if strings.Contains(sp.Endpoint.URL, "kafka-down") {
			return spec.Spec{}, errors.New("trigger: produce: kafka down")
		}
		produced.Add(1)
		return sp, nil
	})
	_, srv := s.serve(Config{Token: testToken}, prod)
	bearer := map[string]string{"Authorization": "Bearer " + testToken}
	tests := []struct {
		name, body string
		code       int
		field      string
	}{
		{"valid", specOf("t1"), http.StatusAccepted, ""},
		{"bad url", strings.Replace(specOf("t2"), "http://127.0.0.1:9/push", "ftp://x", 1), http.StatusUnprocessableEntity, "endpoint.url"},
		{"bad id", specOf("no spaces allowed"), http.StatusUnprocessableEntity, "id"},
		{"bad template", strings.Replace(specOf("t3"), `"hi"`, `"{{.name"`, 1), http.StatusUnprocessableEntity, "template.locales.en.title"},
		{"not json", "{", http.StatusUnprocessableEntity, ""},
		{"kafka down", strings.Replace(specOf("t4"), "127.0.0.1:9", "kafka-down", 1), http.StatusBadGateway, ""},
		{"too large", `{"id":"big","x":"` + strings.Repeat("x", 1<<20) + `"}`, http.StatusRequestEntityTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, _ := do(t, srv, "POST", "/api/trigger", tt.body, bearer)
			if code != tt.code || (tt.field != "" && out["field"] != tt.field) {
				t.Fatalf("trigger: %d %v, want %d at field %q", code, out, tt.code, tt.field)
			}
		})
	}
	if n := produced.Load(); n != 1 {
		t.Errorf("%d produced, want 1 (the valid one)", n)
	}
	code, _, _ := do(t, srv, "POST", "/api/trigger", specOf("t5"), map[string]string{actionHeader: "1"})
	if code != http.StatusUnauthorized {
		t.Errorf("trigger without the token: %d", code)
	}
}

// TestHostAndHeaders: a page reached through another host name (DNS
// rebinding) is refused; answers carry the console's security headers.
func TestHostAndHeaders(t *testing.T) {
	s := newEtcd(t)
	_, srv := s.serve(Config{Hosts: []string{"console.internal"}}, nil)
	for host, want := range map[string]int{"": http.StatusOK, "localhost:8070": http.StatusOK,
		"console.internal": http.StatusOK, "rebound.example:8070": http.StatusMisdirectedRequest} {
		req, _ := http.NewRequest("GET", srv.URL+"/", nil)
		if host != "" {
			req.Host = host
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: %d, want %d", host, resp.StatusCode, want)
		}
		if want == http.StatusOK && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("no CSP: %v", resp.Header)
		}
	}
	for _, p := range []string{"/", "/b/x", "/assets/app.js", "/assets/app.css", "/assets/list.js", "/assets/broadcast.js", "/api/session"} {
		if code, _, _ := do(t, srv, "GET", p, "", nil); code != http.StatusOK {
			t.Errorf("GET %s: %d", p, code)
		}
	}
}

// TestSlowClientDropped: a stream that does not read is dropped once its
// buffer is full; the others keep theirs, and publishing never waits.
func TestSlowClientDropped(t *testing.T) {
	f := newFanout(4, 10)
	slow, _ := f.subscribe("")
	fast, _ := f.subscribe("")
	got := 0
	for i := range 20 {
		f.publish(View{Status: coordinator.Status{ID: "b", Counters: coordinator.Counters{Scanned: int64(i)}}})
		for range len(fast.events) {
			<-fast.events
			got++
		}
	}
	if got != 20 {
		t.Errorf("the reading client got %d of 20", got)
	}
	n := 0
	for range slow.events { // closed once dropped
		n++
	}
	if n != 4 {
		t.Errorf("the slow client had %d queued before it was dropped, want 4", n)
	}
	if c := f.clientCount(); c != 1 {
		t.Errorf("%d clients left, want 1", c)
	}
	f.close()
	if _, ok := <-fast.events; ok {
		t.Error("close left a stream open")
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
