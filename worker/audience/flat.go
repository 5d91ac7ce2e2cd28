package audience

import (
	"encoding/json"
	"unicode/utf8"
)

// decodeFlat decodes a record that is a flat JSON object, the common
// case, without encoding/json: every key and string value free of escapes
// and control characters and valid UTF-8, every value a string, a number,
// true, false or null. It fills m exactly as encoding/json with UseNumber
// would (numbers as json.Number of their text, the last of duplicate keys
// kept) and reports true; for anything else (nested values, escapes,
// invalid JSON) it reports false, having put some of the keys in m, and
// the caller decodes the record with encoding/json, which also words the
// error of an invalid one. FuzzDecodeFlat holds it to encoding/json.
func decodeFlat(data []byte, m map[string]any) bool {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipWS(data, i+1)
	if i < len(data) && data[i] == '}' {
		return skipWS(data, i+1) == len(data)
	}
	for {
		key, j, ok := plainString(data, i)
		if !ok {
			return false
		}
		i = skipWS(data, j)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipWS(data, i+1)
		if i >= len(data) {
			return false
		}
		var v any
		switch c := data[i]; {
		case c == '"':
			s, j, ok := plainString(data, i)
			if !ok {
				return false
			}
			v, i = s, j
		case c == '-' || (c >= '0' && c <= '9'):
			j, ok := numberEnd(data, i)
			if !ok {
				return false
			}
			v, i = json.Number(data[i:j]), j
		case c == 't' && literal(data, i, "true") > 0:
			v, i = true, i+4
		case c == 'f' && literal(data, i, "false") > 0:
			v, i = false, i+5
		case c == 'n' && literal(data, i, "null") > 0:
			v, i = nil, i+4
		default:
			return false
		}
		m[key] = v
		i = skipWS(data, i)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case ',':
			i = skipWS(data, i+1)
		case '}':
			return skipWS(data, i+1) == len(data)
		default:
			return false
		}
	}
}

// plainString is the string that opens at data[i], and the index after
// its closing quote; ok is false if it is not a string without escapes
// and control characters, in valid UTF-8.
func plainString(data []byte, i int) (s string, end int, ok bool) {
	if i >= len(data) || data[i] != '"' {
		return "", 0, false
	}
	ascii := true
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			b := data[i+1 : j]
			if !ascii && !utf8.Valid(b) {
				return "", 0, false
			}
			return string(b), j + 1, true
		case c == '\\' || c < 0x20:
			return "", 0, false
		case c >= 0x80:
			ascii = false
		}
	}
	return "", 0, false
}

// numberEnd is the index after the JSON number that starts at data[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?; ok is false if none
// does.
func numberEnd(data []byte, i int) (int, bool) {
	digits := func(j int) int {
		for j < len(data) && data[j] >= '0' && data[j] <= '9' {
			j++
		}
		return j
	}
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i >= len(data):
		return 0, false
	case data[i] == '0':
		i++
	case data[i] >= '1' && data[i] <= '9':
		i = digits(i + 1)
	default:
		return 0, false
	}
	if i < len(data) && data[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}
