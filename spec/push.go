package spec

import (
	"fmt"
	"net/url"
	"strings"
)

// Values of Endpoint.Kind: how deliveries are made. The webhook is the
// default, held as "" so that specs without the field keep the canonical
// form they always had.
const (
	KindWebhook = "webhook"
	KindAPNs    = "apns"
	KindFCM     = "fcm"
	KindWebPush = "webpush"
)

// Default provider hosts, used when endpoint.url is left out of an apns or
// fcm spec. A url given instead (APNs' sandbox, a test double) must be on
// the workers' allowlist like any other endpoint.
const (
	DefaultAPNsURL = "https://api.push.apple.com"
	DefaultFCMURL  = "https://fcm.googleapis.com"
)

// Defaults of the provider fields.
const (
	DefaultTokenField        = "token"
	DefaultSubscriptionField = "subscription"
	DefaultAPNsPushType      = "alert"
	DefaultAPNsPriority      = 10
	DefaultWebPushTTL        = 86400
	maxFieldNameLen          = 128
	maxProviderIDLen         = 256
	maxTTLSeconds            = 28 * 86400
)

// APNs is the Apple Push Notification service part of an apns endpoint.
// Only the .p8 key travels by name; key id, team id and topic are not
// secret.
type APNs struct {
	// KeySecret names the secret holding the .p8 signing key (PEM,
	// PKCS #8, P-256). Required.
	KeySecret string `json:"key_secret"`
	// KeyID and TeamID identify the key and the developer team to Apple:
	// the provider token's kid and iss. Required.
	KeyID  string `json:"key_id"`
	TeamID string `json:"team_id"`
	// Topic is the apns-topic header, normally the app's bundle id.
	// Required.
	Topic string `json:"topic"`
	// PushType is the apns-push-type header: "alert" (the default),
	// "background", ...
	PushType string `json:"push_type,omitempty"`
	// Priority is apns-priority: 10 (the default, at once), 5 or 1.
	Priority int `json:"priority,omitempty"`
	// ExpirationS, when above 0, is how long Apple keeps a notification for
	// an offline device, in seconds from the send (apns-expiration). 0
	// leaves the header out.
	ExpirationS int `json:"expiration_s,omitempty"`
	// CollapseFromKey sets apns-collapse-id from the idempotency key, so a
	// re-send after a failover replaces the notification on the device
	// rather than showing it twice.
	CollapseFromKey bool `json:"collapse_from_key,omitempty"`
}

// FCM is the Firebase Cloud Messaging HTTP v1 part of an fcm endpoint.
type FCM struct {
	// CredentialsSecret names the secret holding the service account's
	// JSON key. Required.
	CredentialsSecret string `json:"credentials_secret"`
	// Project is the Firebase project id; "" means the service account's
	// project_id.
	Project string `json:"project,omitempty"`
	// CollapseFromKey sets the Android collapse_key and the apns-collapse-id
	// of the message from the idempotency key.
	CollapseFromKey bool `json:"collapse_from_key,omitempty"`
}

// WebPush is the Web Push (RFC 8030, 8291, 8292) part of a webpush
// endpoint. Each subscriber's subscription names its own push service.
type WebPush struct {
	// VAPIDSecret names the secret holding the VAPID key pair as JSON,
	// {"public_key": ..., "private_key": ...}, base64url as browsers use
	// them. Required.
	VAPIDSecret string `json:"vapid_secret"`
	// Subject is the VAPID contact, a mailto: or https: URL. Required.
	Subject string `json:"subject"`
	// TTLS is how long a push service keeps a message for an offline
	// browser, in seconds (the TTL header); 0 means a day.
	TTLS int `json:"ttl_s,omitempty"`
	// Urgency is the Urgency header: "very-low", "low", "normal" or "high";
	// "" leaves it out (normal).
	Urgency string `json:"urgency,omitempty"`
	// TopicFromKey sets the Topic header from the idempotency key, so a
	// re-send replaces a message still waiting in the push service.
	TopicFromKey bool `json:"topic_from_key,omitempty"`
}

