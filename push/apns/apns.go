// Package apns delivers to Apple devices through the Apple Push
// Notification service: HTTP/2, token (.p8) authentication, one request
// per notification (github.com/sideshow/apns2), many streams on a few
// connections.
//
// A notification's apns-id is the UUID of its idempotency key
// (push.KeyUUID), so a re-send after a failover carries the same id;
// with CollapseFromKey the same id is its apns-collapse-id too, and the
// device shows a re-sent notification in place of the first. Apple's
// answers become verdicts in classify: 410 and 400 BadDeviceToken declare
// the token dead (push.Gone), 503 holds every send of the broadcast here
// until Apple is back (push.Throttled), 429 and 500 are retried, an
// expired provider token is made anew and retried, every other refusal
// fails the delivery.
//
// It does not retry, fence or check the allowlist itself: push.Retrier
// does, around every attempt.
package apns

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"

	"github.com/herald-dev/herald/push"
	"github.com/herald-dev/herald/worker/delivery"
)

// Provider is the endpoint kind, as reasons and invalid tokens name it.
const Provider = "apns"

// DefaultURL is Apple's production host.
const DefaultURL = "https://api.push.apple.com"

// Config configures a Sender.
type Config struct {
	// URL is the APNs host; "" means DefaultURL. Apple's sandbox is
	// https://api.sandbox.push.apple.com.
	URL string
	// Key is the .p8 signing key as Apple hands it out (PEM, PKCS #8,
	// P-256). KeyID and TeamID name it and the team. Required.
	Key           []byte
	KeyID, TeamID string
	// Topic is the apns-topic, the app's bundle id. Required.
	Topic string
	// PushType is apns-push-type; "" means alert.
	PushType string
	// Priority is apns-priority; 0 means 10.
	Priority int
	// Expiration, above 0, sets apns-expiration that long after each
	// attempt.
	Expiration time.Duration
	// CollapseFromKey sets apns-collapse-id to the apns-id.
	CollapseFromKey bool
	// Client sends the requests; it must speak HTTP/2 (Apple speaks
	// nothing else). Nil means a client of the Sender's own with the
	// system's roots.
	Client *http.Client
	// Policy is how attempts make a delivery.
	Policy push.Policy
}

// ErrConfig is wrapped by every refusal of a Config.
var ErrConfig = errors.New("apns: invalid config")

// ParseKey reads a .p8 key, for checking a secret before a broadcast is
// accepted.
func ParseKey(p8 []byte) (*ecdsa.PrivateKey, error) {
	k, err := token.AuthKeyFromBytes(p8)
	if err != nil {
		return nil, fmt.Errorf("%w: key: %w", ErrConfig, err)
	}
	return k, nil
}

// Sender delivers notifications to APNs. It is safe for concurrent use.
type Sender struct {
	cfg    Config
	client *apns2.Client
	token  *token.Token
	target *url.URL
	retry  *push.Retrier
	own    bool // the HTTP client is the Sender's: Close closes its connections
}

// New returns a Sender; the key is parsed here, so a bad one is refused
// before anything is sent.
func New(cfg Config) (*Sender, error) {
	if cfg.URL == "" {
		cfg.URL = DefaultURL
	}
	if cfg.PushType == "" {
		cfg.PushType = string(apns2.PushTypeAlert)
	}
	if cfg.Priority == 0 {
		cfg.Priority = apns2.PriorityHigh
	}
	target, err := url.Parse(strings.TrimSuffix(cfg.URL, "/"))
	if err != nil || (target.Scheme != "https" && target.Scheme != "http") || target.Host == "" {
		return nil, fmt.Errorf("%w: url %q", ErrConfig, cfg.URL)
	}
	if cfg.KeyID == "" || cfg.TeamID == "" || cfg.Topic == "" {
		return nil, fmt.Errorf("%w: key id, team id and topic are required", ErrConfig)
	}
	key, err := ParseKey(cfg.Key)
	if err != nil {
		return nil, err
	}
	tok := &token.Token{AuthKey: key, KeyID: cfg.KeyID, TeamID: cfg.TeamID}
	s := &Sender{cfg: cfg, token: tok, target: target, retry: push.NewRetrier(Provider, cfg.Policy)}
	hc := cfg.Client
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			ForceAttemptHTTP2:   true,
			TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
		}}
		s.own = true
	}
	// apns2 keeps the answer's headers to itself; Retry-After is caught
	// on the way by a transport of our own around the client's.
	wrapped := *hc
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	wrapped.Transport = retryAfterTransport{base}
	s.client = &apns2.Client{Host: target.String(), Token: tok, HTTPClient: &wrapped}
	return s, nil
}

// retryAfterTransport hands an answer's Retry-After to the attempt that
// asked for it, through the request's context.
type retryAfterTransport struct{ base http.RoundTripper }

