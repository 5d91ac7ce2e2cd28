package push

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/delivery"
)

// Message is one subscriber's rendered message, addressed to one device.
type Message struct {
	BroadcastID  string
	SubscriberID string
	// Key is the idempotency key (templates.Key).
	Key    string
	Locale string
	// Fields are the rendered template fields, sorted by name. "title" and
	// "body" become the notification; the others travel as data.
	Fields []templates.Field
	// Token is the device token (apns, fcm).
	Token string
	// Subscription is the browser's push subscription (webpush).
	Subscription Subscription
}

// Subscription is a Web Push subscription as a browser's
// PushSubscription.toJSON() gives it: the push service's endpoint and the
// user agent's keys (base64url).
type Subscription struct {
	Endpoint string `json:"endpoint"`
	Keys     struct {
		P256dh string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
}

// Field returns the value of the field named name, "" if there is none.
func (m *Message) Field(name string) string {
	for _, f := range m.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// Data returns the fields other than title and body.
func (m *Message) Data() map[string]string {
	d := make(map[string]string, len(m.Fields))
	for _, f := range m.Fields {
		if f.Name != "title" && f.Name != "body" {
			d[f.Name] = f.Value
		}
	}
	return d
}

// Result reports one delivery to a device.
type Result struct {
	delivery.Result
	// Gone is set, with Outcome Failed, when the provider declared the
	// token or subscription dead for good; GoneReason is its word for it
	// (Unregistered, BadDeviceToken, UNREGISTERED, 410, ...).
	Gone       bool
	GoneReason string
}

// KeyUUID is the UUID of an idempotency key: the key's own 16 bytes (the
// 32 hex digits after "hk1-", themselves a hash of the broadcast and
// subscriber ids), with the version 8 and RFC 9562 variant bits set; a key
// of another form is hashed with SHA-256 first. The same key always makes
// the same id, so a notification re-sent after a failover carries the id
// it had the first time (APNs' apns-id), and the id shows which key it
// came from.
func KeyUUID(key string) string {
	var u []byte
	if h, ok := strings.CutPrefix(key, templates.KeyPrefix); ok && len(h) == 32 {
		if b, err := hex.DecodeString(h); err == nil {
			u = b
		}
	}
	if u == nil {
		sum := sha256.Sum256([]byte(key))
		u = sum[:16]
	}
	u[6] = u[6]&0x0f | 0x80 // version 8: custom
	u[8] = u[8]&0x3f | 0x80 // variant: RFC 9562
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return string(b[:])
}