// IsPush reports whether the endpoint delivers to devices through a
// provider rather than POSTing to a webhook.
func (e Endpoint) IsPush() bool { return e.Kind != "" && e.Kind != KindWebhook }

// pushDefaults fills in the provider defaults of a push endpoint.
func (e Endpoint) pushDefaults() Endpoint {
	switch e.Kind {
	case KindAPNs:
		if e.URL == "" {
			e.URL = DefaultAPNsURL
		}
		if e.TokenField == "" {
			e.TokenField = DefaultTokenField
		}
		if e.APNs != nil {
			a := *e.APNs
			if a.PushType == "" {
				a.PushType = DefaultAPNsPushType
			}
			if a.Priority == 0 {
				a.Priority = DefaultAPNsPriority
			}
			e.APNs = &a
		}
	case KindFCM:
		if e.URL == "" {
			e.URL = DefaultFCMURL
		}
		if e.TokenField == "" {
			e.TokenField = DefaultTokenField
		}
	case KindWebPush:
		if e.TokenField == "" {
			e.TokenField = DefaultSubscriptionField
		}
		if e.WebPush != nil && e.WebPush.TTLS == 0 {
			w := *e.WebPush
			w.TTLS = DefaultWebPushTTL
			e.WebPush = &w
		}
	}
	return e
}

// validatePush checks what is particular to the endpoint's kind; bad makes
// the refusal. It runs before the URL is checked, so it can say what a
// push kind wants of the URL.
func (e Endpoint) validatePush(bad func(field, msg string) *Error) *Error {
	switch e.Kind {
	case "", KindWebhook:
		for _, f := range []struct {
			name string
			set  bool
		}{{"token_field", e.TokenField != ""}, {"apns", e.APNs != nil}, {"fcm", e.FCM != nil}, {"webpush", e.WebPush != nil}} {
			if f.set {
				return bad(f.name, "only for a push kind (apns, fcm, webpush); this endpoint is a webhook")
			}
		}
		return nil
	case KindAPNs, KindFCM, KindWebPush:
	default:
		return bad("kind", `must be "webhook", "apns", "fcm" or "webpush"`)
	}
	for _, f := range []struct {
		kind string
		set  bool
	}{{KindAPNs, e.APNs != nil}, {KindFCM, e.FCM != nil}, {KindWebPush, e.WebPush != nil}} {
		if f.set && f.kind != e.Kind {
			return bad(f.kind, fmt.Sprintf("does not go with kind %q", e.Kind))
		}
	}
	if e.SigningSecret != "" {
		return bad("signing_secret", "only for a webhook: providers authenticate Herald themselves")
	}
	if e.AuthSecret != "" {
		return bad("auth_secret", "only for a webhook: providers authenticate Herald themselves")
	}
	if e.HTTP2 != "" && e.HTTP2 != HTTP2Auto {
		return bad("http2", "only for a webhook: each provider speaks the HTTP version it requires")
	}
	if e.BatchSize > 1 {
		return bad("batch_size", "only for a webhook: each provider takes one notification a request")
	}
	if msg := checkFieldName(e.TokenField); msg != "" {
		return bad("token_field", msg)
	}
	switch e.Kind {
	case KindAPNs:
		return e.APNs.validate(bad)
	case KindFCM:
		return e.FCM.validate(bad)
	default:
		if e.URL != "" {
			return bad("url", "not used by webpush: each subscription names its push service (its origin must be on the allowlist)")
		}
		return e.WebPush.validate(bad)
	}
}

