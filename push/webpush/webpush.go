// Package webpush delivers to browsers through their push services: RFC
// 8030 (Web Push), the payload encrypted for the subscription's keys as
// RFC 8291 says (aes128gcm) and the request signed with the sender's VAPID
// key as RFC 8292 says (github.com/SherClockHolmes/webpush-go). Each
// subscription names its own push service, so the allowlist is asked
// about each subscription's endpoint before every attempt.
//
// The payload is the same JSON a webhook receives (docs/CONTRACTS.md, "A
// delivery"), for the site's service worker to show. With TopicFromKey
// the Topic header is made from the idempotency key, so a re-send replaces
// a message the push service still holds. 404 and 410 declare the
// subscription gone (push.Gone); 429 and 5xx are retried honouring
// Retry-After; other refusals fail the delivery.
package webpush

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	webpushgo "github.com/SherClockHolmes/webpush-go"

	"github.com/herald-dev/herald/push"
	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/delivery"
)

// Provider is the endpoint kind, as reasons and invalid tokens name it.
const Provider = "webpush"

// ErrConfig is wrapped by every refusal of a Config.
var ErrConfig = errors.New("webpush: invalid config")

// VAPID is a VAPID key pair as its secret holds it (JSON), each key
// base64url as browsers and webpush-go use them: the public key is the
// uncompressed P-256 point (65 bytes), the private key its scalar (32).
type VAPID struct {
	PublicKey  string `json:"public_key"`
	PrivateKey string `json:"private_key"`
}

// ParseVAPID reads and checks a VAPID key pair.
func ParseVAPID(secret []byte) (VAPID, error) {
	var v VAPID
	if err := json.Unmarshal(secret, &v); err != nil {
		return VAPID{}, fmt.Errorf(`%w: VAPID keys are not JSON {"public_key": ..., "private_key": ...}`, ErrConfig)
	}
	if pub, err := decodeKey(v.PublicKey); err != nil || len(pub) != 65 || pub[0] != 4 {
		return VAPID{}, fmt.Errorf("%w: public_key is not an uncompressed P-256 point (65 bytes, base64url)", ErrConfig)
	}
	if priv, err := decodeKey(v.PrivateKey); err != nil || len(priv) != 32 {
		return VAPID{}, fmt.Errorf("%w: private_key is not a P-256 private key (32 bytes, base64url)", ErrConfig)
	}
	return v, nil
}

// NewVAPID makes a key pair, for `herald dev` and tests.
func NewVAPID() (VAPID, error) {
	priv, pub, err := webpushgo.GenerateVAPIDKeys()
	if err != nil {
		return VAPID{}, fmt.Errorf("webpush: VAPID keys: %w", err)
	}
	return VAPID{PublicKey: pub, PrivateKey: priv}, nil
}

func decodeKey(k string) ([]byte, error) {
	k = strings.TrimRight(k, "=")
	return base64.RawURLEncoding.DecodeString(k)
}

// Config configures a Sender.
type Config struct {
	VAPID VAPID
	// Subject is the VAPID contact: a mailto: or https: URL.
	Subject string
	// TTL is how long a push service keeps a message for an offline
	// browser; 0 means the push service may drop it at once.
	TTL time.Duration
	// Urgency is the Urgency header ("very-low", "low", "normal", "high");
	// "" leaves it out.
	Urgency string
	// TopicFromKey sets the Topic header from the idempotency key.
	TopicFromKey bool
	// Client sends the requests. Nil means a client of the Sender's own.
	Client *http.Client
	// Policy is how attempts make a delivery; Allow is asked about each
	// subscription's endpoint.
	Policy push.Policy
}

// Sender delivers to push services. It is safe for concurrent use.
type Sender struct {
	cfg     Config
	subject string
	client  *http.Client
	retry   *push.Retrier
	own     bool
}

