package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/herald-dev/herald/internal/devstack"
)

// TestWorkerPprofOnlyWhenAsked starts two workers on a plain cluster, one
// with --pprof and one without, and checks over real HTTP that only the
// first serves /debug/pprof/, while both still serve /healthz.
func TestWorkerPprofOnlyWhenAsked(t *testing.T) {
	ctx := context.Background()
	e, err := devstack.StartEtcd(ctx, devstack.EtcdConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	k, err := devstack.StartKafka(ctx, devstack.KafkaConfig{Topics: []string{devstack.BroadcastsTopic, devstack.DeadLettersTopic, devstack.ReportsTopic}})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	env := map[string]string{"HERALD_ETCD": e.Endpoint(), "HERALD_KAFKA": strings.Join(k.Brokers(), ","),
		"HERALD_ALLOW_ENDPOINT": "http://127.0.0.1:*"}
	cl := httpClient(t)
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := cl.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	addrOf := regexp.MustCompile(`worker starting.*? http=(\S+)`)

	for _, tc := range []struct {
		name      string
		args      []string
		env       map[string]string
		wantPprof bool
	}{
		{"default", nil, env, false},
		{"flag", []string{"--pprof"}, env, true},
		{"environment", nil, with(env, "HERALD_PPROF", "true"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := start(tc.env, append([]string{"worker", "--id", "w-" + tc.name, "--http-addr", "127.0.0.1:0", "--lease-ttl", "2s"}, tc.args...)...)
			defer func() {
				if code := w.stop(t); code != 0 {
					t.Errorf("worker exited %d:\n%s", code, w.stderr.String())
				}
			}()
			base := "http://" + waitLine(t, &running{stdout: w.stderr, exited: w.exited}, addrOf)
			if code, _ := get(base + "/healthz"); code != http.StatusOK {
				t.Errorf("/healthz: %d", code)
			}
			code, body := get(base + "/debug/pprof/")
			if tc.wantPprof && (code != http.StatusOK || !strings.Contains(body, "goroutine")) {
				t.Errorf("/debug/pprof/ with pprof on: %d\n%s", code, body)
			}
			if !tc.wantPprof && code != http.StatusNotFound {
				t.Errorf("/debug/pprof/ with pprof off: %d, want 404", code)
			}
			code, body = get(base + "/debug/pprof/goroutine?debug=1")
			if tc.wantPprof && (code != http.StatusOK || !strings.Contains(body, "goroutine profile")) {
				t.Errorf("goroutine profile with pprof on: %d", code)
			}
			if !tc.wantPprof && code != http.StatusNotFound {
				t.Errorf("goroutine profile with pprof off: %d, want 404", code)
			}
		})
	}
}
