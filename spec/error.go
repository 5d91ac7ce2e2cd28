package spec

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is what every *Error is, for errors.Is.
var ErrInvalid = errors.New("spec: invalid broadcast spec")

// Error is why a broadcast spec was refused.
type Error struct {
	// ID is the broadcast id when one could be read from the spec and is
	// itself valid, so the refusal can be recorded under it; "" otherwise.
	ID string
	// Field is the JSON path of the offending field, such as "endpoint.url"
	// or "template.locales.zh.title"; "" when the spec as a whole is at
	// fault (not JSON, too large).
	Field string
	Msg   string
	// Limit names the input limit the spec passed (LimitTriggerBytes,
	// LimitTemplateBytes, ...), "" when it was refused for another reason.
	Limit string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("spec")
	if e.ID != "" {
		fmt.Fprintf(&b, " %q", e.ID)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Is makes every Error match ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }
