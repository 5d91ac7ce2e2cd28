package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/audience"
)

// Spec is a broadcast spec, the value of a trigger message
// (docs/CONTRACTS.md, "The trigger"). ParseSpec returns it validated and
// with defaults filled in.
type Spec struct {
	ID            string         `json:"id"`
	Audience      audience.Spec  `json:"audience"`
	OnlyReachable bool           `json:"only_reachable"`
	Template      templates.Spec `json:"template"`
	Endpoint      EndpointSpec   `json:"endpoint"`
	// NotBefore and ExpiresAt are nil when the spec leaves them out; they
	// are held in UTC so that one instant has one canonical form.
	NotBefore *time.Time `json:"not_before,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// EndpointSpec says where and how fast deliveries are sent. Zero values
// mean the defaults below.
type EndpointSpec struct {
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
}

// Endpoint defaults and bounds.
const (
	DefaultMaxInFlight = 64
	DefaultTimeoutMS   = 5000
	DefaultMaxAttempts = 6
	maxMaxInFlight     = 1024
	maxTimeoutMS       = 600_000
	maxMaxAttempts     = 20
	maxIDLen           = 128
	maxSecretNameLen   = 128
	defaultMaxSpec     = 1 << 20
	// maxSpecPathKey keeps a hostile key from filling an error message.
	maxSpecPathKey = 64
)

// SpecLimits bounds what ParseSpec accepts. The zero value means the
// defaults.
type SpecLimits struct {
	// MaxBytes is the largest spec accepted. 0 means 1 MiB.
	MaxBytes int
	// Template bounds the template; its zero value means the templates
	// package's defaults.
	Template templates.Limits
}

// Validate reports limits that cannot be used.
func (l SpecLimits) Validate() error {
	if l.MaxBytes < 0 {
		return fmt.Errorf("worker: spec limits: MaxBytes is %d", l.MaxBytes)
	}
	if err := l.Template.Validate(); err != nil {
		return fmt.Errorf("worker: spec limits: %w", err)
	}
	return nil
}

func (l SpecLimits) maxBytes() int {
	if l.MaxBytes <= 0 {
		return defaultMaxSpec
	}
	return l.MaxBytes
}

// ErrInvalidSpec is what every *SpecError is, for errors.Is.
var ErrInvalidSpec = errors.New("worker: invalid broadcast spec")

// SpecError is why a broadcast spec was refused.
type SpecError struct {
	// ID is the broadcast id when one could be read from the spec and is
	// itself valid, so the refusal can be recorded under it; "" otherwise.
	ID string
	// Field is the JSON path of the offending field, such as "endpoint.url"
	// or "template.locales.zh.title"; "" when the spec as a whole is at
	// fault (not JSON, too large).
	Field string
	Msg   string
	// Limit names the input limit the spec passed (LimitTriggerBytes,
	// LimitTemplateBytes, ...), "" when it was refused for another reason.
	Limit string
}

func (e *SpecError) Error() string {
	var b strings.Builder
	b.WriteString("spec")
	if e.ID != "" {
		fmt.Fprintf(&b, " %q", e.ID)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Is makes every SpecError match ErrInvalidSpec.
func (e *SpecError) Is(target error) bool { return target == ErrInvalidSpec }

// ParseSpec reads and validates a broadcast spec and compiles its template,
// so the caller need not compile it again. The JSON is strict: unknown
// fields, duplicate keys, wrong types and data after the spec are refused,
// each naming the field. Refusals are *SpecError; an error of another kind
// means lim itself is invalid.
func ParseSpec(data []byte, lim SpecLimits) (Spec, *templates.Set, error) {
	if err := lim.Validate(); err != nil {
		return Spec{}, nil, err
	}
	if limit := lim.maxBytes(); len(data) > limit {
		// The id is looked for only where the limit allows reading.
		return Spec{}, nil, &SpecError{ID: peekID(data[:limit]), Limit: LimitTriggerBytes,
			Msg: fmt.Sprintf("%d bytes, more than the limit of %d", len(data), limit)}
	}
	fail := func(field, msg string) (Spec, *templates.Set, error) {
		return Spec{}, nil, &SpecError{ID: peekID(data), Field: field, Msg: msg}
	}
	if field, msg := checkSpecShape(data); msg != "" {
		return fail(field, msg)
	}
	var s Spec
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		// checkShape has seen every field and type; this is a safety net.
		return fail("", err.Error())
	}
	if field, msg := s.validate(); msg != "" {
		return fail(field, msg)
	}
	set, err := templates.Compile(s.Template, lim.Template)
	if err != nil {
		field, msg := templateErrorField(err)
		return Spec{}, nil, &SpecError{ID: peekID(data), Field: field, Msg: msg, Limit: templateLimit(err)}
	}
	s.Endpoint = s.Endpoint.withDefaults()
	s.NotBefore, s.ExpiresAt = utcTime(s.NotBefore), utcTime(s.ExpiresAt)
	// The canonical form is what gets stored and parsed again by every
	// worker; filled-in defaults must not push it over the limit.
	if n := len(s.Canonical()); n > lim.maxBytes() {
		return Spec{}, nil, &SpecError{ID: peekID(data), Limit: LimitTriggerBytes,
			Msg: fmt.Sprintf("%d bytes with defaults filled in, more than the limit of %d", n, lim.maxBytes())}
	}
	return s, set, nil
}

// Canonical is the spec as deterministic JSON: defaults filled in, keys in
// a fixed order, times in UTC, no insignificant whitespace. Two triggers
// for the same broadcast written differently have the same canonical form;
// any real difference shows. It is nil only for a spec that cannot be
// encoded at all (a NaN rate set in code), which ParseSpec never returns.
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

func (e EndpointSpec) withDefaults() EndpointSpec {
	if e.MaxInFlight == 0 {
		e.MaxInFlight = DefaultMaxInFlight
	}
	if e.TimeoutMS == 0 {
		e.TimeoutMS = DefaultTimeoutMS
	}
	if e.MaxAttempts == 0 {
		e.MaxAttempts = DefaultMaxAttempts
	}
	return e
}

func utcTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// validate checks the rules JSON types cannot express, in the order of the
// fields, and returns the first broken one.
func (s Spec) validate() (field, msg string) {
	if msg := checkBroadcastID(s.ID); msg != "" {
		return "id", msg
	}
	if err := s.Audience.Validate(); err != nil {
		var fe *audience.FieldError
		if errors.As(err, &fe) {
			return fe.Field, fe.Msg
		}
		return "audience", err.Error()
	}
	if field, msg := s.Endpoint.validate(); msg != "" {
		return field, msg
	}
	if s.NotBefore != nil && s.ExpiresAt != nil && !s.ExpiresAt.After(*s.NotBefore) {
		return "expires_at", "must be after not_before"
	}
	return "", ""
}

func checkBroadcastID(id string) string {
	if id == "" {
		return "required"
	}
	if len(id) > maxIDLen {
		return fmt.Sprintf("%d characters, more than %d", len(id), maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("character %q at %d: only A-Z a-z 0-9 . _ - are allowed", c, i)
		}
	}
	return ""
}

func (e EndpointSpec) validate() (field, msg string) {
	if e.URL == "" {
		return "endpoint.url", "required"
	}
	u, err := url.Parse(e.URL)
	switch {
	case err != nil:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "endpoint.url", "not a URL: " + err.Error()
	case u.Scheme != "http" && u.Scheme != "https":
		return "endpoint.url", "must be http or https"
	case u.Hostname() == "":
		return "endpoint.url", "must have a host"
	}
	switch {
	case e.MaxInFlight < 0 || e.MaxInFlight > maxMaxInFlight:
		return "endpoint.max_in_flight", fmt.Sprintf("must be 1 to %d (0 means %d)", maxMaxInFlight, DefaultMaxInFlight)
	case e.RatePerSec < 0 || math.IsNaN(e.RatePerSec) || math.IsInf(e.RatePerSec, 0):
		return "endpoint.rate_per_sec", "must be 0 (unlimited) or more"
	case e.TimeoutMS < 0 || e.TimeoutMS > maxTimeoutMS:
		return "endpoint.timeout_ms", fmt.Sprintf("must be 1 to %d (0 means %d)", maxTimeoutMS, DefaultTimeoutMS)
	case e.MaxAttempts < 0 || e.MaxAttempts > maxMaxAttempts:
		return "endpoint.max_attempts", fmt.Sprintf("must be 1 to %d (0 means %d)", maxMaxAttempts, DefaultMaxAttempts)
	}
	if msg := checkSecretName(e.SigningSecret); msg != "" {
		return "endpoint.signing_secret", msg
	}
	if msg := checkSecretName(e.AuthSecret); msg != "" {
		return "endpoint.auth_secret", msg
	}
	return "", ""
}

// checkSecretName allows names that are safe as a file name in a secrets
// directory (no path, no hidden file) and as part of an environment
// variable's name once upper-cased. "" means no secret.
func checkSecretName(name string) string {
	if name == "" {
		return ""
	}
	if len(name) > maxSecretNameLen {
		return fmt.Sprintf("%d characters, more than %d", len(name), maxSecretNameLen)
	}
	if name[0] == '.' {
		return "must not start with a dot"
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("character %q at %d: a secret name has only A-Z a-z 0-9 . _ -", c, i)
		}
	}
	return ""
}

// templateLimit names the limit a template compile error reports, if any.
func templateLimit(err error) string {
	switch {
	case errors.Is(err, templates.ErrTooLarge):
		return LimitTemplateBytes
	case errors.Is(err, templates.ErrTooManyLocales):
		return LimitLocales
	case errors.Is(err, templates.ErrTooManyFields):
		return LimitFields
	}
	return ""
}

// templateErrorField turns a template compile error into the JSON path of the
// field at fault and a message.
func templateErrorField(err error) (field, msg string) {
	var te *templates.Error
	if errors.As(err, &te) {
		field = "template.locales"
		if te.Locale != "" {
			field += "." + specPathKey(te.Locale)
			if te.Field != "" {
				field += "." + specPathKey(te.Field)
			}
		}
		if te.Line > 0 {
			return field, fmt.Sprintf("line %d col %d: %s", te.Line, te.Col, te.Msg)
		}
		return field, te.Msg
	}
	msg = strings.TrimPrefix(err.Error(), "templates: ")
	switch {
	case errors.Is(err, templates.ErrDefaultLocale):
		return "template.default_locale", msg
	case errors.Is(err, templates.ErrNoLocales), errors.Is(err, templates.ErrTooManyLocales):
		return "template.locales", msg
	}
	return "template", msg
}

// The shape of a spec's JSON, checked before decoding so that every
// refusal names its field: encoding/json reports neither the path of an
// unknown field nor duplicate keys.
type shapeKind uint8

const (
	shapeObject shapeKind = iota // fixed keys
	shapeMap                     // any keys, values of one shape
	shapeString
	shapeInt
	shapeFloat
	shapeBool
	shapeTime
)

type specShape struct {
	kind   shapeKind
	fields map[string]*specShape // shapeObject
	elem   *specShape            // shapeMap
}

func specShapeTree() *specShape {
	leaf := func(k shapeKind) *specShape { return &specShape{kind: k} }
	object := func(fields map[string]*specShape) *specShape { return &specShape{kind: shapeObject, fields: fields} }
	return object(map[string]*specShape{
		"id": leaf(shapeString),
		"audience": object(map[string]*specShape{
			"source": leaf(shapeString),
			"path":   leaf(shapeString),
			"count":  leaf(shapeInt),
			"seed":   leaf(shapeInt),
		}),
		"only_reachable": leaf(shapeBool),
		"template": object(map[string]*specShape{
			"default_locale": leaf(shapeString),
			"locales":        {kind: shapeMap, elem: &specShape{kind: shapeMap, elem: leaf(shapeString)}},
		}),
		"endpoint": object(map[string]*specShape{
			"url":            leaf(shapeString),
			"max_in_flight":  leaf(shapeInt),
			"rate_per_sec":   leaf(shapeFloat),
			"timeout_ms":     leaf(shapeInt),
			"max_attempts":   leaf(shapeInt),
			"signing_secret": leaf(shapeString),
			"auth_secret":    leaf(shapeString),
		}),
		"not_before": leaf(shapeTime),
		"expires_at": leaf(shapeTime),
	})
}

// checkSpecShape walks data's tokens against the spec's shape and returns the
// first field that does not fit. JSON null is accepted anywhere and means
// absent, as it does for encoding/json.
func checkSpecShape(data []byte) (field, msg string) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if field, msg := checkSpecValue(dec, "", specShapeTree()); msg != "" {
		return field, msg
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", "data after the spec"
	}
	return "", ""
}

func checkSpecValue(dec *json.Decoder, path string, sh *specShape) (field, msg string) {
	tok, err := dec.Token()
	if err != nil {
		return "", jsonSyntaxMsg(err, dec)
	}
	if tok == nil {
		return "", ""
	}
	switch sh.kind {
	case shapeObject, shapeMap:
		if tok != json.Delim('{') {
			return path, "must be an object"
		}
		return checkSpecObject(dec, path, sh)
	case shapeString:
		if _, ok := tok.(string); !ok {
			return path, "must be a string"
		}
	case shapeTime:
		s, ok := tok.(string)
		var t time.Time
		if !ok || t.UnmarshalText([]byte(s)) != nil {
			return path, "must be an RFC 3339 time such as 2026-11-23T10:00:00Z"
		}
	case shapeInt:
		n, ok := tok.(json.Number)
		if !ok {
			return path, "must be an integer"
		}
		if _, err := n.Int64(); err != nil {
			return path, "must be an integer in range"
		}
	case shapeFloat:
		n, ok := tok.(json.Number)
		if !ok {
			return path, "must be a number"
		}
		if _, err := n.Float64(); err != nil {
			return path, "must be a number in range"
		}
	case shapeBool:
		if _, ok := tok.(bool); !ok {
			return path, "must be true or false"
		}
	}
	return "", ""
}

func checkSpecObject(dec *json.Decoder, path string, sh *specShape) (field, msg string) {
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", jsonSyntaxMsg(err, dec)
		}
		key := tok.(string) // Token guarantees a key here
		at := specPathKey(key)
		if path != "" {
			at = path + "." + at
		}
		if seen[key] {
			return at, "given twice"
		}
		seen[key] = true
		sub := sh.elem
		if sh.kind == shapeObject {
			if sub = sh.fields[key]; sub == nil {
				return at, "unknown field"
			}
		}
		if field, msg := checkSpecValue(dec, at, sub); msg != "" {
			return field, msg
		}
	}
	if _, err := dec.Token(); err != nil {
		return "", jsonSyntaxMsg(err, dec)
	}
	return "", ""
}

func jsonSyntaxMsg(err error, dec *json.Decoder) string {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return "not valid JSON: unexpected end"
	}
	return fmt.Sprintf("not valid JSON at byte %d: %s", dec.InputOffset(), strings.TrimPrefix(err.Error(), "json: "))
}

// specPathKey bounds a key's length in a field path.
func specPathKey(k string) string {
	if len(k) <= maxSpecPathKey {
		return k
	}
	return strings.ToValidUTF8(k[:maxSpecPathKey], "") + "..."
}

// peekID finds the top-level "id" of a spec that may be broken elsewhere,
// so a refusal can be recorded under it. It gives up at the first syntax
// error, and returns "" for an id that is missing, invalid or given twice.
func peekID(data []byte) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // a number out of float64's range is no reason to stop
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ""
	}
	id, found := "", false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if tok != "id" {
			if skipJSONValue(dec) != nil {
				break
			}
			continue
		}
		if found {
			return ""
		}
		found = true
		v, err := dec.Token()
		if err != nil {
			break
		}
		if s, ok := v.(string); ok && checkBroadcastID(s) == "" {
			id = s
		}
		if d, ok := v.(json.Delim); ok && (d == '{' || d == '[') && skipJSONNested(dec) != nil {
			break
		}
	}
	return id
}

// skipJSONValue reads past the next value, token by token.
func skipJSONValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); ok && (d == '{' || d == '[') {
		return skipJSONNested(dec)
	}
	return nil
}

// skipJSONNested reads past the end of the object or list just opened.
func skipJSONNested(dec *json.Decoder) error {
	for depth := 1; depth > 0; {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return nil
}
