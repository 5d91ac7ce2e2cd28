package templates

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/template"
)

// Errors of Render.
var (
	// ErrMissingAttribute is the class of *MissingAttributeError.
	ErrMissingAttribute = errors.New("templates: missing attribute")
	// ErrFieldTooLarge means a rendered field passed Limits.MaxFieldBytes.
	ErrFieldTooLarge = errors.New("templates: rendered field too large")
)

// MissingAttributeError is a template's reference to an attribute the
// subscriber's record lacks (or holds as null), outside default. It is an
// error for that subscriber only.
type MissingAttributeError struct {
	Locale string
	Field  string
	// Attr is the reference as written after the dot: "name", "address.city".
	Attr string
}

func (e *MissingAttributeError) Error() string {
	return fmt.Sprintf("templates: locale %q field %q: missing attribute %q", e.Locale, e.Field, e.Attr)
}

func (e *MissingAttributeError) Is(target error) bool { return target == ErrMissingAttribute }

// RenderError is any other failure to render one field for one subscriber:
// Err is ErrFieldTooLarge, ErrWorkLimit, an ErrValue from a function, or
// text/template's own execution error.
type RenderError struct {
	Locale, Field string
	// Line and Col locate the failing action in the field's text, from 1,
	// the column in characters; both are 0 when there is no one action to
	// blame.
	Line, Col int
	Err       error
	// msg is Err's message without text/template's context, which would
	// quote the template as Compile rewrote it.
	msg string
}

func (e *RenderError) Error() string {
	msg := e.msg
	if msg == "" {
		msg = e.Err.Error()
	}
	if e.Line > 0 {
		return fmt.Sprintf("templates: locale %q field %q: line %d col %d: %s", e.Locale, e.Field, e.Line, e.Col, msg)
	}
	return fmt.Sprintf("templates: locale %q field %q: %s", e.Locale, e.Field, msg)
}

func (e *RenderError) Unwrap() error { return e.Err }

// Field is one rendered field of a message.
type Field struct {
	Name, Value string
}

// Message is one subscriber's rendered message. Reuse one Message per
// goroutine: Render overwrites it and keeps its buffers, so that rendering
// costs one allocation per message in the common case.
type Message struct {
	// Locale is the locale whose variant was rendered.
	Locale string
	// Fields are sorted by name.
	Fields []Field

	buf  []byte
	ends []int
	w    limitWriter
	st   renderState
}

// limitWriter collects a field's text for text/template and fails the
// execution as soon as the field would pass its limit, before growing.
type limitWriter struct {
	buf   []byte
	limit int // len(buf) may not pass this
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if len(w.buf)+len(p) > w.limit {
		return 0, ErrFieldTooLarge
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// Render renders the variant of subscriberLocale (chosen as Locale does)
// for rec into dst. On error dst holds no fields, and the error is a
// *MissingAttributeError or a *RenderError naming the field.
func (s *Set) Render(rec Record, subscriberLocale string, dst *Message) error {
	v := s.pick(subscriberLocale)
	dst.Locale = v.locale
	dst.Fields = dst.Fields[:0]
	dst.buf = dst.buf[:0]
	dst.ends = dst.ends[:0]
	dst.st.rec, dst.st.left = rec, workPerMessage
	defer func() { dst.st.rec = nil }() // do not keep the record alive
	for i := range v.fields {
		f := &v.fields[i]
		var err error
		if f.fast != nil {
			dst.buf, err = appendFast(dst.buf, f.fast, &dst.st, s.lim.MaxFieldBytes)
		} else {
			dst.w = limitWriter{buf: dst.buf, limit: len(dst.buf) + s.lim.MaxFieldBytes}
			err = f.tmpl.Execute(&dst.w, &dst.st)
			dst.buf, dst.w.buf = dst.w.buf, nil
		}
		if err != nil {
			return renderError(v.locale, f, err)
		}
		dst.ends = append(dst.ends, len(dst.buf))
	}
	// One string for the whole message; the fields are slices of it.
	all := string(dst.buf)
	start := 0
	for i, end := range dst.ends {
		dst.Fields = append(dst.Fields, Field{Name: v.fields[i].name, Value: all[start:end]})
		start = end
	}
	return nil
}

// renderError names the field in err. text/template's execution errors
// quote the failing action as Compile rewrote it (with _attr and $ added),
// so their message is rebuilt from the position and the cause.
func renderError(locale string, f *field, err error) error {
	var missing *MissingAttributeError
	if errors.As(err, &missing) {
		return &MissingAttributeError{Locale: locale, Field: f.name, Attr: missing.Attr}
	}
	re := &RenderError{Locale: locale, Field: f.name, Err: err}
	var call *callError
	if errors.As(err, &call) {
		re.Line, re.Col, re.Err = call.line, call.col, call.err
	}
	var exec template.ExecError
	if errors.As(err, &exec) {
		re.Line, re.Col, re.msg = execErrorDetail(f.text, exec.Err.Error())
	}
	return re
}

// execErrorDetail takes apart text/template's
//
//	template: NAME:LINE:COL: executing "NAME" at <NODE>: error calling FN: CAUSE
//
// where COL counts bytes from 0, into a line, a column in characters from
// 1, and the cause.
func execErrorDetail(text, s string) (line, col int, msg string) {
	rest, ok := strings.CutPrefix(s, "template: "+templateName+":")
	if !ok {
		return 0, 0, ""
	}
	loc, rest, _ := strings.Cut(rest, ": ")
	lineStr, colStr, _ := strings.Cut(loc, ":")
	l, err1 := strconv.Atoi(lineStr)
	c, err2 := strconv.Atoi(colStr)
	if err1 != nil || err2 != nil || l < 1 || c < 0 {
		return 0, 0, ""
	}
	if _, cause, ok := strings.Cut(rest, ">: "); ok {
		rest = cause
	}
	if after, ok := strings.CutPrefix(rest, "error calling "); ok {
		if fn, cause, ok := strings.Cut(after, ": "); ok {
			// Our functions' errors name themselves; builtins' do not, and
			// the internal functions' names mean nothing to the author.
			rest = cause
			if !strings.HasPrefix(fn, "_") && !strings.HasPrefix(cause, fn+": ") {
				rest = fn + ": " + cause
			}
		}
	}
	line, col = position(text, lineOffset(text, l)+c)
	return line, col, rest
}
