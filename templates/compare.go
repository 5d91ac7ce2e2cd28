package templates

import (
	"cmp"
	"encoding/json"
)

// The comparison functions replace text/template's so that JSON numbers,
// which a Record holds as json.Number, compare numerically with the number
// literals of a template ({{if gt .points 100}}); text/template itself
// would refuse a string-kinded value against an int. A number compared with
// a string compares as the text it was written as.

type class int

const (
	classNil class = iota
	classBool
	classNumber
	classString
	classOther
)

func classOf(v any) class {
	switch v.(type) {
	case nil:
		return classNil
	case bool:
		return classBool
	case string:
		return classString
	case json.Number:
		if _, ok := numberOf(v); !ok {
			return classString // not a valid number: compare its text
		}
		return classNumber
	}
	if _, ok := numberOf(v); ok {
		return classNumber
	}
	return classOther
}

// order compares a and b: -1, 0 or +1. ordered is false for values that can
// only be equal or not (booleans, nil).
func order(st *renderState, fn string, a, b any) (c int, ordered bool, err error) {
	ca, cb := classOf(a), classOf(b)
	switch {
	case ca == classNumber && cb == classNumber:
		na, _ := numberOf(a)
		nb, _ := numberOf(b)
		if na.isInt && nb.isInt {
			return cmp.Compare(na.i, nb.i), true, nil
		}
		return cmp.Compare(na.float(), nb.float()), true, nil
	case (ca == classString || ca == classNumber) && (cb == classString || cb == classNumber):
		sa, _ := text(fn, a)
		sb, _ := text(fn, b)
		if err := st.chargeText(fn, min(len(sa), len(sb))); err != nil {
			return 0, false, err
		}
		return cmp.Compare(sa, sb), true, nil
	case ca == classBool && cb == classBool:
		if a.(bool) == b.(bool) {
			return 0, false, nil
		}
		return 1, false, nil
	case ca == classNil || cb == classNil:
		if ca == cb {
			return 0, false, nil
		}
		return 1, false, nil
	}
	return 0, false, valueErrorf(fn, "cannot compare %s with %s", describe(a), describe(b))
}

// eq is true when a equals any of bs, as text/template's eq.
func eq(st *renderState, a any, bs ...any) (bool, error) {
	if len(bs) == 0 {
		return false, valueErrorf("eq", "needs at least two arguments")
	}
	for _, b := range bs {
		c, _, err := order(st, "eq", a, b)
		if err != nil {
			return false, err
		}
		if c == 0 {
			return true, nil
		}
	}
	return false, nil
}

func ne(st *renderState, a, b any) (bool, error) {
	c, _, err := order(st, "ne", a, b)
	return c != 0, err
}

func lt(st *renderState, a, b any) (bool, error) {
	return ordered(st, "lt", a, b, func(c int) bool { return c < 0 })
}

func le(st *renderState, a, b any) (bool, error) {
	return ordered(st, "le", a, b, func(c int) bool { return c <= 0 })
}

func gt(st *renderState, a, b any) (bool, error) {
	return ordered(st, "gt", a, b, func(c int) bool { return c > 0 })
}

func ge(st *renderState, a, b any) (bool, error) {
	return ordered(st, "ge", a, b, func(c int) bool { return c >= 0 })
}

func ordered(st *renderState, fn string, a, b any, want func(int) bool) (bool, error) {
	c, ok, err := order(st, fn, a, b)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, valueErrorf(fn, "cannot order %s and %s", describe(a), describe(b))
	}
	return want(c), nil
}