func (a *APNs) validate(bad func(field, msg string) *Error) *Error {
	if a == nil {
		return bad("apns", "required for kind apns (key_secret, key_id, team_id, topic)")
	}
	if a.KeySecret == "" {
		return bad("apns.key_secret", "required: the name of the secret holding the .p8 key")
	}
	if msg := checkSecretName(a.KeySecret); msg != "" {
		return bad("apns.key_secret", msg)
	}
	for _, f := range []struct{ name, v string }{{"key_id", a.KeyID}, {"team_id", a.TeamID}, {"topic", a.Topic}} {
		if msg := checkProviderID(f.v); msg != "" {
			return bad("apns."+f.name, msg)
		}
	}
	switch a.PushType {
	case "", "alert", "background", "location", "voip", "complication", "fileprovider", "mdm", "liveactivity", "pushtotalk":
	default:
		return bad("apns.push_type", "not an apns-push-type Apple defines (alert, background, voip, ...)")
	}
	switch a.Priority {
	case 0, 1, 5, 10:
	default:
		return bad("apns.priority", "must be 10, 5 or 1 (0 means 10)")
	}
	if a.ExpirationS < 0 || a.ExpirationS > maxTTLSeconds {
		return bad("apns.expiration_s", fmt.Sprintf("must be 0 (no apns-expiration) to %d", maxTTLSeconds))
	}
	return nil
}

func (f *FCM) validate(bad func(field, msg string) *Error) *Error {
	if f == nil {
		return bad("fcm", "required for kind fcm (credentials_secret)")
	}
	if f.CredentialsSecret == "" {
		return bad("fcm.credentials_secret", "required: the name of the secret holding the service account JSON")
	}
	if msg := checkSecretName(f.CredentialsSecret); msg != "" {
		return bad("fcm.credentials_secret", msg)
	}
	if f.Project != "" {
		if msg := checkProviderID(f.Project); msg != "" {
			return bad("fcm.project", msg)
		}
	}
	return nil
}

func (w *WebPush) validate(bad func(field, msg string) *Error) *Error {
	if w == nil {
		return bad("webpush", "required for kind webpush (vapid_secret, subject)")
	}
	if w.VAPIDSecret == "" {
		return bad("webpush.vapid_secret", "required: the name of the secret holding the VAPID key pair")
	}
	if msg := checkSecretName(w.VAPIDSecret); msg != "" {
		return bad("webpush.vapid_secret", msg)
	}
	if u, err := url.Parse(w.Subject); w.Subject == "" || err != nil || (u.Scheme != "mailto" && u.Scheme != "https") {
		return bad("webpush.subject", "must be a mailto: or https: URL (RFC 8292: how the push service reaches you)")
	}
	if w.TTLS < 0 || w.TTLS > maxTTLSeconds {
		return bad("webpush.ttl_s", fmt.Sprintf("must be 1 to %d (0 means %d)", maxTTLSeconds, DefaultWebPushTTL))
	}
	switch w.Urgency {
	case "", "very-low", "low", "normal", "high":
	default:
		return bad("webpush.urgency", `must be "very-low", "low", "normal" or "high"`)
	}
	return nil
}

// checkFieldName allows a subscriber attribute's name: "" (the default) or
// a plain JSON key.
func checkFieldName(name string) string {
	if len(name) > maxFieldNameLen {
		return fmt.Sprintf("%d characters, more than %d", len(name), maxFieldNameLen)
	}
	if strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "must not hold control characters"
	}
	return ""
}

// checkProviderID allows an identifier a provider gave (key id, team id,
// bundle id, project id): required, printable ASCII without spaces or
// slashes, so it is safe in a header or a URL path.
func checkProviderID(v string) string {
	if v == "" {
		return "required"
	}
	if len(v) > maxProviderIDLen {
		return fmt.Sprintf("%d characters, more than %d", len(v), maxProviderIDLen)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= 0x20 || c >= 0x7f || c == '/' || c == '?' || c == '#' || c == '%' {
			return fmt.Sprintf("character %q at %d: printable ASCII without spaces, / ? # or %%", c, i)
		}
	}
	return ""
}
