package templates

import (
	"errors"
	"fmt"
	"strings"
)

// Spec is the template object of a broadcast trigger (docs/CONTRACTS.md,
// "The trigger"): for each locale, the texts of the message's fields.
type Spec struct {
	// DefaultLocale is used for subscribers whose locale matches no other.
	// It must be one of the keys of Locales.
	DefaultLocale string `json:"default_locale"`
	// Locales maps a locale (a BCP 47 tag such as "en" or "zh-TW") to field
	// names and their template texts.
	Locales map[string]map[string]string `json:"locales"`
}

// Limits bound what a template may cost. A zero field means its documented
// default; negative values are invalid.
type Limits struct {
	// MaxTemplateBytes caps the sum of the lengths of all field texts over
	// all locales. 0 means 64 KiB.
	MaxTemplateBytes int
	// MaxFieldBytes caps one rendered field of one subscriber's message.
	// 0 means 16 KiB.
	MaxFieldBytes int
	// MaxLocales caps the number of locales. 0 means 64.
	MaxLocales int
	// MaxFields caps the number of fields of one locale. 0 means 32.
	MaxFields int
}

const (
	defaultMaxTemplateBytes = 64 << 10
	defaultMaxFieldBytes    = 16 << 10
	defaultMaxLocales       = 64
	defaultMaxFields        = 32
)

// Validate reports whether the limits are usable.
func (l Limits) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"MaxTemplateBytes", l.MaxTemplateBytes},
		{"MaxFieldBytes", l.MaxFieldBytes},
		{"MaxLocales", l.MaxLocales},
		{"MaxFields", l.MaxFields},
	} {
		if f.v < 0 {
			return fmt.Errorf("%w: %s is %d", ErrLimits, f.name, f.v)
		}
	}
	return nil
}

func (l Limits) withDefaults() Limits {
	if l.MaxTemplateBytes == 0 {
		l.MaxTemplateBytes = defaultMaxTemplateBytes
	}
	if l.MaxFieldBytes == 0 {
		l.MaxFieldBytes = defaultMaxFieldBytes
	}
	if l.MaxLocales == 0 {
		l.MaxLocales = defaultMaxLocales
	}
	if l.MaxFields == 0 {
		l.MaxFields = defaultMaxFields
	}
	return l
}

// Errors of Compile. Problems that belong to one locale or field come as an
// *Error whose Err is one of these.
var (
	ErrLimits         = errors.New("templates: invalid limits")
	ErrNoLocales      = errors.New("templates: no locales")
	ErrDefaultLocale  = errors.New("templates: bad default_locale")
	ErrTooLarge       = errors.New("templates: template too large")
	ErrTooManyLocales = errors.New("templates: too many locales")
	ErrTooManyFields  = errors.New("templates: too many fields")
	ErrNoFields       = errors.New("templates: locale without fields")
	ErrEmptyName      = errors.New("templates: empty name")
	ErrSyntax         = errors.New("templates: invalid template")
)

// Error is a compile problem in one locale, or one field of a locale. Use
// errors.As to get at it, errors.Is to test its class (Err).
type Error struct {
	Locale string
	// Field is empty when the problem is the locale's as a whole.
	Field string
	// Line and Col locate the problem in the field's text, from 1; Col
	// counts characters (runes), not bytes. Both are 0 when the problem has
	// no position.
	Line, Col int
	// Msg says what is wrong.
	Msg string
	// Err is the class of the problem, such as ErrSyntax or ErrTooManyFields.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "templates: locale %q", e.Locale)
	if e.Field != "" {
		fmt.Fprintf(&b, " field %q", e.Field)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ": line %d col %d", e.Line, e.Col)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }
