package audience

import "unicode/utf8"

// Reasons a record is invalid, as found in Record.Invalid. A line longer
// than the limit has its own reason naming the limit.
const (
	ReasonNotObject   = "not a JSON object"
	ReasonMalformed   = "malformed JSON"
	ReasonNoID        = "no id"
	ReasonIDNotString = "id is not a string"
	ReasonDuplicateID = "duplicate id"
	ReasonEmptyID     = "id is empty"
	ReasonIDNotUTF8   = "id is not valid UTF-8"
	ReasonIDTooLong   = "id is longer than 256 bytes"
)

// extractID finds the string value of the top-level "id" key of a JSON
// object without decoding anything else, so that a record in another
// worker's slot costs one pass over its bytes and no allocation.
//
// It checks the shape of the top-level object (keys, colons, commas, braces,
// nothing after the object) and the id string fully, but only skips the other
// values: a malformed value elsewhere in the line is left for Decode to find.
// Unlike encoding/json, which keeps the last of duplicate keys and replaces
// invalid UTF-8 with U+FFFD, it calls such an id invalid: a subscriber id
// must mean exactly one thing.
//
// The id aliases line when it has no escapes; otherwise it is unescaped into
// buf, which is returned (possibly grown) for reuse. On failure id is nil and
// reason is one of the Reason constants.
func extractID(line, buf []byte) (id, outBuf []byte, reason string) {
	var (
		found, dup, notString bool
		idStart, idEnd        int  // id bounds in line, when not escaped
		idEscaped, idBadUTF8  bool // id bytes are buf[:idLen] instead
		idLen                 int
	)
	buf = buf[:0]
	i := skipWS(line, 0)
	if i == len(line) || line[i] != '{' {
		return nil, buf, ReasonNotObject
	}
	i = skipWS(line, i+1)
	if i < len(line) && line[i] == '}' {
		i++
	} else {
		for {
			if i >= len(line) || line[i] != '"' {
				return nil, buf, ReasonMalformed
			}
			end, escaped := scanKey(line, i)
			if end < 0 {
				return nil, buf, ReasonMalformed
			}
			key := line[i+1 : end]
			isID := string(key) == "id"
			if !isID && escaped {
				// An escaped key such as "\u0069d" still names id.
				var ok bool
				isID, buf, ok = escapedKeyIsID(key, buf, idLen)
				if !ok {
					return nil, buf, ReasonMalformed
				}
			}
			i = skipWS(line, end+1)
			if i >= len(line) || line[i] != ':' {
				return nil, buf, ReasonMalformed
			}
			i = skipWS(line, i+1)
			switch {
			case isID && found:
				dup = true
				i = skipValue(line, i)
			case isID && i < len(line) && line[i] == '"':
				found = true
				var r stringScan
				r, buf = scanIDString(line, i, buf)
				if r.end < 0 {
					return nil, buf, ReasonMalformed
				}
				idStart, idEnd = i+1, r.end
				idEscaped, idBadUTF8, idLen = r.escaped, r.badUTF8, len(buf)
				i = r.end + 1
			case isID:
				found, notString = true, true
				i = skipValue(line, i)
			default:
				i = skipValue(line, i)
			}
			if i < 0 {
				return nil, buf, ReasonMalformed
			}
			i = skipWS(line, i)
			if i >= len(line) {
				return nil, buf, ReasonMalformed
			}
			if line[i] == ',' {
				i = skipWS(line, i+1)
				continue
			}
			if line[i] != '}' {
				return nil, buf, ReasonMalformed
			}
			i++
			break
		}
	}
	if skipWS(line, i) != len(line) {
		return nil, buf, ReasonMalformed
	}
	switch {
	case dup:
		return nil, buf, ReasonDuplicateID
	case !found:
		return nil, buf, ReasonNoID
	case notString:
		return nil, buf, ReasonIDNotString
	}
	if idEscaped {
		id = buf[:idLen]
	} else {
		id = line[idStart:idEnd]
	}
	switch {
	case len(id) == 0:
		return nil, buf, ReasonEmptyID
	case idBadUTF8 || !utf8.Valid(id):
		return nil, buf, ReasonIDNotUTF8
	case len(id) > MaxIDBytes:
		return nil, buf, ReasonIDTooLong
	}
	return id, buf, ""
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index of the quote closing the string that opens
// at b[i], or -1. Escapes are only stepped over, not checked. A plain loop
// beats bytes.IndexByte here: most values are a few bytes long.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '"':
			return j
		case '\\':
			j++
		}
	}
	return -1
}

