package worker

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/herald-dev/herald/allowlist"
	"github.com/herald-dev/herald/push"
	"github.com/herald-dev/herald/push/apns"
	"github.com/herald-dev/herald/push/fcm"
	"github.com/herald-dev/herald/push/webpush"
	"github.com/herald-dev/herald/spec"
	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/delivery"
)

// pusher delivers one rendered message to one subscriber's device through
// a provider (package push): what a delivery.Sender is to a webhook. A
// broadcast whose endpoint is a push kind has one, built by newPusher; the
// broadcast's fence and the allowlist are asked before every attempt, as
// the Sender asks them.
type pusher interface {
	Push(ctx context.Context, m *push.Message) push.Result
	// WaitingSince is when a provider's quota answer began holding the
	// broadcast's sends here, zero when none does.
	WaitingSince() time.Time
	Close()
}

var (
	_ pusher = (*apns.Sender)(nil)
	_ pusher = (*fcm.Sender)(nil)
	_ pusher = (*webpush.Sender)(nil)
)

// waitingSince reports since when the broadcast's sends wait on its
// endpoint: the webhook's breaker, or the provider's quota hold.
func (b *broadcastRun) waitingSince() time.Time {
	if b.push != nil {
		return b.push.WaitingSince()
	}
	return b.send.WaitingSince()
}

// deliverPush is deliver for a push endpoint, once the message is
// rendered: it addresses the message from the subscriber's record and
// hands it to the provider. A token the provider declares dead fails the
// record with a dead letter that carries it, so it reaches the
// invalid-token topic too and the record counts as an invalid token.
func (b *broadcastRun) deliverPush(ctx context.Context, j job, msg *templates.Message, k string) (outcome, *delivery.DeadLetter) {
	ep := b.spec.Endpoint
	m := push.Message{BroadcastID: b.id, SubscriberID: j.id, Key: k, Locale: msg.Locale, Fields: msg.Fields}
	if reason := address(&m, ep, j.data); reason != "" {
		return failed, &delivery.DeadLetter{SubscriberID: j.id, Key: k, Reason: reason}
	}
	res := b.push.Push(ctx, &m)
	out, d := b.settle(ctx, j, k, res.Result)
	if d != nil && res.Gone {
		token := m.Token
		if ep.Kind == spec.KindWebPush {
			token = m.Subscription.Endpoint
		}
		d.InvalidToken = &delivery.InvalidToken{Broadcast: b.id, SubscriberID: j.id, Provider: ep.Kind, Token: token, Reason: res.GoneReason}
	}
	return out, d
}

// address fills in m's device from the subscriber's record: the token
// (apns, fcm) or the subscription object (webpush) in the attribute
// endpoint.token_field names. It returns why it could not, "" when it did.
func address(m *push.Message, ep spec.Endpoint, rec templates.Record) string {
	v, ok := rec[ep.TokenField]
	if !ok || v == nil {
		return fmt.Sprintf("not sent: the record has no %q attribute", ep.TokenField)
	}
	if ep.Kind != spec.KindWebPush {
		s, ok := v.(string)
		if !ok || s == "" {
			return fmt.Sprintf("not sent: attribute %q is not a device token (a non-empty string)", ep.TokenField)
		}
		m.Token = s
		return ""
	}
	// A subscription is an object, or that object as a JSON string.
	var raw []byte
	switch s := v.(type) {
	case string:
		raw = []byte(s)
	default:
		var err error
		if raw, err = json.Marshal(s); err != nil {
			return fmt.Sprintf("not sent: attribute %q: %v", ep.TokenField, err)
		}
	}
	if err := json.Unmarshal(raw, &m.Subscription); err != nil || m.Subscription.Endpoint == "" ||
		m.Subscription.Keys.P256dh == "" || m.Subscription.Keys.Auth == "" {
		return fmt.Sprintf("not sent: attribute %q is not a push subscription {endpoint, keys: {p256dh, auth}}", ep.TokenField)
	}
	return ""
}

