package templates

import "strings"

// maxMatched bounds the cache of inexact locale matches: subscriber locales
// are untrusted input, and a cache that grew with each new one would let an
// audience file exhaust memory. Past the bound, matching still works, only
// without the cache.
const maxMatched = 1024

// Locale returns the locale whose variant a subscriber with locale
// subscriberLocale gets: a locale equal to it, ignoring case and taking "_"
// for "-"; else the longest prefix of it, cut at "-" or "_", that names a
// locale ("zh-Hant-TW", then "zh-Hant", then "zh"); else the default.
// It does not allocate once it has seen a subscriber locale.
func (s *Set) Locale(subscriberLocale string) string {
	return s.pick(subscriberLocale).locale
}

func (s *Set) pick(l string) *variant {
	if v, ok := s.variants[l]; ok {
		return v
	}
	cache := s.matched.Load()
	if cache != nil {
		if v, ok := (*cache)[l]; ok {
			return v
		}
	}
	v := s.match(l)
	s.remember(cache, l, v)
	return v
}

func (s *Set) match(l string) *variant {
	for l != "" {
		for _, v := range s.sorted {
			if sameTag(l, v.locale) {
				return v
			}
		}
		cut := strings.LastIndexAny(l, "-_")
		if cut < 0 {
			break
		}
		l = l[:cut]
	}
	return s.def
}

// remember adds l to the cache by copying it: readers never lock, and the
// copies stop at maxMatched entries.
func (s *Set) remember(old *map[string]*variant, l string, v *variant) {
	for {
		n := 0
		if old != nil {
			n = len(*old)
		}
		if n >= maxMatched {
			return
		}
		m := make(map[string]*variant, n+1)
		if old != nil {
			for k, x := range *old {
				m[k] = x
			}
		}
		// Clone: l may be a slice of a large audience line.
		m[strings.Clone(l)] = v
		if s.matched.CompareAndSwap(old, &m) {
			return
		}
		old = s.matched.Load()
	}
}

// sameTag compares locale tags ignoring ASCII case, with "_" equal to "-".
func sameTag(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if x == '_' {
			x = '-'
		}
		if y == '_' {
			y = '-'
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
