package sink

import "bytes"

// maxBroadcastID is the longest broadcast id the spec allows; anything
// longer is not one.
const maxBroadcastID = 128

var broadcastIDName = []byte(`"broadcast_id"`)

// broadcastID returns the string value of the first "broadcast_id" member
// in body without parsing the JSON: Herald puts it first and ids are plain
// [A-Za-z0-9._-], so a search is exact for real deliveries and costs
// nothing per byte of message. Values with escapes, longer than an id can
// be, or not strings give nil.
func broadcastID(body []byte) []byte {
	i := bytes.Index(body, broadcastIDName)
	if i < 0 {
		return nil
	}
	rest := skipSpace(body[i+len(broadcastIDName):])
	if len(rest) == 0 || rest[0] != ':' {
		return nil
	}
	rest = skipSpace(rest[1:])
	if len(rest) == 0 || rest[0] != '"' {
		return nil
	}
	rest = rest[1:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 || end > maxBroadcastID {
		return nil
	}
	v := rest[:end]
	if bytes.IndexByte(v, '\\') >= 0 {
		return nil
	}
	return v
}

func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}

// validKey reports whether key is what Herald promises endpoints of an
// idempotency key: printable ASCII, at most 200 characters.
func validKey(key string) bool {
	if len(key) == 0 || len(key) > 200 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return false
		}
	}
	return true
}
