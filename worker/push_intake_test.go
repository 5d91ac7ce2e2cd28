package worker

import (
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/sink"
)

// TestPushSecretsRefusedAtIntake: a push trigger naming a provider secret
// the workers lack, or one that does not hold the provider's kind of key,
// is rejected naming the field; the value never appears in the reason,
// and nothing is sent.
func TestPushSecretsRefusedAtIntake(t *testing.T) {
	e := newEnv(t, sink.Config{})
	srv, key := apnsFake(t)
	secrets := mapSecrets{"not-a-key": "SECRET-VALUE-1", "not-json": "SECRET-VALUE-2", "vapid-bad": `{"public_key":"SECRET-VALUE-3","private_key":"x"}`}
	e.startWorker("w1", workerOpts{intake: true, tune: func(c *Config) {
		c.Secrets = secrets
		c.PushTLS, c.Allow = trusting(srv.Server), loopbackTLS
	}})
	path := writeAudience(t, []string{tokenLine(0)})
	apnsWith := func(id, secret string) map[string]any {
		tr := apnsTrigger(id, path, srv.URL, key)
		tr["endpoint"].(map[string]any)["apns"].(map[string]any)["key_secret"] = secret
		return tr
	}
	fcmWith := func(id, secret string) map[string]any {
		tr := fcmTrigger(id, path, srv.URL)
		tr["endpoint"].(map[string]any)["fcm"].(map[string]any)["credentials_secret"] = secret
		return tr
	}
	webpushWith := func(id, secret string) map[string]any {
		tr := webpushTrigger(id, path)
		tr["endpoint"].(map[string]any)["webpush"].(map[string]any)["vapid_secret"] = secret
		return tr
	}
	tests := []struct {
		trig          map[string]any
		field, reason string
	}{
		{apnsWith("apns-missing", "nope"), "endpoint.apns.key_secret", "no secret named"},
		{apnsWith("apns-not-a-key", "not-a-key"), "endpoint.apns.key_secret", "not a .p8 key"},
		{fcmWith("fcm-not-json", "not-json"), "endpoint.fcm.credentials_secret", "not a service account key"},
		{webpushWith("webpush-bad", "vapid-bad"), "endpoint.webpush.vapid_secret", "not a VAPID key pair"},
	}
	for _, tt := range tests {
		e.trigger(tt.trig)
	}
	for _, tt := range tests {
		id := tt.trig["id"].(string)
		t.Run(id, func(t *testing.T) {
			st := e.waitDone(id, 30*time.Second)
			if st.State != coordinator.StateRejected || !strings.Contains(st.Reason, tt.field) || !strings.Contains(st.Reason, tt.reason) {
				t.Errorf("state %s, reason %q; want rejected naming %s", st.State, st.Reason, tt.field)
			}
			if strings.Contains(st.Reason, "SECRET-VALUE") {
				t.Errorf("reason %q quotes the secret", st.Reason)
			}
		})
	}
	if st := srv.Stats(); st.Accepted+len(st.Refused) != 0 {
		t.Errorf("the provider was contacted: %+v", st)
	}
}
