// Package fcm delivers to Android, iOS and web apps through Firebase Cloud
// Messaging's HTTP v1 API: one POST per message to
// /v1/projects/{project}/messages:send, authorised by an OAuth2 access
// token the service account's key obtains (golang.org/x/oauth2/google: a
// signed JWT assertion exchanged at the account's token_uri, reused until
// it nears expiry).
//
// FCM's answers become verdicts in classify: UNREGISTERED, an
// INVALID_ARGUMENT about the registration token and SENDER_ID_MISMATCH
// declare the token dead (push.Gone); QUOTA_EXCEEDED holds every send of
// the broadcast on this worker until Retry-After (push.Throttled), and so
// does 503 UNAVAILABLE; other 429s and 500 are retried honouring
// Retry-After; every other
// refusal fails the delivery. With CollapseFromKey the message's Android
// collapse_key and apns-collapse-id are the idempotency key's UUID, so a
// re-send replaces the notification on the device.
//
// It does not retry, fence or check the allowlist itself: push.Retrier
// does, around every attempt.
package fcm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/herald-dev/herald/push"
	"github.com/herald-dev/herald/worker/delivery"
)

// Provider is the endpoint kind, as reasons and invalid tokens name it.
const Provider = "fcm"

// DefaultURL is Google's FCM host.
const DefaultURL = "https://fcm.googleapis.com"

// Scope is the OAuth2 scope FCM v1 requires.
const Scope = "https://www.googleapis.com/auth/firebase.messaging"

// maxAnswerBytes bounds how much of an answer is read.
const maxAnswerBytes = 64 << 10

// ErrConfig is wrapped by every refusal of a Config.
var ErrConfig = errors.New("fcm: invalid config")

// Config configures a Sender.
type Config struct {
	// URL is the FCM host; "" means DefaultURL.
	URL string
	// Credentials is the service account's JSON key, as the Firebase
	// console hands it out. Its token_uri is where access tokens come
	// from. Required.
	Credentials []byte
	// Project is the Firebase project; "" means the key's project_id.
	Project string
	// CollapseFromKey sets the Android collapse_key and the
	// apns-collapse-id from the idempotency key.
	CollapseFromKey bool
	// Client sends the messages and the token requests. Nil means a client
	// of the Sender's own.
	Client *http.Client
	// Policy is how attempts make a delivery.
	Policy push.Policy
}

// account is what Sender reads of a service account key itself.
type account struct {
	Type      string `json:"type"`
	ProjectID string `json:"project_id"`
	TokenURI  string `json:"token_uri"`
}

// ParseCredentials checks a service account key and returns its project
// id, for checking a secret before a broadcast is accepted.
func ParseCredentials(creds []byte) (project string, err error) {
	var a account
	if err := json.Unmarshal(creds, &a); err != nil {
		return "", fmt.Errorf("%w: credentials are not JSON", ErrConfig)
	}
	if a.Type != "service_account" {
		return "", fmt.Errorf("%w: credentials are not a service account key (type %q)", ErrConfig, a.Type)
	}
	if _, err := google.JWTConfigFromJSON(creds, Scope); err != nil {
		return "", fmt.Errorf("%w: credentials: %w", ErrConfig, err)
	}
	return a.ProjectID, nil
}

// TokenURL returns the token endpoint a service account key names, "" if
// it names none or is not JSON.
func TokenURL(creds []byte) string {
	var a account
	if json.Unmarshal(creds, &a) != nil {
		return ""
	}
	if a.TokenURI == "" {
		return google.JWTTokenURL
	}
	return a.TokenURI
}

// Sender delivers messages to FCM. It is safe for concurrent use.
type Sender struct {
	cfg      Config
	client   *http.Client
	tokens   oauth2.TokenSource
	send     string // the messages:send URL
	target   *url.URL
	tokenURL *url.URL
	retry    *push.Retrier
	own      bool
}

// New returns a Sender. The key is parsed here; the first access token is
// fetched with the first message.
func New(cfg Config) (*Sender, error) {
	if cfg.URL == "" {
		cfg.URL = DefaultURL
	}
	target, err := url.Parse(strings.TrimSuffix(cfg.URL, "/"))
	if err != nil || (target.Scheme != "https" && target.Scheme != "http") || target.Host == "" {
		return nil, fmt.Errorf("%w: url %q", ErrConfig, cfg.URL)
	}
	project, err := ParseCredentials(cfg.Credentials)
	if err != nil {
		return nil, err
	}
	if cfg.Project != "" {
		project = cfg.Project
	}
	if project == "" {
		return nil, fmt.Errorf("%w: no project: the key has no project_id and none was given", ErrConfig)
	}
	jc, err := google.JWTConfigFromJSON(cfg.Credentials, Scope)
	if err != nil {
		return nil, fmt.Errorf("%w: credentials: %w", ErrConfig, err)
	}
	tokenURL, err := url.Parse(jc.TokenURL)
	if err != nil {
		return nil, fmt.Errorf("%w: token_uri %q", ErrConfig, jc.TokenURL)
	}
	s := &Sender{cfg: cfg, target: target, tokenURL: tokenURL, retry: push.NewRetrier(Provider, cfg.Policy),
		send: target.String() + "/v1/projects/" + url.PathEscape(project) + "/messages:send"}
	s.client = cfg.Client
	if s.client == nil {
		s.client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true,
			MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second}}
		s.own = true
	}
	// The token requests go over the same client, and are bounded like an
	// attempt.
	tc := *s.client
	tc.Timeout = max(cfg.Policy.Timeout, push.DefaultTimeout)
	s.tokens = jc.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, &tc))
	return s, nil
}

