package templates

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"text/template"
	"unicode/utf8"

	"golang.org/x/text/language"
)

// Set is a compiled Spec: every field of every locale parsed, checked and
// ready to render. It is immutable and safe for concurrent use.
type Set struct {
	lim      Limits
	def      *variant
	variants map[string]*variant
	sorted   []*variant // by locale, for matching that is not exact

	// matched caches Locale's answers for subscriber locales that are not
	// exactly a key of variants (see locale.go).
	matched atomic.Pointer[map[string]*variant]
}

// variant is one locale's fields, sorted by name.
type variant struct {
	locale string
	fields []field
}

type field struct {
	name string
	text string // for the positions of errors while rendering
	tmpl *template.Template
	// fast, when not nil, renders the field without text/template: the
	// field is only text and actions of attributes, literals and the
	// formatting functions (see fast.go).
	fast []part
}

// Compile parses and checks every field of every locale of s.
func Compile(s Spec, lim Limits) (*Set, error) {
	if err := lim.Validate(); err != nil {
		return nil, err
	}
	lim = lim.withDefaults()
	switch {
	case len(s.Locales) == 0:
		return nil, ErrNoLocales
	case len(s.Locales) > lim.MaxLocales:
		return nil, fmt.Errorf("%w: %d, more than the limit of %d", ErrTooManyLocales, len(s.Locales), lim.MaxLocales)
	case s.DefaultLocale == "":
		return nil, fmt.Errorf("%w: missing", ErrDefaultLocale)
	}
	if _, ok := s.Locales[s.DefaultLocale]; !ok {
		return nil, fmt.Errorf("%w: %q is not among the locales", ErrDefaultLocale, s.DefaultLocale)
	}
	total := 0
	for _, fields := range s.Locales {
		for _, text := range fields {
			total += len(text)
		}
	}
	if total > lim.MaxTemplateBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrTooLarge, total, lim.MaxTemplateBytes)
	}

	set := &Set{lim: lim, variants: make(map[string]*variant, len(s.Locales))}
	for _, l := range slices.Sorted(maps.Keys(s.Locales)) {
		v, err := compileVariant(l, s.Locales[l], lim)
		if err != nil {
			return nil, err
		}
		set.variants[l] = v
		set.sorted = append(set.sorted, v)
	}
	set.def = set.variants[s.DefaultLocale]
	return set, nil
}

func compileVariant(locale string, fields map[string]string, lim Limits) (*variant, error) {
	switch {
	case locale == "":
		return nil, &Error{Msg: "empty locale name", Err: ErrEmptyName}
	case len(fields) == 0:
		return nil, &Error{Locale: locale, Msg: "no fields", Err: ErrNoFields}
	case len(fields) > lim.MaxFields:
		return nil, &Error{Locale: locale, Msg: fmt.Sprintf("%d fields, more than the limit of %d", len(fields), lim.MaxFields), Err: ErrTooManyFields}
	}
	l := newLang(language.Make(locale))
	funcs := funcMap(l)
	v := &variant{locale: locale}
	// In name order: the message's order, and the same first error each time.
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if name == "" {
			return nil, &Error{Locale: locale, Msg: "empty field name", Err: ErrEmptyName}
		}
		f, err := compileField(locale, name, fields[name], l, funcs)
		if err != nil {
			return nil, err
		}
		v.fields = append(v.fields, f)
	}
	return v, nil
}

