package audience

import (
	"errors"
	"strings"
	"testing"
)

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name  string
		spec  Spec
		field string // "" when valid
	}{
		{name: "file", spec: Spec{Source: "file", Path: "/data/a.jsonl"}},
		{name: "synthetic", spec: Spec{Source: "synthetic", Count: 1}},
		{name: "synthetic largest with seed", spec: Spec{Source: "synthetic", Count: MaxSyntheticCount, Seed: -3}},
		{name: "no source", spec: Spec{Path: "/a"}, field: "audience.source"},
		{name: "unknown source", spec: Spec{Source: "kafka"}, field: "audience.source"},
		{name: "source is case sensitive", spec: Spec{Source: "File", Path: "/a"}, field: "audience.source"},
		{name: "file without path", spec: Spec{Source: "file"}, field: "audience.path"},
		{name: "file with count", spec: Spec{Source: "file", Path: "/a", Count: 3}, field: "audience.count"},
		{name: "file with seed", spec: Spec{Source: "file", Path: "/a", Seed: 3}, field: "audience.seed"},
		{name: "synthetic without count", spec: Spec{Source: "synthetic"}, field: "audience.count"},
		{name: "synthetic negative count", spec: Spec{Source: "synthetic", Count: -1}, field: "audience.count"},
		{name: "synthetic too many", spec: Spec{Source: "synthetic", Count: MaxSyntheticCount + 1}, field: "audience.count"},
		{name: "synthetic with path", spec: Spec{Source: "synthetic", Count: 5, Path: "/a"}, field: "audience.path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || !errors.Is(err, ErrSpec) {
				t.Fatalf("Validate = %v, want a FieldError for %s", err, tt.field)
			}
			if !strings.HasPrefix(err.Error(), tt.field+": ") {
				t.Fatalf("message %q does not start with the field", err)
			}
			if _, err := Open(tt.spec, zeroCursor, Limits{}); !errors.Is(err, ErrSpec) {
				t.Fatalf("Open accepted an invalid spec: %v", err)
			}
		})
	}
}
