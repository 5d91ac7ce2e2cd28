package templates

import (
	"errors"
	"fmt"
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
	Err           error
}

func (e *RenderError) Error() string {
	return fmt.Sprintf("templates: locale %q field %q: %v", e.Locale, e.Field, e.Err)
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
	dst.st = renderState{rec: rec, left: workPerMessage}
	defer func() { dst.st.rec = nil }() // do not keep the record alive
	for i := range v.fields {
		f := &v.fields[i]
		var err error
		if f.fast != nil {
			dst.buf, err = appendFast(dst.buf, f.fast, rec, s.lim.MaxFieldBytes)
		} else {
			dst.w = limitWriter{buf: dst.buf, limit: len(dst.buf) + s.lim.MaxFieldBytes}
			err = f.tmpl.Execute(&dst.w, &dst.st)
			dst.buf, dst.w.buf = dst.w.buf, nil
		}
		if err != nil {
			return renderError(v.locale, f.name, err)
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

// renderError names the field in err, and keeps text/template's wrapping
// (which quotes our rewritten tree) out of the messages it can.
func renderError(locale, field string, err error) error {
	var missing *MissingAttributeError
	if errors.As(err, &missing) {
		return &MissingAttributeError{Locale: locale, Field: field, Attr: missing.Attr}
	}
	var bad *valueError
	if errors.As(err, &bad) {
		err = bad
	}
	return &RenderError{Locale: locale, Field: field, Err: err}
}
