package audience

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// ErrInvalid marks a record that cannot be delivered; the record's Invalid
// field holds the reason.
var ErrInvalid = errors.New("audience: invalid record")

var errDataAfterObject = errors.New("data after the object")

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
	// ID is the subscriber id, nil when the record is invalid; a postgres
	// row keeps the id that names it even when invalid.
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
// or, for a record Next already found invalid (no readable id), of its raw
// line, so that exactly one slot holds and counts it. A record Decode later
// finds invalid keeps the position of its id.
func (r *Record) Position() uint64 { return r.pos }

// SetLine makes r the record of a JSON Lines line, as the file source
// reads one: Raw is line, ID its id (found without decoding the rest) and
// Position the id's hash; or, for a line the id scan refuses or one cut
// at the length limit (tooLong, its reason, not ""), Invalid says why and
// Position is the hash of the line, so exactly one slot counts it. idBuf
// holds unescaped ids and is returned for reuse. Sources outside this
// package (postgres, prepared) build their records with it; r's other
// fields (Seq, Offset, Line) are the caller's.
func (r *Record) SetLine(line []byte, tooLong string, idBuf []byte) []byte {
	r.Raw, r.ID, r.Invalid = line, nil, tooLong
	r.synthetic, r.decoded = false, false
	if tooLong == "" {
		r.ID, idBuf, r.Invalid = extractID(line, idBuf)
	}
	if r.Invalid != "" {
		r.pos = xxhash.Sum64(line)
	} else {
		r.pos = xxhash.Sum64(r.ID)
	}
	return idBuf
}

// SetPosition overrides r's position, for a source whose records carry
// one (a postgres row's position column): the slot reading it counts it,
// whatever its id hashes to.
func (r *Record) SetPosition(p uint64) { r.pos = p }

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
// only for records it owns. Values are as package templates expects them:
// string, json.Number, bool, nil, []any and map[string]any. A record found
// invalid here (malformed JSON, a "locale" that is not a string, a
// "reachable" that is not a boolean) gets its Invalid reason set, and Decode
// returns an error wrapping ErrInvalid that also names the line.
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

// unmarshalObject decodes into m in place, with numbers as json.Number:
// the convention of package templates, so that a number prints in a
// message exactly as the audience file wrote it. It is a function of its
// own so that taking m's address does not move Decode's parameter to the
// heap on the synthetic path, which parses nothing.
func unmarshalObject(data []byte, m map[string]any) error {
	if decodeFlat(data, m) {
		return nil
	}
	clear(m)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return err
	}
	// The id scan already refused data after the object; this keeps Decode
	// sound on its own.
	if skipWS(data, int(dec.InputOffset())) != len(data) {
		return errDataAfterObject
	}
	return nil
}

// Locale is the "locale" of a record Decode filled m with, "" if absent.
func Locale(m map[string]any) string {
	s, _ := m["locale"].(string)
	return s
}

// Reachable is the "reachable" of a record Decode filled m with; absent
// means true.
func Reachable(m map[string]any) bool {
	b, ok := m["reachable"].(bool)
	return b || !ok
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
	switch {
	case r.Line > 0:
		return fmt.Errorf("%w: line %d: %s", ErrInvalid, r.Line, r.Invalid)
	case r.ID != nil:
		// A row of a table has no line; its id names it.
		return fmt.Errorf("%w: id %q: %s", ErrInvalid, r.ID, r.Invalid)
	}
	// A line of a prepared audience's segment.
	return fmt.Errorf("%w: record at offset %d: %s", ErrInvalid, r.Offset, r.Invalid)
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
