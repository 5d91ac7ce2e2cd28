package templates

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Record is a subscriber record as template data: one audience line's JSON
// object, decoded with numbers as json.Number so that they print exactly
// as written ({{.code}} of 12345678 prints "12345678", not "1.2345678e+07").
// Values are what encoding/json produces with UseNumber: string,
// json.Number, bool, nil, []any and map[string]any. Go integers and floats
// are accepted as numbers too, for records built in code.
type Record = map[string]any

// ErrNotObject is returned by ParseRecord for input that is not one JSON object.
var ErrNotObject = errors.New("templates: record is not a JSON object")

// ParseRecord decodes one line of a JSON Lines audience into a Record, with
// numbers as json.Number. It checks only that the line is a single JSON
// object; the meaning of "id", "locale" and "reachable" is the caller's.
func ParseRecord(line []byte) (Record, error) {
	trimmed := bytes.TrimLeft(line, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, ErrNotObject
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var rec Record
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("templates: parse record: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the object", ErrNotObject)
	}
	return rec, nil
}

// lookup follows path through nested objects. A JSON null counts as
// missing: printing it would put "<no value>" in a message.
func lookup(v any, path []string) (any, bool) {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok || v == nil {
			return nil, false
		}
	}
	return v, v != nil
}

// isEmpty says whether default should replace v. False and 0 are values a
// message may well want to show, so they are not empty.
func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

// appendValue prints v exactly as text/template's {{.}} would, without its
// reflection for the common types.
func appendValue(dst []byte, v any) []byte {
	switch v := v.(type) {
	case string:
		return append(dst, v...)
	case json.Number:
		return append(dst, v...)
	case bool:
		return strconv.AppendBool(dst, v)
	}
	return fmt.Append(dst, v)
}

// text is v as a string argument of a function such as upper.
func text(fn string, v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return string(v), nil
	case nil, []any, map[string]any:
		return "", valueErrorf(fn, "want text, got %s", describe(v))
	}
	return string(appendValue(nil, v)), nil
}

// describe names the JSON type of v for error messages.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		if len(v) > 40 {
			return strconv.Quote(v[:40] + "...")
		}
		return strconv.Quote(v)
	case json.Number:
		return "number " + string(v)
	case bool:
		return "boolean " + strconv.FormatBool(v)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	if _, ok := numberOf(v); ok {
		return "number " + string(appendValue(nil, v))
	}
	return fmt.Sprintf("a %T", v)
}

func joinPath(path []string) string { return strings.Join(path, ".") }
