package spec

import (
	"bytes"
	"encoding/json"
)

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
		if s, ok := v.(string); ok && checkID(s) == "" {
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
