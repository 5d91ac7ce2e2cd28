package spec

import (
	"fmt"

	"github.com/herald-dev/herald/templates"
)

// Names of the input limits a spec can pass, as in Error.Limit. They are
// also labels of the workers' herald_input_limit_hits_total, beside the
// limits the worker enforces itself; docs/SECURITY.md lists each with
// where it is enforced.
const (
	LimitTriggerBytes  = "trigger_bytes"    // a spec's size, raw or canonical
	LimitTemplateBytes = "template_bytes"   // all template texts together
	LimitLocales       = "template_locales" // locales of one template
	LimitFields        = "template_fields"  // fields of one locale
)

// defaultMaxBytes is the largest spec accepted when Limits leave it 0.
const defaultMaxBytes = 1 << 20

// Limits bounds what Parse accepts. The zero value means the defaults.
type Limits struct {
	// MaxBytes is the largest spec accepted. 0 means 1 MiB.
	MaxBytes int
	// Template bounds the template; its zero value means the templates
	// package's defaults.
	Template templates.Limits
}

// Validate reports limits that cannot be used.
func (l Limits) Validate() error {
	if l.MaxBytes < 0 {
		return fmt.Errorf("spec: limits: MaxBytes is %d", l.MaxBytes)
	}
	if err := l.Template.Validate(); err != nil {
		return fmt.Errorf("spec: limits: %w", err)
	}
	return nil
}

// ByteLimit is the largest spec accepted: MaxBytes, or 1 MiB when it is 0.
func (l Limits) ByteLimit() int {
	if l.MaxBytes <= 0 {
		return defaultMaxBytes
	}
	return l.MaxBytes
}
