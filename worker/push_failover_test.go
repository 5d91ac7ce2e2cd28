package worker

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/devstack"
	"github.com/herald-dev/herald/push/apns/apnstest"
	"github.com/herald-dev/herald/push/fcm/fcmtest"
	"github.com/herald-dev/herald/push/webpush/webpushtest"
	"github.com/herald-dev/herald/sink"
)

// pushFake is a fake provider set up for a kill test.
type pushFake struct {
	tune     func(*Config)
	trigger  func(id, path string) map[string]any
	line     func(i int) string // subscriber i's audience line
	kill     func(i int)        // declares subscriber i's device dead
	distinct func() int
}

// tokenLine is subscriber i's audience line with a device token.
func tokenLine(i int) string {
	return fmt.Sprintf(`{"id":"s%d","name":"N%d","code":"C%d","token":%q}`, i, i, i, deviceToken(i))
}

func apnsKillFake(t *testing.T) pushFake {
	srv, key := apnsFake(t)
	srv.KeepAccepted(false)
	// Slow the fake a little so the kill lands mid-broadcast.
	srv.Reply = func(apnstest.Notification) *apnstest.Reply { time.Sleep(200 * time.Microsecond); return nil }
	return pushFake{
		tune: func(c *Config) {
			c.Secrets = mapSecrets{"apns-key": string(key.P8)}
			c.PushTLS, c.Allow = trusting(srv.Server), loopbackTLS
		},
		trigger:  func(id, path string) map[string]any { return apnsTrigger(id, path, srv.URL, key) },
		line:     tokenLine,
		kill:     func(i int) { srv.Kill(deviceToken(i), apnstest.Unregistered) },
		distinct: func() int { return srv.Stats().Distinct },
	}
}

func fcmKillFake(t *testing.T) pushFake {
	srv := fcmFake(t)
	srv.KeepAccepted(false)
	srv.Reply = func(fcmtest.Message) *fcmtest.Reply { time.Sleep(200 * time.Microsecond); return nil }
	return pushFake{
		tune:     fcmTune(srv),
		trigger:  func(id, path string) map[string]any { return fcmTrigger(id, path, srv.URL) },
		line:     tokenLine,
		kill:     func(i int) { srv.Kill(deviceToken(i), fcmtest.Unregistered) },
		distinct: func() int { return srv.Stats().Distinct },
	}
}

func webpushKillFake(t *testing.T) pushFake {
	srv, v := webpushFake(t)
	srv.KeepAccepted(false)
	srv.Reply = func(webpushtest.Push) *webpushtest.Reply { time.Sleep(200 * time.Microsecond); return nil }
	return pushFake{
		tune:     webpushTune(srv, v),
		trigger:  func(id, path string) map[string]any { return webpushTrigger(id, path) },
		line:     func(i int) string { return subscriptionLine(t, srv, fmt.Sprintf("s%d", i), "N", "C", false) },
		kill:     func(i int) { srv.Kill(fmt.Sprintf("s%d", i), webpushtest.Gone) },
		distinct: func() int { return srv.Stats().Distinct },
	}
}

// TestPushKillMidBroadcast abandons a worker mid-broadcast to a provider:
// nothing is lost (re-sends to APNs keep their apns-id), and the dead
// tokens all reach herald.invalid-tokens.
func TestPushKillMidBroadcast(t *testing.T) {
	for name, fake := range map[string]func(*testing.T) pushFake{"apns": apnsKillFake, "fcm": fcmKillFake, "webpush": webpushKillFake} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, sink.Config{})
			f := fake(t)
			const count, deadEvery = 20_000, 1000
			lines := make([]string, count)
			for i := range lines {
				lines[i] = f.line(i)
				if i%deadEvery == 0 {
					f.kill(i)
				}
			}
			path := writeAudience(t, lines)
			ws := []*testWorker{
				e.startWorker("w1", workerOpts{intake: true, tune: f.tune}),
				e.startWorker("w2", workerOpts{tune: f.tune}),
				e.startWorker("w3", workerOpts{tune: f.tune}),
			}
			id := e.trigger(f.trigger(name+"-kill", path))
			waitFor(t, 60*time.Second, "a third of the broadcast", func() bool { return f.distinct() >= count/3 })
			ws[1].kill(t)
			st := e.waitDone(id, 90*time.Second)
			if st.State != coordinator.StateDone {
				t.Fatalf("state %s (%s), want done", st.State, st.Reason)
			}
			conserved(t, st)
			dead := int64(count / deadEvery)
			if lost := st.Counters.Scanned - int64(f.distinct()) - st.Counters.Failed; st.Counters.Scanned != count || lost != 0 {
				t.Errorf("lost %d (scanned %d, distinct accepted %d, failed %d)", lost, st.Counters.Scanned, f.distinct(), st.Counters.Failed)
			}
			if st.Counters.Failed != dead || st.Counters.InvalidTokens != dead {
				t.Errorf("counters %+v, want %d failed, all invalid tokens", st.Counters, dead)
			}
			toks := invalidTokens(t, e, int(dead))
			for i := 0; i < count; i += deadEvery {
				if len(toks[fmt.Sprintf("s%d", i)]) == 0 {
					t.Errorf("s%d's dead token not on %s", i, devstack.InvalidTokensTopic)
				}
			}
			t.Logf("killed w2: distinct accepted %d, failed %d, invalid tokens %d", f.distinct(), st.Counters.Failed, len(toks))
		})
	}
}

// TestPushFencedByExpiry: a provider that keeps answering 503 holds the
// broadcast (attempts so held do not count) until expires_at; the fence
// stops every attempt after it, and the records are counted expired, not
// failed.
func TestPushFencedByExpiry(t *testing.T) {
	e := newEnv(t, sink.Config{})
	srv, key := apnsFake(t)
	var mu sync.Mutex
	var last time.Time
	srv.Reply = func(n apnstest.Notification) *apnstest.Reply {
		mu.Lock()
		if n.At.After(last) {
			last = n.At
		}
		mu.Unlock()
		return &apnstest.ServiceUnavailable
	}
	lines := make([]string, 20)
	for i := range lines {
		lines[i] = tokenLine(i)
	}
	e.startWorker("w1", workerOpts{intake: true, tune: func(c *Config) {
		c.Secrets = mapSecrets{"apns-key": string(key.P8)}
		c.PushTLS, c.Allow = trusting(srv.Server), loopbackTLS
	}})
	trig := apnsTrigger("apns-expiry", writeAudience(t, lines), srv.URL, key)
	expires := time.Now().Add(2 * time.Second).UTC()
	trig["expires_at"] = expires.Format(time.RFC3339Nano)
	trig["endpoint"].(map[string]any)["max_attempts"] = 20
	id := e.trigger(trig)
	st := e.waitDone(id, 30*time.Second)
	if st.State != coordinator.StateExpired || st.Counters.Expired != 20 || st.Counters.Failed != 0 {
		t.Fatalf("state %s, counters %+v: want expired, all 20 records expired", st.State, st.Counters)
	}
	mu.Lock()
	defer mu.Unlock()
	if last.IsZero() || last.After(expires) {
		t.Fatalf("last attempt at %v, expires_at %v: want attempts, none after expiry", last, expires)
	}
}