// Message is the JSON body of one send: {"message": ...}. Title and body
// are the notification; the other fields, and the delivery's identity
// (herald_broadcast_id, herald_subscriber_id, herald_idempotency_key,
// herald_locale), are the data.
func Message(m *push.Message, collapse bool) ([]byte, error) {
	type notification struct {
		Title string `json:"title,omitempty"`
		Body  string `json:"body,omitempty"`
	}
	type android struct {
		CollapseKey string `json:"collapse_key,omitempty"`
	}
	type apnsConfig struct {
		Headers map[string]string `json:"headers,omitempty"`
	}
	type message struct {
		Token        string            `json:"token"`
		Notification *notification     `json:"notification,omitempty"`
		Data         map[string]string `json:"data"`
		Android      *android          `json:"android,omitempty"`
		APNs         *apnsConfig       `json:"apns,omitempty"`
	}
	msg := message{Token: m.Token, Data: m.Data()}
	if title, body := m.Field("title"), m.Field("body"); title != "" || body != "" {
		msg.Notification = &notification{Title: title, Body: body}
	}
	msg.Data["herald_broadcast_id"] = m.BroadcastID
	msg.Data["herald_subscriber_id"] = m.SubscriberID
	msg.Data["herald_idempotency_key"] = m.Key
	msg.Data["herald_locale"] = m.Locale
	if collapse {
		id := push.KeyUUID(m.Key)
		msg.Android = &android{CollapseKey: id}
		msg.APNs = &apnsConfig{Headers: map[string]string{"apns-collapse-id": id}}
	}
	return json.Marshal(struct {
		Message message `json:"message"`
	}{msg})
}

// Push delivers m to the registration token m.Token.
func (s *Sender) Push(ctx context.Context, m *push.Message) push.Result {
	body, err := Message(m, s.cfg.CollapseFromKey)
	if err != nil {
		var r push.Result
		r.Outcome, r.Reason = delivery.Failed, "fcm: not sent: "+err.Error()
		return r
	}
	return s.retry.Do(ctx, s.target, func(ctx context.Context) push.Answer {
		return s.attempt(ctx, body)
	})
}

func (s *Sender) attempt(ctx context.Context, body []byte) push.Answer {
	// The token endpoint is dialed too: it must be allowed as well.
	if s.cfg.Policy.Allow != nil {
		if err := s.cfg.Policy.Allow(s.tokenURL); err != nil {
			return push.Answer{Verdict: push.Permanent, Err: fmt.Errorf("token endpoint: %w", err)}
		}
	}
	tok, err := s.tokens.Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 {
			// The account's key was refused: no retry can fix that.
			return push.Answer{Verdict: push.Permanent, Status: re.Response.StatusCode, Reason: "access token refused: " + re.ErrorCode}
		}
		return push.Answer{Verdict: push.Retry, Err: fmt.Errorf("access token: %w", err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.send, bytes.NewReader(body))
	if err != nil {
		return push.Answer{Verdict: push.Permanent, Err: err}
	}
	req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	tok.SetAuthHeader(req)
	resp, err := s.client.Do(req)
	if err != nil {
		return push.TransportAnswer(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	a := classify(resp.StatusCode, raw)
	a.RetryAfter = resp.Header.Get("Retry-After")
	return a
}

// errorBody is FCM's error answer (google.rpc.Status with FcmError
// details).
type errorBody struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type            string `json:"@type"`
			ErrorCode       string `json:"errorCode"`
			FieldViolations []struct {
				Field string `json:"field"`
			} `json:"fieldViolations"`
		} `json:"details"`
	} `json:"error"`
}

// classify is the FCM policy: what each answer means.
//
//	answer                                          verdict
//	200                                             delivered
//	404 UNREGISTERED                                gone: the app was uninstalled or the token expired
//	400 INVALID_ARGUMENT about message.token        gone: not a registration token
//	403 SENDER_ID_MISMATCH                          gone: a token of another project
//	429 QUOTA_EXCEEDED, 503 UNAVAILABLE             throttled: the broadcast waits here, Retry-After
//	429 (other), 500 INTERNAL                       retry after Retry-After or backoff
//	any other 4xx                                   failed: message, project or credentials at fault
func classify(status int, raw []byte) push.Answer {
	a := push.Answer{Status: status}
	if status == http.StatusOK {
		a.Verdict = push.Delivered
		return a
	}
	var eb errorBody
	_ = json.Unmarshal(raw, &eb)
	code, tokenAtFault := eb.Error.Status, false
	for _, d := range eb.Error.Details {
		if d.ErrorCode != "" {
			code = d.ErrorCode
		}
		for _, fv := range d.FieldViolations {
			if fv.Field == "message.token" {
				tokenAtFault = true
			}
		}
	}
	if strings.Contains(strings.ToLower(eb.Error.Message), "registration token") {
		tokenAtFault = true
	}
	a.Reason = code
	switch {
	case code == "UNREGISTERED", code == "SENDER_ID_MISMATCH",
		code == "INVALID_ARGUMENT" && tokenAtFault:
		a.Verdict = push.Gone
	case code == "QUOTA_EXCEEDED", status == http.StatusServiceUnavailable:
		a.Verdict = push.Throttled
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
