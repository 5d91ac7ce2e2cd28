package templates

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/template"
)

// ErrValue is the class of errors of a template function given a value it
// cannot use, such as `number` given a name.
var ErrValue = errors.New("templates: bad value")

// valueError is a function's complaint; it reads as
// "number: want a number, got \"Ann\"". Its class is ErrValue or
// ErrWorkLimit.
type valueError struct {
	fn, msg string
	class   error
}

func valueErrorf(fn, format string, args ...any) error {
	return &valueError{fn: fn, msg: fmt.Sprintf(format, args...), class: ErrValue}
}

func (e *valueError) Error() string {
	if e.fn == "" {
		return e.msg
	}
	return e.fn + ": " + e.msg
}

func (e *valueError) Is(target error) bool { return target == e.class }

// Names of the functions Compile inserts into a parse tree. A template that
// names them itself is refused (userFunc does not know them), so they are
// ours alone.
const (
	fnRoot     = "_root"     // the record, for {{.}} at the top and {{$}}
	fnAttr     = "_attr"     // strict attribute lookup
	fnOptAttr  = "_optattr"  // attribute lookup for default: missing is nil
	fnAttr1    = "_attr1"    // fnAttr of one name: no variadic slice per call
	fnOptAttr1 = "_optattr1" // fnOptAttr of one name
	fnOptIndex = "_optindex" // index for default: missing is nil
	fnPrint    = "_print"    // refuses to print nothing
	fnRange    = "_range"    // bounds a range
)

// userFunc says whether a template may call name, and with how many
// arguments (hi -1: any number). The builtins text/template always has but
// that are missing here (call, print, printf, println) are refused at
// compile time: call would reach functions we did not vet, and printf's
// width and precision let a template allocate without bound.
func userFunc(name string) (lo, hi int, ok bool) {
	switch name {
	case "upper", "lower", "title", "trim", "number", "not", "len":
		return 1, 1, true
	case "default", "truncate", "fixed", "date", "ne", "lt", "le", "gt", "ge":
		return 2, 2, true
	case "index", "eq":
		return 2, -1, true
	case "slice", "and", "or":
		return 1, -1, true
	case "html", "js", "urlquery":
		return 0, -1, true
	}
	return 0, 0, false
}

// funcMap is the function table of one locale's templates. Casing and
// number formatting follow the locale's language: Turkish upper of "i" is
// "İ", German numbers read 1.234,5. The functions in chargedFunc take the
// renderState first, which Compile passes without the template writing it.
// The fast path (fastcall.go) calls the same functions without reflection.
func funcMap(l *lang) template.FuncMap {
	caser := func(fn string) func(*renderState, any) (string, error) {
		return func(st *renderState, v any) (string, error) {
			out, err := l.appendCase(nil, st, fn, v)
			return string(out), err
		}
	}
	escaper := func(fn string, escape func(...any) string) func(*renderState, ...any) (string, error) {
		return func(st *renderState, args ...any) (string, error) {
			return escapeText(st, fn, escape, args)
		}
	}
	refuse := func(name string) func(...any) (string, error) {
		return func(...any) (string, error) {
			return "", valueErrorf(name, "not allowed in templates")
		}
	}
	return template.FuncMap{
		"default":  defaultOf,
		"upper":    caser("upper"),
		"lower":    caser("lower"),
		"title":    caser("title"),
		"trim":     trim,
		"truncate": truncate,
		"number": func(st *renderState, v any) (string, error) {
			out, err := l.appendNumber(nil, st, "number", numberDigits, false, v)
			return string(out), err
		},
		"fixed": func(st *renderState, n, v any) (string, error) {
			out, err := l.appendFixed(nil, st, n, v)
			return string(out), err
		},
		"date":     formatDate,
		"index":    index,
		"eq":       eq,
		"ne":       ne,
		"lt":       lt,
		"le":       le,
		"gt":       gt,
		"ge":       ge,
		"html":     escaper("html", template.HTMLEscaper),
		"js":       escaper("js", template.JSEscaper),
		"urlquery": escaper("urlquery", template.URLQueryEscaper),

		"call":    refuse("call"),
		"print":   refuse("print"),
		"printf":  refuse("printf"),
		"println": refuse("println"),

		fnRoot:     root,
		fnAttr:     attr,
		fnOptAttr:  optAttr,
		fnAttr1:    func(dot any, name string) (any, error) { return attr(dot, name) },
		fnOptAttr1: func(dot any, name string) any { return optAttr(dot, name) },
		fnOptIndex: optIndex,
		fnPrint:    printable,
		fnRange:    rangeOver,
	}
}