// pushSecret reads the secret a push endpoint names, and checks that it
// holds what its provider needs, and that the other hosts it makes the
// worker dial (FCM's token endpoint) are allowed. A refusal names the spec
// field at fault and never quotes the value; nothing is read for a
// webhook.
func pushSecret(src Secrets, allow *allowlist.List, ep spec.Endpoint) ([]byte, *spec.Error) {
	var field, name string
	switch ep.Kind {
	case spec.KindAPNs:
		field, name = "endpoint.apns.key_secret", ep.APNs.KeySecret
	case spec.KindFCM:
		field, name = "endpoint.fcm.credentials_secret", ep.FCM.CredentialsSecret
	case spec.KindWebPush:
		field, name = "endpoint.webpush.vapid_secret", ep.WebPush.VAPIDSecret
	default:
		if !ep.IsPush() {
			return nil, nil
		}
		return nil, &spec.Error{Field: "endpoint.kind", Msg: fmt.Sprintf("%q delivery is not available on this worker", ep.Kind)}
	}
	bad := func(msg string) ([]byte, *spec.Error) { return nil, &spec.Error{Field: field, Msg: msg} }
	if src == nil {
		return bad(fmt.Sprintf("no secret named %q: the workers have no secrets configured (--secrets-dir, HERALD_SECRET_<NAME>)", name))
	}
	v, err := src.Secret(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return bad(fmt.Sprintf("no secret named %q on the workers", name))
	case err != nil:
		return bad(fmt.Sprintf("secret %q cannot be read: %v", name, err))
	}
	switch ep.Kind {
	case spec.KindAPNs:
		if _, err := apns.ParseKey(v); err != nil {
			return bad(fmt.Sprintf("secret %q is not a .p8 key (PEM, PKCS #8, P-256)", name))
		}
	case spec.KindFCM:
		project, err := fcm.ParseCredentials(v)
		if err != nil {
			return bad(fmt.Sprintf("secret %q is not a service account key: %s", name, strings.TrimPrefix(err.Error(), fcm.ErrConfig.Error()+": ")))
		}
		if project == "" && ep.FCM.Project == "" {
			return nil, &spec.Error{Field: "endpoint.fcm.project", Msg: fmt.Sprintf("required: the key in secret %q names no project_id", name)}
		}
		if err := allow.Check(fcm.TokenURL(v)); err != nil {
			return bad(fmt.Sprintf("the token endpoint of the key in secret %q is not allowed: %v", name, err))
		}
	case spec.KindWebPush:
		if _, err := webpush.ParseVAPID(v); err != nil {
			return bad(fmt.Sprintf("secret %q is not a VAPID key pair: %s", name, strings.TrimPrefix(err.Error(), webpush.ErrConfig.Error()+": ")))
		}
	}
	return v, nil
}

// newPusher builds the provider sender of a push endpoint, nil for a
// webhook. fence is the broadcast's (lease deadline and expiry).
func (w *Worker) newPusher(id string, ep spec.Endpoint, fence func() error) (pusher, error) {
	if !ep.IsPush() {
		return nil, nil
	}
	secret, e := pushSecret(w.cfg.Secrets, w.cfg.Allow, ep)
	if e != nil {
		return nil, fmt.Errorf("worker: credentials of %s: %s: %s", id, e.Field, e.Msg)
	}
	pol := push.Policy{
		Timeout:       time.Duration(ep.TimeoutMS) * time.Millisecond,
		MaxAttempts:   ep.MaxAttempts,
		BackoffMin:    w.cfg.Delivery.BackoffMin,
		BackoffMax:    w.cfg.Delivery.BackoffMax,
		MaxRetryAfter: w.cfg.Delivery.MaxRetryAfter,
		Fence:         fence,
		Allow:         w.senderAllow,
	}
	switch ep.Kind {
	case spec.KindAPNs:
		a := ep.APNs
		return apns.New(apns.Config{
			URL: ep.URL, Key: secret, KeyID: a.KeyID, TeamID: a.TeamID, Topic: a.Topic,
			PushType: a.PushType, Priority: a.Priority, Expiration: time.Duration(a.ExpirationS) * time.Second,
			CollapseFromKey: a.CollapseFromKey, Client: w.pushClient, Policy: pol,
		})
	case spec.KindFCM:
		return fcm.New(fcm.Config{
			URL: ep.URL, Credentials: secret, Project: ep.FCM.Project,
			CollapseFromKey: ep.FCM.CollapseFromKey, Client: w.pushClient, Policy: pol,
		})
	case spec.KindWebPush:
		vapid, err := webpush.ParseVAPID(secret)
		if err != nil {
			return nil, err
		}
		// Each subscription names its own push service: the allowlist is
		// asked about it before every attempt. Intake could not check
		// these, so a refusal is a subscriber's, not an alarm.
		pol.Allow = w.cfg.Allow.CheckURL
		wp := ep.WebPush
		return webpush.New(webpush.Config{
			VAPID: vapid, Subject: wp.Subject, TTL: time.Duration(wp.TTLS) * time.Second, Urgency: wp.Urgency,
			TopicFromKey: wp.TopicFromKey, Client: w.pushClient, Policy: pol,
		})
	}
	return nil, fmt.Errorf("worker: %s: endpoint kind %q not available", id, ep.Kind)
}

// newPushClient is the HTTP client every push broadcast of the worker
// sends over: HTTP/2 wherever the provider offers it (APNs requires it),
// so a broadcast's sends are streams on a few connections per provider.
func newPushClient(tc *tls.Config, maxInFlight int) *http.Client {
	if tc == nil {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		tc = tc.Clone()
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConnsPerHost:   max(maxInFlight/64, 4),
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}}
}
