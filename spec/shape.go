package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

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
	shapeList // an array, elements of one shape
)

type shape struct {
	kind   shapeKind
	fields map[string]*shape // shapeObject
	elem   *shape            // shapeMap, shapeList
}

// maxPathKey keeps a hostile key from filling an error message.
const maxPathKey = 64

func specShape() *shape {
	leaf := func(k shapeKind) *shape { return &shape{kind: k} }
	object := func(fields map[string]*shape) *shape { return &shape{kind: shapeObject, fields: fields} }
	return object(map[string]*shape{
		"id": leaf(shapeString),
		"audience": object(map[string]*shape{
			"source":            leaf(shapeString),
			"path":              leaf(shapeString),
			"count":             leaf(shapeInt),
			"seed":              leaf(shapeInt),
			"connection":        leaf(shapeString),
			"table":             leaf(shapeString),
			"id_column":         leaf(shapeString),
			"position_column":   leaf(shapeString),
			"locale_column":     leaf(shapeString),
			"reachable_column":  leaf(shapeString),
			"attribute_columns": {kind: shapeList, elem: leaf(shapeString)},
			"attributes_column": leaf(shapeString),
		}),
		"only_reachable": leaf(shapeBool),
		"template": object(map[string]*shape{
			"default_locale": leaf(shapeString),
			"locales":        {kind: shapeMap, elem: &shape{kind: shapeMap, elem: leaf(shapeString)}},
		}),
		"endpoint": object(map[string]*shape{
			"url":            leaf(shapeString),
			"max_in_flight":  leaf(shapeInt),
			"rate_per_sec":   leaf(shapeFloat),
			"timeout_ms":     leaf(shapeInt),
			"max_attempts":   leaf(shapeInt),
			"signing_secret": leaf(shapeString),
			"auth_secret":    leaf(shapeString),
			"http2":          leaf(shapeString),
			"batch_size":     leaf(shapeInt),
			"kind":           leaf(shapeString),
			"token_field":    leaf(shapeString),
			"apns": object(map[string]*shape{
				"key_secret":        leaf(shapeString),
				"key_id":            leaf(shapeString),
				"team_id":           leaf(shapeString),
				"topic":             leaf(shapeString),
				"push_type":         leaf(shapeString),
				"priority":          leaf(shapeInt),
				"expiration_s":      leaf(shapeInt),
				"collapse_from_key": leaf(shapeBool),
			}),
			"fcm": object(map[string]*shape{
				"credentials_secret": leaf(shapeString),
				"project":            leaf(shapeString),
				"collapse_from_key":  leaf(shapeBool),
			}),
			"webpush": object(map[string]*shape{
				"vapid_secret":   leaf(shapeString),
				"subject":        leaf(shapeString),
				"ttl_s":          leaf(shapeInt),
				"urgency":        leaf(shapeString),
				"topic_from_key": leaf(shapeBool),
			}),
		}),
		"not_before": leaf(shapeTime),
		"expires_at": leaf(shapeTime),
	})
}

// checkShape walks data's tokens against the spec's shape and returns the
// first field that does not fit. JSON null is accepted anywhere and means
// absent, as it does for encoding/json.
func checkShape(data []byte) *Error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if e := checkValue(dec, "", specShape()); e != nil {
		return e
	}
	if _, err := dec.Token(); err != io.EOF {
		return &Error{Msg: "data after the spec"}
	}
	return nil
}

func checkValue(dec *json.Decoder, path string, sh *shape) *Error {
	tok, err := dec.Token()
	if err != nil {
		return syntaxError(err, dec)
	}
	if tok == nil {
		return nil
	}
	bad := func(msg string) *Error { return &Error{Field: path, Msg: msg} }
	switch sh.kind {
	case shapeObject, shapeMap:
		if tok != json.Delim('{') {
			return bad("must be an object")
		}
		return checkObject(dec, path, sh)
	case shapeList:
		if tok != json.Delim('[') {
			return bad("must be an array")
		}
		for i := 0; dec.More(); i++ {
			if e := checkValue(dec, fmt.Sprintf("%s[%d]", path, i), sh.elem); e != nil {
				return e
			}
		}
		if _, err := dec.Token(); err != nil {
			return syntaxError(err, dec)
		}
	case shapeString:
		if _, ok := tok.(string); !ok {
			return bad("must be a string")
		}
	case shapeTime:
		s, ok := tok.(string)
		var t time.Time
		if !ok || t.UnmarshalText([]byte(s)) != nil {
			return bad("must be an RFC 3339 time such as 2026-11-23T10:00:00Z")
		}
	case shapeInt:
		n, ok := tok.(json.Number)
		if !ok {
			return bad("must be an integer")
		}
		if _, err := n.Int64(); err != nil {
			return bad("must be an integer in range")
		}
	case shapeFloat:
		n, ok := tok.(json.Number)
		if !ok {
			return bad("must be a number")
		}
		if _, err := n.Float64(); err != nil {
			return bad("must be a number in range")
		}
	case shapeBool:
		if _, ok := tok.(bool); !ok {
			return bad("must be true or false")
		}
	}
	return nil
}

func checkObject(dec *json.Decoder, path string, sh *shape) *Error {
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return syntaxError(err, dec)
		}
		key := tok.(string) // Token guarantees a key here
		at := pathKey(key)
		if path != "" {
			at = path + "." + at
		}
		if seen[key] {
			return &Error{Field: at, Msg: "given twice"}
		}
		seen[key] = true
		sub := sh.elem
		if sh.kind == shapeObject {
			if sub = sh.fields[key]; sub == nil {
				return &Error{Field: at, Msg: "unknown field"}
			}
		}
		if e := checkValue(dec, at, sub); e != nil {
			return e
		}
	}
	if _, err := dec.Token(); err != nil {
		return syntaxError(err, dec)
	}
	return nil
}

// syntaxError is a refusal of the whole spec for err, a syntax error of
// dec's.
func syntaxError(err error, dec *json.Decoder) *Error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return &Error{Msg: "not valid JSON: unexpected end"}
	}
	return &Error{Msg: fmt.Sprintf("not valid JSON at byte %d: %s", dec.InputOffset(), strings.TrimPrefix(err.Error(), "json: "))}
}

// pathKey bounds a key's length in a field path.
func pathKey(k string) string {
	if len(k) <= maxPathKey {
		return k
	}
	return strings.ToValidUTF8(k[:maxPathKey], "") + "..."
}