// escapeText is html, js and urlquery: escape is text/template's escaper.
func escapeText(st *renderState, fn string, escape func(...any) string, args []any) (string, error) {
	for _, a := range args {
		if a == nil {
			return "", valueErrorf(fn, "nothing to escape (the value is null or missing)")
		}
	}
	out := escape(args...)
	return out, st.chargeText(fn, len(out))
}

// defaultOf is `default FALLBACK VALUE`: VALUE unless it is missing, null,
// "" or an empty list or object.
func defaultOf(fallback, v any) any {
	if isEmpty(v) {
		return fallback
	}
	return v
}

func trim(st *renderState, v any) (string, error) {
	s, err := text("trim", v)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(s), st.chargeText("trim", len(s))
}

// truncate keeps the first n characters (runes) of v. It does not add an
// ellipsis: whether and how to mark the cut is the template's choice.
func truncate(st *renderState, n, v any) (string, error) {
	limit, err := count("truncate", n, 1<<30)
	if err != nil {
		return "", err
	}
	s, err := text("truncate", v)
	if err != nil {
		return "", err
	}
	for i := range s {
		if limit == 0 {
			s = s[:i]
			break
		}
		limit--
	}
	return s, st.chargeText("truncate", len(s))
}

// attr is what {{.a.b}} becomes: a lookup whose failure names the attribute.
func attr(dot any, path ...string) (any, error) {
	if v, ok := lookup(root(dot), path); ok {
		return forLogic(v), nil
	}
	return nil, &MissingAttributeError{Attr: joinPath(path)}
}

// optAttr is what a field reference becomes as an argument of default.
func optAttr(dot any, path ...string) any {
	v, _ := lookup(root(dot), path)
	return forLogic(v)
}

// forLogic hands a JSON integer to text/template as an int64, which prints
// the same digits, so that {{if .unread}} is false for 0 as readers expect
// (a json.Number is a non-empty string, always true) and the builtins that
// take integers (slice) accept it. Other numbers stay json.Number, which
// prints exactly as written where a float64 would not (2.50, 1e21).
func forLogic(v any) any {
	n, ok := v.(json.Number)
	if !ok {
		return v
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return v
	}
	var canonical [20]byte
	if string(strconv.AppendInt(canonical[:0], i, 10)) != string(n) {
		return v // "-0" and the like would print differently
	}
	return i
}

// index is `index ITEM KEY...` over JSON values: a string key into an
// object, a whole number into a list. A key the object lacks is a missing
// attribute, as for {{.a.b}}.
func index(item any, keys ...any) (any, error) {
	for _, k := range keys {
		v, err := index1(item, k)
		if err != nil {
			return nil, err
		}
		item = v
	}
	return item, nil
}

func index1(item, key any) (any, error) {
	switch c := item.(type) {
	case map[string]any:
		k, ok := key.(string)
		if !ok {
			return nil, valueErrorf("index", "an object's key must be text, got %s", describe(key))
		}
		if v, ok := c[k]; ok && v != nil {
			return forLogic(v), nil
		}
		return nil, &MissingAttributeError{Attr: k}
	case []any:
		n, ok := numberOf(key)
		if !ok || !n.isInt {
			return nil, valueErrorf("index", "a list's index must be a whole number, got %s", describe(key))
		}
		if n.i < 0 || n.i >= int64(len(c)) {
			return nil, valueErrorf("index", "index %d out of range for a list of %d", n.i, len(c))
		}
		if v := c[n.i]; v != nil {
			return forLogic(v), nil
		}
		return nil, &MissingAttributeError{Attr: fmt.Sprintf("[%d]", n.i)}
	}
	return nil, valueErrorf("index", "cannot index %s", describe(item))
}

// optIndex is index as an argument of default: anything it cannot find is nil.
func optIndex(item any, keys ...any) any {
	v, err := index(item, keys...)
	if err != nil {
		return nil
	}
	return v
}

// printable guards actions that print: text/template would print a nil as
// "<no value>", which must never reach a subscriber.
func printable(v any) (any, error) {
	if v == nil {
		return nil, valueErrorf("", "nothing to print (the value is null or missing)")
	}
	return v, nil
}

// rangeOver guards a range: it must go over a list or an object, and it
// charges the items times cost, the size of the loop's body.
func rangeOver(st *renderState, cost int, v any) (any, error) {
	n := 0
	switch c := v.(type) {
	case nil:
		return []any(nil), nil
	case []any:
		n = len(c)
	case map[string]any:
		n = len(c)
	default:
		return nil, valueErrorf("range", "want a list or an object, got %s", describe(v))
	}
	if err := st.charge("range", n*cost); err != nil {
		return nil, err
	}
	return v, nil
}
