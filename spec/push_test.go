package spec

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// pushEdits turn the small valid spec into a push spec of kind. Nested
// fields are edited one by one (specJSON applies edits in any order).
func pushEdits(kind string) map[string]any {
	e := map[string]any{"endpoint.kind": kind}
	switch kind {
	case KindAPNs:
		e["endpoint.url"] = nil
		e["endpoint.apns.key_secret"] = "apns-key"
		e["endpoint.apns.key_id"] = "ABC123DEFG"
		e["endpoint.apns.team_id"] = "DEF123GHIJ"
		e["endpoint.apns.topic"] = "com.example.app"
	case KindFCM:
		e["endpoint.url"] = nil
		e["endpoint.fcm.credentials_secret"] = "fcm-sa"
	case KindWebPush:
		e["endpoint.url"] = nil
		e["endpoint.webpush.vapid_secret"] = "vapid"
		e["endpoint.webpush.subject"] = "mailto:ops@example.com"
	}
	return e
}

func with(base map[string]any, edits map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(edits))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range edits {
		out[k] = v
	}
	return out
}

func TestParsePushKinds(t *testing.T) {
	tests := []struct {
		name  string
		edits map[string]any
		check func(t *testing.T, e Endpoint)
	}{
		{name: "apns defaults", edits: pushEdits(KindAPNs), check: func(t *testing.T, e Endpoint) {
			if e.URL != DefaultAPNsURL || e.TokenField != "token" || e.APNs.PushType != "alert" || e.APNs.Priority != 10 || e.APNs.ExpirationS != 0 {
				t.Fatalf("endpoint %+v apns %+v", e, e.APNs)
			}
		}},
		{name: "apns sandbox and options", edits: with(pushEdits(KindAPNs), map[string]any{
			"endpoint.url": "https://api.sandbox.push.apple.com", "endpoint.token_field": "ios_token",
			"endpoint.apns.push_type": "background", "endpoint.apns.priority": 5, "endpoint.apns.expiration_s": 3600, "endpoint.apns.collapse_from_key": true,
		}), check: func(t *testing.T, e Endpoint) {
			a := e.APNs
			if e.URL != "https://api.sandbox.push.apple.com" || e.TokenField != "ios_token" || a.PushType != "background" || a.Priority != 5 || a.ExpirationS != 3600 || !a.CollapseFromKey {
				t.Fatalf("endpoint %+v apns %+v", e, a)
			}
		}},
		{name: "fcm defaults", edits: pushEdits(KindFCM), check: func(t *testing.T, e Endpoint) {
			if e.URL != DefaultFCMURL || e.TokenField != "token" || e.FCM.CredentialsSecret != "fcm-sa" || e.FCM.Project != "" {
				t.Fatalf("endpoint %+v fcm %+v", e, e.FCM)
			}
		}},
		{name: "webpush defaults", edits: pushEdits(KindWebPush), check: func(t *testing.T, e Endpoint) {
			if e.URL != "" || e.TokenField != "subscription" || e.WebPush.TTLS != DefaultWebPushTTL || e.WebPush.Urgency != "" {
				t.Fatalf("endpoint %+v webpush %+v", e, e.WebPush)
			}
		}},
		{name: "webhook written out", edits: map[string]any{"endpoint.kind": "webhook"}, check: func(t *testing.T, e Endpoint) {
			if e.Kind != "" || e.IsPush() {
				t.Fatalf("endpoint %+v", e)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := mustParse(t, specJSON(t, tt.edits))
			tt.check(t, s.Endpoint)
			// The canonical form parses back to the same spec.
			again, _ := mustParse(t, s.Canonical())
			if !bytes.Equal(again.Canonical(), s.Canonical()) {
				t.Fatalf("canonical form not stable:\n%s\n%s", s.Canonical(), again.Canonical())
			}
		})
	}
}

// A webhook spec keeps the canonical form it had before push kinds
// existed, whether kind is left out or written as "webhook".
func TestCanonicalWebhookUnchanged(t *testing.T) {
	const want = `{"id":"spring-sale","audience":{"source":"synthetic","count":1000,"seed":7},"only_reachable":false,"template":{"default_locale":"en","locales":{"en":{"title":"Hi {{.name}}"}}},"endpoint":{"url":"https://push.example.com/v1","max_in_flight":64,"rate_per_sec":0,"timeout_ms":5000,"max_attempts":6}}`
	for _, edits := range []map[string]any{nil, {"endpoint.kind": "webhook"}} {
		s, _ := mustParse(t, specJSON(t, edits))
		got := string(s.Canonical())
		// The audience form is the audience package's; compare from the endpoint on.
		if i, j := strings.Index(got, `"endpoint"`), strings.Index(want, `"endpoint"`); got[i:] != want[j:] {
			t.Fatalf("canonical %s\nwant      %s", got[i:], want[j:])
		}
	}
}

func TestParseRefusesPush(t *testing.T) {
	tests := []struct {
		name  string
		edits map[string]any
		field string
		msg   string
	}{
		{"unknown kind", map[string]any{"endpoint.kind": "sms"}, "endpoint.kind", `"webhook", "apns", "fcm" or "webpush"`},
		{"apns fields on a webhook", map[string]any{"endpoint.apns": map[string]any{"topic": "x"}}, "endpoint.apns", "only for a push kind"},
		{"token field on a webhook", map[string]any{"endpoint.token_field": "t"}, "endpoint.token_field", "only for a push kind"},
		{"fcm fields on apns", with(pushEdits(KindAPNs), map[string]any{"endpoint.fcm": map[string]any{"credentials_secret": "x"}}), "endpoint.fcm", `does not go with kind "apns"`},
		{"apns without its object", map[string]any{"endpoint.kind": "apns"}, "endpoint.apns", "required for kind apns"},
		{"apns key secret missing", with(pushEdits(KindAPNs), map[string]any{"endpoint.apns.key_secret": nil}), "endpoint.apns.key_secret", "required"},
		{"apns key secret a path", with(pushEdits(KindAPNs), map[string]any{"endpoint.apns.key_secret": "../key.p8"}), "endpoint.apns.key_secret", "must not start with a dot"},
		{"apns team id missing", with(pushEdits(KindAPNs), map[string]any{"endpoint.apns.team_id": ""}), "endpoint.apns.team_id", "required"},
		{"apns topic with a space", with(pushEdits(KindAPNs), map[string]any{"endpoint.apns.topic": "com.example app"}), "endpoint.apns.topic", "printable ASCII"},
		{"apns push type", with(pushEdits(KindAPNs), map[string]any{"endpoint.apns.push_type": "loud"}), "endpoint.apns.push_type", "apns-push-type"},
		{"apns priority", with(pushEdits(KindAPNs), map[string]any{"endpoint.apns.priority": 7}), "endpoint.apns.priority", "10, 5 or 1"},
		{"apns expiration", with(pushEdits(KindAPNs), map[string]any{"endpoint.apns.expiration_s": -1}), "endpoint.apns.expiration_s", "must be 0"},
		{"apns unknown field", with(pushEdits(KindAPNs), map[string]any{"endpoint.apns.key": "inline"}), "endpoint.apns.key", "unknown field"},
		{"apns signing secret", with(pushEdits(KindAPNs), map[string]any{"endpoint.signing_secret": "s"}), "endpoint.signing_secret", "only for a webhook"},
		{"apns http2 off", with(pushEdits(KindAPNs), map[string]any{"endpoint.http2": "off"}), "endpoint.http2", "only for a webhook"},
		{"fcm batch size", with(pushEdits(KindFCM), map[string]any{"endpoint.batch_size": 100}), "endpoint.batch_size", "only for a webhook"},
		{"apns url ftp", with(pushEdits(KindAPNs), map[string]any{"endpoint.url": "ftp://apple"}), "endpoint.url", "must be http or https"},
		{"fcm credentials missing", with(pushEdits(KindFCM), map[string]any{"endpoint.fcm.credentials_secret": nil}), "endpoint.fcm.credentials_secret", "required"},
		{"fcm project with a slash", with(pushEdits(KindFCM), map[string]any{"endpoint.fcm.project": "a/b"}), "endpoint.fcm.project", "printable ASCII"},
		{"webpush with a url", with(pushEdits(KindWebPush), map[string]any{"endpoint.url": "https://fcm.googleapis.com"}), "endpoint.url", "each subscription names its push service"},
		{"webpush subject", with(pushEdits(KindWebPush), map[string]any{"endpoint.webpush.subject": "ops@example.com"}), "endpoint.webpush.subject", "mailto: or https:"},
		{"webpush urgency", with(pushEdits(KindWebPush), map[string]any{"endpoint.webpush.urgency": "urgent"}), "endpoint.webpush.urgency", `"very-low"`},
		{"webpush ttl", with(pushEdits(KindWebPush), map[string]any{"endpoint.webpush.ttl_s": 1 << 30}), "endpoint.webpush.ttl_s", "must be 1 to"},
		{"webpush vapid missing", with(pushEdits(KindWebPush), map[string]any{"endpoint.webpush.vapid_secret": ""}), "endpoint.webpush.vapid_secret", "required"},
		{"push bounds still apply", with(pushEdits(KindFCM), map[string]any{"endpoint.max_in_flight": 5000}), "endpoint.max_in_flight", "1 to 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse(specJSON(t, tt.edits), Limits{})
			var se *Error
			if !errors.As(err, &se) || se.Field != tt.field || !strings.Contains(se.Msg, tt.msg) {
				t.Fatalf("Parse error %v; want field %q and a message containing %q", err, tt.field, tt.msg)
			}
		})
	}
}
