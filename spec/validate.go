package spec

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/audience"
)

// validate checks the rules JSON types cannot express, in the order of the
// fields, and returns the first broken one.
func (s Spec) validate() *Error {
	if msg := checkID(s.ID); msg != "" {
		return &Error{Field: "id", Msg: msg}
	}
	if err := s.Audience.Validate(); err != nil {
		var fe *audience.FieldError
		if errors.As(err, &fe) {
			return &Error{Field: fe.Field, Msg: fe.Msg}
		}
		return &Error{Field: "audience", Msg: err.Error()}
	}
	if e := s.Endpoint.validate(); e != nil {
		return e
	}
	if s.NotBefore != nil && s.ExpiresAt != nil && !s.ExpiresAt.After(*s.NotBefore) {
		return &Error{Field: "expires_at", Msg: "must be after not_before"}
	}
	return nil
}

// checkID is coordinator.CheckID's reason for refusing id, "" for a valid
// one. The rule is the coordinator's: a broadcast id becomes an etcd key
// segment. The field already says it is the id, so the reason is given
// without the coordinator's prefix.
func checkID(id string) string {
	err := coordinator.CheckID(id)
	if err == nil {
		return ""
	}
	return strings.TrimPrefix(err.Error(), coordinator.ErrInvalidID.Error()+": ")
}

func (e Endpoint) validate() *Error {
	bad := func(field, msg string) *Error { return &Error{Field: "endpoint." + field, Msg: msg} }
	if pe := e.validatePush(bad); pe != nil {
		return pe
	}
	if e.URL == "" {
		if e.IsPush() {
			// apns and fcm default to the provider's host; webpush has none.
			return e.validateBounds(bad)
		}
		return bad("url", "required")
	}
	u, err := url.Parse(e.URL)
	switch {
	case err != nil:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return bad("url", "not a URL: "+err.Error())
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("url", "must be http or https")
	case u.Hostname() == "":
		return bad("url", "must have a host")
	}
	if pe := e.validateBounds(bad); pe != nil {
		return pe
	}
	switch e.HTTP2 {
	case "", HTTP2Auto, HTTP2Off:
	case HTTP2H2C:
		if u.Scheme != "http" {
			return bad("http2", `"h2c" is HTTP/2 without TLS, for http:// URLs only; an https:// endpoint uses HTTP/2 with "auto"`)
		}
	default:
		return bad("http2", `must be "auto", "off" or "h2c"`)
	}
	return nil
}

// validateBounds checks the fields every kind of endpoint shares, after
// its URL.
func (e Endpoint) validateBounds(bad func(field, msg string) *Error) *Error {
	switch {
	case e.MaxInFlight < 0 || e.MaxInFlight > maxMaxInFlight:
		return bad("max_in_flight", fmt.Sprintf("must be 1 to %d (0 means %d)", maxMaxInFlight, DefaultMaxInFlight))
	case e.RatePerSec < 0 || math.IsNaN(e.RatePerSec) || math.IsInf(e.RatePerSec, 0):
		return bad("rate_per_sec", "must be 0 (unlimited) or more")
	case e.RatePerSec > 0 && e.RatePerSec < MinRatePerSec:
		// Shared among workers and turned into a wait per message, a rate
		// this small would overflow the wait and stall the broadcast.
		return bad("rate_per_sec", fmt.Sprintf("must be 0 (unlimited) or at least %g (one message in %g s)", MinRatePerSec, 1/MinRatePerSec))
	case e.TimeoutMS < 0 || e.TimeoutMS > maxTimeoutMS:
		return bad("timeout_ms", fmt.Sprintf("must be 1 to %d (0 means %d)", maxTimeoutMS, DefaultTimeoutMS))
	case e.MaxAttempts < 0 || e.MaxAttempts > maxMaxAttempts:
		return bad("max_attempts", fmt.Sprintf("must be 1 to %d (0 means %d)", maxMaxAttempts, DefaultMaxAttempts))
	case e.BatchSize < 0 || e.BatchSize > MaxBatchSize:
		return bad("batch_size", fmt.Sprintf("must be 1 to %d (0 means 1: one delivery a request)", MaxBatchSize))
	}
	if msg := checkSecretName(e.SigningSecret); msg != "" {
		return bad("signing_secret", msg)
	}
	if msg := checkSecretName(e.AuthSecret); msg != "" {
		return bad("auth_secret", msg)
	}
	return nil
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

// templateError turns a template compile error into a refusal naming the
// field at fault and the limit passed, if any.
func templateError(err error) *Error {
	e := &Error{Limit: templateLimit(err)}
	var te *templates.Error
	if errors.As(err, &te) {
		e.Field = "template.locales"
		if te.Locale != "" {
			e.Field += "." + pathKey(te.Locale)
			if te.Field != "" {
				e.Field += "." + pathKey(te.Field)
			}
		}
		e.Msg = te.Msg
		if te.Line > 0 {
			e.Msg = fmt.Sprintf("line %d col %d: %s", te.Line, te.Col, te.Msg)
		}
		return e
	}
	e.Msg = strings.TrimPrefix(err.Error(), "templates: ")
	switch {
	case errors.Is(err, templates.ErrDefaultLocale):
		e.Field = "template.default_locale"
	case errors.Is(err, templates.ErrNoLocales), errors.Is(err, templates.ErrTooManyLocales):
		e.Field = "template.locales"
	default:
		e.Field = "template"
	}
	return e
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