// New returns a Sender.
func New(cfg Config) (*Sender, error) {
	if _, err := ParseVAPID(mustJSON(cfg.VAPID)); err != nil {
		return nil, err
	}
	// webpush-go adds mailto: itself unless the subject is an https URL.
	subject, isMail := strings.CutPrefix(cfg.Subject, "mailto:")
	if !isMail && !strings.HasPrefix(cfg.Subject, "https:") {
		return nil, fmt.Errorf("%w: subject must be a mailto: or https: URL", ErrConfig)
	}
	s := &Sender{cfg: cfg, subject: subject, client: cfg.Client, retry: push.NewRetrier(Provider, cfg.Policy)}
	if s.client == nil {
		s.client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true,
			MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second}}
		s.own = true
	}
	return s, nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// Topic is the Topic header of the message of key: 22 base64url
// characters of its SHA-256, within RFC 8030's 32.
func Topic(key string) string {
	sum := sha256.Sum256([]byte(key))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// Push delivers m to m.Subscription.
func (s *Sender) Push(ctx context.Context, m *push.Message) push.Result {
	fail := func(why string) push.Result {
		var r push.Result
		r.Outcome, r.Reason = delivery.Failed, "webpush: not sent: "+why
		return r
	}
	sub := m.Subscription
	target, err := url.Parse(sub.Endpoint)
	if err != nil || (target.Scheme != "https" && target.Scheme != "http") || target.Host == "" {
		return fail("the subscription's endpoint is not an http(s) URL")
	}
	if p, err := decodeKey(sub.Keys.P256dh); err != nil || len(p) != 65 || p[0] != 4 {
		return fail("the subscription's p256dh is not an uncompressed P-256 point")
	}
	if a, err := decodeKey(sub.Keys.Auth); err != nil || len(a) != 16 {
		return fail("the subscription's auth is not 16 bytes")
	}
	body := templates.AppendBody(make([]byte, 0, 256), templates.Delivery{
		BroadcastID: m.BroadcastID, SubscriberID: m.SubscriberID, Key: m.Key, Locale: m.Locale,
		Message: &templates.Message{Locale: m.Locale, Fields: m.Fields},
	})
	opts := &webpushgo.Options{
		HTTPClient:      s.client,
		Subscriber:      s.subject,
		TTL:             int(s.cfg.TTL / time.Second),
		Urgency:         webpushgo.Urgency(s.cfg.Urgency),
		VAPIDPublicKey:  s.cfg.VAPID.PublicKey,
		VAPIDPrivateKey: s.cfg.VAPID.PrivateKey,
	}
	if s.cfg.TopicFromKey {
		opts.Topic = Topic(m.Key)
	}
	wsub := &webpushgo.Subscription{Endpoint: sub.Endpoint, Keys: webpushgo.Keys{P256dh: sub.Keys.P256dh, Auth: sub.Keys.Auth}}
	return s.retry.Do(ctx, target, func(ctx context.Context) push.Answer {
		// Each attempt is encrypted anew (a fresh salt and key), as RFC
		// 8291 wants; the plaintext is the same.
		resp, err := webpushgo.SendNotificationWithContext(ctx, body, wsub, opts)
		if err != nil {
			if _, ok := errors.AsType[*url.Error](err); ok {
				return push.TransportAnswer(err)
			}
			return push.Answer{Verdict: push.Permanent, Err: err} // encryption or signing
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		a := classify(resp.StatusCode)
		a.RetryAfter = resp.Header.Get("Retry-After")
		return a
	})
}

// classify is the Web Push policy: what a push service's answer means.
//
//	answer                      verdict
//	200, 201, 202               delivered
//	404 Not Found, 410 Gone     gone: the subscription expired or was withdrawn
//	429, 5xx                    retry after Retry-After or backoff
//	any other                   failed: payload too large, VAPID refused, ...
func classify(status int) push.Answer {
	a := push.Answer{Status: status}
	switch {
	case status >= 200 && status <= 202:
		a.Verdict = push.Delivered
	case status == http.StatusNotFound, status == http.StatusGone:
		a.Verdict = push.Gone
	case status == http.StatusTooManyRequests, status >= 500:
		a.Verdict = push.Retry
	default:
		a.Verdict = push.Permanent
	}
	return a
}

// WaitingSince reports a quota hold (push.Retrier.WaitingSince).
func (s *Sender) WaitingSince() time.Time { return s.retry.WaitingSince() }

// Close drops the idle connections of the Sender's own client.
func (s *Sender) Close() {
	if s.own {
		s.client.CloseIdleConnections()
	}
}
