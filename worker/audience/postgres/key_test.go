package postgres

import (
	"errors"
	"testing"

	"github.com/herald-dev/herald/sharding"
)

func TestKeyText(t *testing.T) {
	for _, c := range []struct {
		key  Key
		text string
	}{
		{Key{Pos: 0, ID: "a"}, "p0000000000000000:a"},
		{Key{Pos: ^uint64(0), ID: "x:y:z"}, "pffffffffffffffff:x:y:z"},
		{Key{Pos: 0xa173746b114c6be8, ID: "user-1"}, "pa173746b114c6be8:user-1"},
		{Key{NullPosition: true, ID: "日本"}, "n:日本"},
		{Key{NullPosition: true}, "n:"},
	} {
		b, err := c.key.MarshalText()
		if err != nil || string(b) != c.text {
			t.Errorf("%+v: %q, %v; want %q", c.key, b, err, c.text)
		}
		var k Key
		if err := k.UnmarshalText([]byte(c.text)); err != nil || k != c.key {
			t.Errorf("%q: %+v, %v; want %+v", c.text, k, err, c.key)
		}
	}
	for _, bad := range []string{"", "p", "pA173746B114C6BE8:u", "p123:u", "q0000000000000000:u", "p000000000000000g:u", "n", "p0000000000000000u", "n:\xff"} {
		k := Key{ID: "kept"}
		if err := k.UnmarshalText([]byte(bad)); !errors.Is(err, sharding.ErrBadEncoding) || k.ID != "kept" {
			t.Errorf("%q: %v, key %+v", bad, err, k)
		}
	}
}

// FuzzKeyText: a text that parses prints back as itself (one text per
// key), and a key's text parses back to it.
func FuzzKeyText(f *testing.F) {
	for _, s := range []string{"p0000000000000000:a", "n:", "n:x", "pffffffffffffffff:x:y", "p00:", "P0000000000000000:a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var k Key
		if err := k.UnmarshalText([]byte(s)); err != nil {
			return
		}
		b, err := k.MarshalText()
		if err != nil || string(b) != s {
			t.Fatalf("%q parses to %+v, which prints %q (%v)", s, k, b, err)
		}
	})
}