func compileField(locale, name, text string, l *lang, funcs template.FuncMap) (field, error) {
	fail := func(pos int, msg string) (field, error) {
		e := &Error{Locale: locale, Field: name, Msg: msg, Err: ErrSyntax}
		if pos >= 0 {
			e.Line, e.Col = position(text, pos)
		}
		return field{}, e
	}
	t, err := parseTemplate(text, funcs)
	if err != nil {
		pos, msg := locateParseError(text, funcs, err)
		return fail(pos, msg)
	}
	for _, other := range t.Templates() {
		if other != t {
			pos := -1
			if other.Tree != nil && other.Tree.Root != nil {
				pos = int(other.Tree.Root.Pos)
			}
			return fail(actionStart(text, pos), "{{define}} and {{block}} are not allowed: each field is one template")
		}
	}
	if t.Tree == nil || t.Tree.Root == nil {
		// Nothing but space and comments: text/template would refuse to
		// execute it, but it is simply an empty field.
		return field{name: name, fast: []part{}}, nil
	}
	fast := fastParts(t.Tree.Root, l, text)
	if err := checkTree(t.Tree.Root); err != nil {
		var ce *checkError
		if errors.As(err, &ce) {
			pos := int(ce.pos)
			if ce.action {
				pos = actionStart(text, pos)
			}
			return fail(pos, ce.msg)
		}
		return fail(-1, err.Error())
	}
	return field{name: name, text: text, tmpl: t, fast: fast}, nil
}

// templateName is the name of every field's template. It appears in
// text/template's messages, which Compile and Render take apart or replace.
const templateName = "field"

func parseTemplate(text string, funcs template.FuncMap) (*template.Template, error) {
	return template.New(templateName).Option("missingkey=error").Funcs(funcs).Parse(text)
}

// locateParseError turns text/template's parse error, which gives only a
// line, into a byte offset and a message. The parser stops at the first
// token it cannot use, so the shortest prefix of the text that fails with
// the same error ends with that token. Failing that way is monotonic in the
// prefix length except within the parser's few tokens of lookahead, so a
// binary search gets close and a short backward scan finds the shortest.
func locateParseError(text string, funcs template.FuncMap, err error) (int, string) {
	full := err.Error()
	rest, ok := strings.CutPrefix(full, "template: "+templateName+":")
	if !ok {
		return -1, full
	}
	lineStr, msg, ok := strings.Cut(rest, ": ")
	line, convErr := strconv.Atoi(lineStr)
	if !ok || convErr != nil || line < 1 {
		return -1, full
	}
	if msg == "unexpected EOF" {
		return len(text), msg
	}
	lineStart := lineOffset(text, line)
	sameError := func(n int) bool {
		_, err := parseTemplate(text[:n], funcs)
		return err != nil && err.Error() == full
	}
	lo, hi := lineStart+1, len(text) // sameError(hi) holds
	if lo > hi {
		return lineStart, msg
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		if sameError(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	for n := hi - 1; n > lineStart && n >= hi-lookback; n-- {
		if sameError(n) {
			hi = n
		}
	}
	// The offending token ends at byte hi-1; point at its start when it is
	// a word (an undefined function's name) or the closing "}}".
	off := hi - 1
	for off > lineStart && !utf8.RuneStart(text[off]) {
		off--
	}
	switch {
	case isWordByte(text[off]):
		for off > lineStart && isWordByte(text[off-1]) {
			off--
		}
	case text[off] == '}' && off > lineStart && text[off-1] == '}':
		off--
	}
	return off, msg
}

// lookback is how far before the binary search's answer locateParseError
// looks for a shorter failing prefix: more than a few tokens of lookahead.
const lookback = 128

// actionStart is the offset of the "{{" that opens the action around pos.
func actionStart(text string, pos int) int {
	if pos < 0 {
		return pos
	}
	if i := strings.LastIndex(text[:min(pos, len(text))], "{{"); i >= 0 {
		return i
	}
	return pos
}

func isWordByte(b byte) bool {
	return b == '_' || b == '.' || b == '$' || '0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
}

// lineOffset is the byte offset at which line (from 1) of text starts.
func lineOffset(text string, line int) int {
	off := 0
	for i := 1; i < line; i++ {
		nl := strings.IndexByte(text[off:], '\n')
		if nl < 0 {
			break
		}
		off += nl + 1
	}
	return off
}

// position converts a byte offset of text into a line and a column, both
// from 1, the column counted in characters.
func position(text string, off int) (line, col int) {
	off = min(off, len(text))
	before := text[:off]
	lineStart := strings.LastIndexByte(before, '\n') + 1
	return 1 + strings.Count(before, "\n"), 1 + utf8.RuneCountInString(before[lineStart:])
}