type retryAfterKey struct{}

func (t retryAfterTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if resp != nil {
		if p, ok := req.Context().Value(retryAfterKey{}).(*string); ok {
			*p = resp.Header.Get("Retry-After")
		}
	}
	return resp, err
}

func (t retryAfterTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Payload is the notification's JSON: the title and body as the alert,
// the other fields under "data", and the delivery's identity under
// "herald" so the app can drop a notification it already showed.
//
//	{"aps":{"alert":{"title":..,"body":..}},"data":{..},"herald":{"broadcast_id":..,"subscriber_id":..,"idempotency_key":..,"locale":..}}
func Payload(m *push.Message) ([]byte, error) {
	type alert struct {
		Title string `json:"title,omitempty"`
		Body  string `json:"body,omitempty"`
	}
	type aps struct {
		Alert            *alert `json:"alert,omitempty"`
		ContentAvailable int    `json:"content-available,omitempty"`
	}
	p := struct {
		APS    aps               `json:"aps"`
		Data   map[string]string `json:"data,omitempty"`
		Herald identity          `json:"herald"`
	}{
		Data:   m.Data(),
		Herald: identity{m.BroadcastID, m.SubscriberID, m.Key, m.Locale},
	}
	if title, body := m.Field("title"), m.Field("body"); title != "" || body != "" {
		p.APS.Alert = &alert{Title: title, Body: body}
	} else {
		p.APS.ContentAvailable = 1 // a background notification
	}
	return json.Marshal(p)
}

type identity struct {
	BroadcastID  string `json:"broadcast_id"`
	SubscriberID string `json:"subscriber_id"`
	Key          string `json:"idempotency_key"`
	Locale       string `json:"locale"`
}

// Push delivers m to the device m.Token.
func (s *Sender) Push(ctx context.Context, m *push.Message) push.Result {
	payload, err := Payload(m)
	if err != nil {
		var r push.Result
		r.Outcome, r.Reason = delivery.Failed, "apns: not sent: "+err.Error()
		return r
	}
	n := &apns2.Notification{
		DeviceToken: m.Token,
		Topic:       s.cfg.Topic,
		ApnsID:      push.KeyUUID(m.Key),
		Priority:    s.cfg.Priority,
		PushType:    apns2.EPushType(s.cfg.PushType),
		Payload:     payload,
	}
	if s.cfg.CollapseFromKey {
		n.CollapseID = n.ApnsID
	}
	return s.retry.Do(ctx, s.target, func(ctx context.Context) push.Answer {
		if s.cfg.Expiration > 0 {
			n.Expiration = time.Now().Add(s.cfg.Expiration)
		}
		var retryAfter string
		resp, err := s.client.PushWithContext(context.WithValue(ctx, retryAfterKey{}, &retryAfter), n)
		if err != nil {
			return push.TransportAnswer(err)
		}
		a := classify(resp)
		a.RetryAfter = retryAfter
		if a.Reason == apns2.ReasonExpiredProviderToken {
			s.renewToken()
		}
		return a
	})
}

// renewToken makes a new provider token after Apple called the current one
// expired (a clock skewed, or a token older than Apple allows).
func (s *Sender) renewToken() {
	s.token.Lock()
	defer s.token.Unlock()
	s.token.Generate()
}

// classify is the APNs policy: what each of Apple's answers means.
//
//	answer                                     verdict
//	200                                        delivered
//	410 (Unregistered, ExpiredToken)           gone: the token is dead
//	400 BadDeviceToken                         gone: not a token of this app and environment
//	403 ExpiredProviderToken                   retry, with a new provider token
//	429 TooManyRequests (one device, too fast) retry after Retry-After or backoff
//	503 ServiceUnavailable, Shutdown           throttled: every send waits (Retry-After, or a
//	                                           doubling backoff), not spending attempts
//	500 and other 5xx                          retry after Retry-After or backoff
//	any other 4xx                              failed: payload, topic or key at fault
func classify(r *apns2.Response) push.Answer {
	a := push.Answer{Status: r.StatusCode, Reason: r.Reason}
	switch {
	case r.StatusCode == http.StatusOK:
		a.Verdict = push.Delivered
	case r.StatusCode == http.StatusGone,
		r.StatusCode == http.StatusBadRequest && r.Reason == apns2.ReasonBadDeviceToken:
		a.Verdict = push.Gone
	case r.StatusCode == http.StatusForbidden && r.Reason == apns2.ReasonExpiredProviderToken:
		a.Verdict = push.Retry
	case r.StatusCode == http.StatusServiceUnavailable:
		a.Verdict = push.Throttled
	case r.StatusCode == http.StatusTooManyRequests, r.StatusCode >= 500:
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
		s.client.HTTPClient.CloseIdleConnections()
	}
}
