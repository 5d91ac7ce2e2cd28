package audience

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid marks a record that cannot be delivered; the record's Invalid
// field holds the reason.
var ErrInvalid = errors.New("audience: invalid record")

// Further reasons a record is invalid, found by Decode.
const (
	ReasonLocaleNotString    = "locale is not a string"
	ReasonReachableNotBool   = "reachable is not a boolean"
	reasonBadJSONPrefix      = "malformed JSON: "
	maxDecodeErrorReasonSize = 120
)

// Record is one subscriber as read from the stream. The stream reuses it:
// a Record and the slices it holds are valid only until the next call of
// Next.
type Record struct {
	// Seq is the record's index in the stream, from 0. In a file it is the
	// line's index, so blank lines, which are skipped, still take a Seq.
	Seq uint64
	// Offset is the byte offset of the line in a file; 0 for synthetic.
	Offset int64
	// Line is the 1-based line number in a file, Seq+1.
	Line int64
	// ID is the subscriber id, nil when the record is invalid.
	ID []byte
	// Raw is the line without its line ending (only its first
	// Limits.MaxLineBytes bytes for an over-long line); nil for synthetic.
	Raw []byte
	// Invalid is why the record cannot be used, "" when it can.
	Invalid string

	pos uint64

	// Set for synthetic records: the generator's draw for this record.
	synthetic bool
	draw      uint64

	// Set by Decode.
	decoded   bool
	locale    string
	reachable bool
}

// Position is the record's place in the hash space: the xxhash of its id,
// or, for an invalid record, of its raw line, so that exactly one unit owns
// and counts it.
func (r *Record) Position() uint64 { return r.pos }

// Locale is the record's "locale" field, "" if absent. Synthetic records
// know it at once; file records after a successful Decode.
func (r *Record) Locale() string {
	if r.synthetic {
		return syntheticLocale(r.draw)
	}
	return r.locale
}

// Reachable is the record's "reachable" field; absent means true. Synthetic
// records know it at once; file records after a successful Decode.
func (r *Record) Reachable() bool {
	if r.synthetic {
		return syntheticReachable(r.draw)
	}
	return !r.decoded || r.reachable
}

// Decode parses the whole record into into, which is cleared first so that
// one map can serve every record. It is the expensive step a worker takes
// only for records it owns. A record found invalid here gets its Invalid
// reason set and Decode returns an error wrapping ErrInvalid.
func (r *Record) Decode(into map[string]any) error {
	if r.Invalid != "" {
		return r.invalidError()
	}
	clear(into)
	if r.synthetic {
		fillSynthetic(into, r.ID, r.draw)
		r.decoded = true
		return nil
	}
	if err := unmarshalObject(r.Raw, into); err != nil {
		r.Invalid = decodeReason(err)
		return r.invalidError()
	}
	r.locale, r.reachable = "", true
	if v, ok := into["locale"]; ok {
		s, ok := v.(string)
		if !ok {
			r.Invalid = ReasonLocaleNotString
			return r.invalidError()
		}
		r.locale = s
	}
	if v, ok := into["reachable"]; ok {
		b, ok := v.(bool)
		if !ok {
			r.Invalid = ReasonReachableNotBool
			return r.invalidError()
		}
		r.reachable = b
	}
	r.decoded = true
	return nil
}

// unmarshalObject decodes into m in place. It is a function of its own so
// that taking m's address for encoding/json does not move the caller's
// parameter to the heap on the synthetic path, which needs no parsing.
func unmarshalObject(data []byte, m map[string]any) error {
	return json.Unmarshal(data, &m)
}

// Attributes is Decode into a new map.
func (r *Record) Attributes() (map[string]any, error) {
	m := make(map[string]any, 8)
	if err := r.Decode(m); err != nil {
		return nil, err
	}
	return m, nil
}

func (r *Record) invalidError() error {
	return fmt.Errorf("%w: line %d: %s", ErrInvalid, r.Line, r.Invalid)
}

// decodeReason keeps the parser's message short: it ends up in status
// output next to the line number.
func decodeReason(err error) string {
	msg := reasonBadJSONPrefix + err.Error()
	if len(msg) > maxDecodeErrorReasonSize {
		msg = strings.ToValidUTF8(msg[:maxDecodeErrorReasonSize], "")
	}
	return msg
}

// syntheticPoints is the "points" attribute of a synthetic record.
func syntheticPoints(draw uint64) any { return float64(draw >> 48 % 100000) }
