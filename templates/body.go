package templates

import "unicode/utf8"

// Delivery is what one POST to the endpoint carries (docs/CONTRACTS.md,
// "A delivery").
type Delivery struct {
	BroadcastID  string
	SubscriberID string
	// Key is the idempotency key, normally Key(BroadcastID, SubscriberID).
	Key string
	// Locale is the rendered locale; when empty, Message.Locale is used.
	Locale  string
	Message *Message
}

// AppendBody appends the JSON body of d to dst:
//
//	{"broadcast_id":..,"subscriber_id":..,"idempotency_key":..,"locale":..,"message":{"title":..,"body":..}}
//
// with the message's fields in their order (Render sorts them by name). The
// output is valid JSON whatever the strings hold: invalid UTF-8 becomes
// U+FFFD, and control characters, U+2028 and U+2029 are escaped. It
// allocates only to grow dst.
func AppendBody(dst []byte, d Delivery) []byte {
	locale := d.Locale
	if locale == "" && d.Message != nil {
		locale = d.Message.Locale
	}
	dst = append(dst, `{"broadcast_id":`...)
	dst = appendJSONString(dst, d.BroadcastID)
	dst = append(dst, `,"subscriber_id":`...)
	dst = appendJSONString(dst, d.SubscriberID)
	dst = append(dst, `,"idempotency_key":`...)
	dst = appendJSONString(dst, d.Key)
	dst = append(dst, `,"locale":`...)
	dst = appendJSONString(dst, locale)
	dst = append(dst, `,"message":{`...)
	if d.Message != nil {
		for i, f := range d.Message.Fields {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, f.Name)
			dst = append(dst, ':')
			dst = appendJSONString(dst, f.Value)
		}
	}
	return append(dst, "}}"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Runs of bytes that need no
// escaping are copied whole; the common case is one copy.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			// Valid JSON, but not valid JavaScript source before ES2019;
			// receivers that eval or embed the body would break.
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