// scanKey is skipString that also reports whether the key has escapes, the
// rare case where it must be unescaped to be compared with "id".
func scanKey(b []byte, i int) (end int, escaped bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '"':
			return j, escaped
		case '\\':
			escaped = true
			j++
		}
	}
	return -1, escaped
}

// skipValue returns the index just after the value starting at b[i], or -1
// when no value starts there. Nested objects and arrays are skipped by
// counting brackets outside strings; their inside is not checked.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		end := skipString(b, i)
		if end < 0 {
			return -1
		}
		return end + 1
	case c == '{' || c == '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipString(b, j)
				if j < 0 {
					return -1
				}
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		j := i + 1
		for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == '.' || b[j] == 'e' || b[j] == 'E' || b[j] == '+' || b[j] == '-') {
			j++
		}
		return j
	}
	return -1
}

func literal(b []byte, i int, word string) int {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return -1
	}
	return i + len(word)
}

type stringScan struct {
	end     int  // index of the closing quote, -1 if the string is malformed
	escaped bool // the value was unescaped into the buffer
	badUTF8 bool // an escape decodes to no valid character (lone surrogate)
}

// scanIDString reads the string opening at b[i] strictly, as encoding/json
// would: control characters and unknown escapes make it malformed. Without
// escapes nothing is copied; with escapes the value is appended to buf.
func scanIDString(b []byte, i int, buf []byte) (stringScan, []byte) {
	r := stringScan{end: -1}
	start := i + 1
	for j := start; j < len(b); {
		c := b[j]
		switch {
		case c == '"':
			r.end = j
			return r, buf
		case c < 0x20:
			return r, buf
		case c == '\\':
			if !r.escaped {
				r.escaped = true
				buf = append(buf, b[start:j]...)
			}
			var ok, bad bool
			j, buf, ok, bad = unescape(b, j, buf)
			if !ok {
				return r, buf
			}
			r.badUTF8 = r.badUTF8 || bad
		default:
			if r.escaped {
				buf = append(buf, c)
			}
			j++
		}
	}
	return r, buf
}

// unescape decodes the escape at b[j] (a backslash) onto buf and returns
// the index after it. bad reports an escaped lone surrogate, which has no
// UTF-8 form (encoding/json turns it into U+FFFD).
func unescape(b []byte, j int, buf []byte) (next int, out []byte, ok, bad bool) {
	if j+1 >= len(b) {
		return j, buf, false, false
	}
	switch b[j+1] {
	case '"', '\\', '/':
		return j + 2, append(buf, b[j+1]), true, false
	case 'b':
		return j + 2, append(buf, '\b'), true, false
	case 'f':
		return j + 2, append(buf, '\f'), true, false
	case 'n':
		return j + 2, append(buf, '\n'), true, false
	case 'r':
		return j + 2, append(buf, '\r'), true, false
	case 't':
		return j + 2, append(buf, '\t'), true, false
	case 'u':
		r, ok := hex4(b, j+2)
		if !ok {
			return j, buf, false, false
		}
		next = j + 6
		switch {
		case r >= 0xD800 && r < 0xDC00:
			if lo, ok := hex4(b, next+2); ok && b[next] == '\\' && b[next+1] == 'u' && lo >= 0xDC00 && lo < 0xE000 {
				return next + 6, utf8.AppendRune(buf, (r-0xD800)<<10|(lo-0xDC00)+0x10000), true, false
			}
			return next, utf8.AppendRune(buf, utf8.RuneError), true, true
		case r >= 0xDC00 && r < 0xE000:
			return next, utf8.AppendRune(buf, utf8.RuneError), true, true
		}
		return next, utf8.AppendRune(buf, r), true, false
	}
	return j, buf, false, false
}

func hex4(b []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// escapedKeyIsID unescapes key after the first keep bytes of buf (which may
// hold the id already) and compares it with "id". ok is false when the key
// is not a well-formed string.
func escapedKeyIsID(key, buf []byte, keep int) (isID bool, out []byte, ok bool) {
	buf = buf[:keep]
	for j := 0; j < len(key); {
		if key[j] < 0x20 {
			return false, buf[:keep], false
		}
		if key[j] != '\\' {
			buf = append(buf, key[j])
			j++
			continue
		}
		var good bool
		j, buf, good, _ = unescape(key, j, buf)
		if !good {
			return false, buf[:keep], false
		}
	}
	return string(buf[keep:]) == "id", buf[:keep], true
}
