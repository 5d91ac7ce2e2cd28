package postgres

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/herald-dev/herald/sharding"
)

// A Key is where a slot's range read resumes, so a checkpoint stores it.
// Its text form is canonical, like sharding.Cursor's: one text per key,
// and parsing refuses any other.

// MarshalText returns k as p<16 lowercase hex digits>:<id> for a row with
// a position, n:<id> for a NULL-position row. The id comes last, so it
// needs no escaping.
func (k Key) MarshalText() ([]byte, error) {
	if !utf8.ValidString(k.ID) {
		return nil, fmt.Errorf("%w: key id is not valid UTF-8", sharding.ErrBadEncoding)
	}
	return []byte(k.String()), nil
}

// String returns the text MarshalText writes.
func (k Key) String() string {
	if k.NullPosition {
		return "n:" + k.ID
	}
	return fmt.Sprintf("p%016x:%s", k.Pos, k.ID)
}

// UnmarshalText sets k from the form MarshalText writes; on error k is
// unchanged.
func (k *Key) UnmarshalText(text []byte) error {
	s := string(text)
	bad := func(why string) error { return fmt.Errorf("%w: key %q: %s", sharding.ErrBadEncoding, s, why) }
	if !utf8.ValidString(s) {
		return bad("not valid UTF-8")
	}
	switch {
	case strings.HasPrefix(s, "n:"):
		*k = Key{NullPosition: true, ID: s[2:]}
		return nil
	case strings.HasPrefix(s, "p") && len(s) >= 18 && s[17] == ':':
		hex := s[1:17]
		if strings.ToLower(hex) != hex {
			return bad("position not in lowercase hex")
		}
		pos, err := strconv.ParseUint(hex, 16, 64)
		if err != nil {
			return bad("position not 16 hex digits")
		}
		*k = Key{Pos: pos, ID: s[18:]}
		return nil
	}
	return bad("want p<16 hex digits>:<id> or n:<id>")
}
