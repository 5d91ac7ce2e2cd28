package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/audience"
)

// Spec is a broadcast spec. Parse returns it validated and with defaults
// filled in.
type Spec struct {
	ID            string         `json:"id"`
	Audience      audience.Spec  `json:"audience"`
	OnlyReachable bool           `json:"only_reachable"`
	Template      templates.Spec `json:"template"`
	Endpoint      Endpoint       `json:"endpoint"`
	// NotBefore and ExpiresAt are nil when the spec leaves them out; they
	// are held in UTC so that one instant has one canonical form.
	NotBefore *time.Time `json:"not_before,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Endpoint says where and how fast deliveries are sent. Zero values mean
// the defaults below.
type Endpoint struct {
	// URL is the absolute http or https URL deliveries are POSTed to.
	URL string `json:"url"`
	// MaxInFlight is the concurrent requests per worker: 1 to 1024,
	// default 64.
	MaxInFlight int `json:"max_in_flight"`
	// RatePerSec limits the whole fleet's requests per second; 0 means
	// unlimited.
	RatePerSec float64 `json:"rate_per_sec"`
	// TimeoutMS bounds one attempt: 1 to 600000, default 5000.
	TimeoutMS int `json:"timeout_ms"`
	// MaxAttempts counts the first attempt: 1 to 20, default 6.
	MaxAttempts int `json:"max_attempts"`
	// SigningSecret names the secret whose keys sign every delivery with
	// a Herald-Signature header (package signature); "" means unsigned.
	// AuthSecret names the secret whose value is sent as the Authorization
	// header; "" means none. Only names travel in a trigger: the values
	// are supplied to each worker (--secrets-dir, HERALD_SECRET_<NAME>),
	// and a trigger naming a secret the worker lacks is rejected. Left
	// out of the canonical form when empty, so specs without them keep
	// the form they always had.
	SigningSecret string `json:"signing_secret,omitempty"`
	AuthSecret    string `json:"auth_secret,omitempty"`
	// HTTP2 says which HTTP version deliveries use: "auto" (the default)
	// is HTTP/2 when a TLS endpoint offers it by ALPN and HTTP/1.1
	// otherwise, plain http:// included; "off" is HTTP/1.1 only; "h2c" is
	// HTTP/2 without TLS by prior knowledge, for http:// URLs only. The
	// default is held as "" and left out of the canonical form, so specs
	// without the field keep the form they always had and "auto" written
	// out is the same spec as the field left out.
	HTTP2 string `json:"http2,omitempty"`
	// BatchSize is how many deliveries one request carries: 1 (the
	// default) POSTs each delivery on its own; more POSTs a JSON array of
	// up to that many, and the endpoint answers for each item
	// (docs/CONTRACTS.md, "A batch of deliveries"). At most 1000. The
	// default is held as 0 and left out of the canonical form, so specs
	// without the field keep the form they always had and 1 written out
	// is the same spec as the field left out.
	BatchSize int `json:"batch_size,omitempty"`
	// Kind is how deliveries are made: "webhook" (the default: a POST to
	// URL), or natively to devices through "apns", "fcm" or "webpush",
	// each configured by the object of that name (push.go). The default is
	// held as "" and left out of the canonical form, as are the provider
	// fields of a webhook, so specs without them keep the form they always
	// had. For apns and fcm URL is the provider's host (the default is
	// Apple's or Google's); webpush has none, each subscription naming its
	// push service.
	Kind string `json:"kind,omitempty"`
	// TokenField names the subscriber attribute holding the device token
	// (apns, fcm; default "token") or the Web Push subscription object
	// (webpush; default "subscription").
	TokenField string   `json:"token_field,omitempty"`
	APNs       *APNs    `json:"apns,omitempty"`
	FCM        *FCM     `json:"fcm,omitempty"`
	WebPush    *WebPush `json:"webpush,omitempty"`
}

// Values of Endpoint.HTTP2.
const (
	HTTP2Auto = "auto"
	HTTP2Off  = "off"
	HTTP2H2C  = "h2c"
)

// Batch is the number of deliveries a request carries: BatchSize, or 1
// when it is left out.
func (e Endpoint) Batch() int { return max(e.BatchSize, 1) }

// Endpoint defaults and bounds.
const (
	DefaultMaxInFlight = 64
	// MinRatePerSec is the smallest positive rate_per_sec: one message in
	// 1000 s for the whole fleet.
	MinRatePerSec      = 0.001
	DefaultTimeoutMS   = 5000
	DefaultMaxAttempts = 6
	maxMaxInFlight     = 1024
	maxTimeoutMS       = 600_000
	maxMaxAttempts     = 20
	maxSecretNameLen   = 128
	// MaxBatchSize is the largest batch_size.
	MaxBatchSize = 1000
)

// Parse reads and validates a broadcast spec and compiles its template, so
// the caller need not compile it again. The JSON is strict: unknown fields,
// duplicate keys, wrong types and data after the spec are refused, each
// naming the field. Refusals are *Error; an error of another kind means
// lim itself is invalid.
func Parse(data []byte, lim Limits) (Spec, *templates.Set, error) {
	if err := lim.Validate(); err != nil {
		return Spec{}, nil, err
	}
	if limit := lim.ByteLimit(); len(data) > limit {
		// The id is looked for only where the limit allows reading.
		return Spec{}, nil, &Error{ID: peekID(data[:limit]), Limit: LimitTriggerBytes,
			Msg: fmt.Sprintf("%d bytes, more than the limit of %d", len(data), limit)}
	}
	s, set, e := parse(data, lim)
	if e != nil {
		e.ID = peekID(data)
		return Spec{}, nil, e
	}
	return s, set, nil
}

// parse is Parse for data within the size limit; its refusals have no ID
// yet.
func parse(data []byte, lim Limits) (Spec, *templates.Set, *Error) {
	if e := checkShape(data); e != nil {
		return Spec{}, nil, e
	}
	var s Spec
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		// checkShape has seen every field and type; this is a safety net.
		return Spec{}, nil, &Error{Msg: err.Error()}
	}
	if e := s.validate(); e != nil {
		return Spec{}, nil, e
	}
	set, err := templates.Compile(s.Template, lim.Template)
	if err != nil {
		return Spec{}, nil, templateError(err)
	}
	s.Endpoint = s.Endpoint.withDefaults()
	s.NotBefore, s.ExpiresAt = utcTime(s.NotBefore), utcTime(s.ExpiresAt)
	// The canonical form is what gets stored and parsed again by every
	// worker; filled-in defaults must not push it over the limit.
	if n := len(s.Canonical()); n > lim.ByteLimit() {
		return Spec{}, nil, &Error{Limit: LimitTriggerBytes,
			Msg: fmt.Sprintf("%d bytes with defaults filled in, more than the limit of %d", n, lim.ByteLimit())}
	}
	return s, set, nil
}

// Canonical is the spec as deterministic JSON: defaults filled in, keys in
// a fixed order, times in UTC, no insignificant whitespace. Two triggers
// for the same broadcast written differently have the same canonical form;
// any real difference shows. It is nil only for a spec that cannot be
// encoded at all (a NaN rate set in code), which Parse never returns.
func (s Spec) Canonical() []byte {
	s.Endpoint = s.Endpoint.withDefaults()
	s.NotBefore, s.ExpiresAt = utcTime(s.NotBefore), utcTime(s.ExpiresAt)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	// Templates are full of < and >; escaping them would only obscure.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func (e Endpoint) withDefaults() Endpoint {
	if e.MaxInFlight == 0 {
		e.MaxInFlight = DefaultMaxInFlight
	}
	if e.TimeoutMS == 0 {
		e.TimeoutMS = DefaultTimeoutMS
	}
	if e.MaxAttempts == 0 {
		e.MaxAttempts = DefaultMaxAttempts
	}
	if e.HTTP2 == HTTP2Auto {
		e.HTTP2 = ""
	}
	if e.BatchSize == 1 {
		e.BatchSize = 0
	}
	if e.Kind == KindWebhook {
		e.Kind = ""
	}
	return e.pushDefaults()
}

func utcTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
