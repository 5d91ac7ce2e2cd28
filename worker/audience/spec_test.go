package audience

import (
	"errors"
	"fmt"
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

		{name: "postgres", spec: Spec{Source: "postgres", Connection: "audience-db", Table: "subs"}},
		{name: "postgres full", spec: Spec{Source: "postgres", Connection: "db.main_1", Table: "app.Subscribers", IDColumn: "member_id",
			PositionColumn: "pos", LocaleColumn: "lang", ReachableColumn: "opted_in", AttributeColumns: []string{"name", "plan"}}},
		{name: "postgres jsonb attributes", spec: Spec{Source: "postgres", Connection: "db", Table: "subs", AttributesColumn: "profile"}},
		{name: "postgres without connection", spec: Spec{Source: "postgres", Table: "subs"}, field: "audience.connection"},
		{name: "postgres connection string", spec: Spec{Source: "postgres", Connection: "postgres://u:pw@h/db", Table: "subs"}, field: "audience.connection"},
		{name: "postgres connection dot name", spec: Spec{Source: "postgres", Connection: ".hidden", Table: "subs"}, field: "audience.connection"},
		{name: "postgres without table", spec: Spec{Source: "postgres", Connection: "db"}, field: "audience.table"},
		{name: "postgres table injection", spec: Spec{Source: "postgres", Connection: "db", Table: "subs; DROP TABLE x"}, field: "audience.table"},
		{name: "postgres table three parts", spec: Spec{Source: "postgres", Connection: "db", Table: "a.b.c"}, field: "audience.table"},
		{name: "postgres quoted column", spec: Spec{Source: "postgres", Connection: "db", Table: "subs", IDColumn: `"id"`}, field: "audience.id_column"},
		{name: "postgres column from digit", spec: Spec{Source: "postgres", Connection: "db", Table: "subs", LocaleColumn: "1lang"}, field: "audience.locale_column"},
		{name: "postgres long column", spec: Spec{Source: "postgres", Connection: "db", Table: "subs", PositionColumn: strings.Repeat("p", 64)}, field: "audience.position_column"},
		{name: "postgres bad attribute", spec: Spec{Source: "postgres", Connection: "db", Table: "subs", AttributeColumns: []string{"a", "b-c"}}, field: "audience.attribute_columns[1]"},
		{name: "postgres attribute twice", spec: Spec{Source: "postgres", Connection: "db", Table: "subs", AttributeColumns: []string{"a", "a"}}, field: "audience.attribute_columns[1]"},
		{name: "postgres both attribute kinds", spec: Spec{Source: "postgres", Connection: "db", Table: "subs", AttributeColumns: []string{"a"}, AttributesColumn: "j"}, field: "audience.attributes_column"},
		{name: "postgres too many attributes", spec: Spec{Source: "postgres", Connection: "db", Table: "subs", AttributeColumns: manyColumns(MaxAttributeColumns + 1)}, field: "audience.attribute_columns"},
		{name: "postgres with path", spec: Spec{Source: "postgres", Connection: "db", Table: "subs", Path: "/a"}, field: "audience.path"},
		{name: "postgres with count", spec: Spec{Source: "postgres", Connection: "db", Table: "subs", Count: 1}, field: "audience.count"},
		{name: "file with table", spec: Spec{Source: "file", Path: "/a", Table: "subs"}, field: "audience.table"},
		{name: "file with connection", spec: Spec{Source: "file", Path: "/a", Connection: "db"}, field: "audience.connection"},
		{name: "synthetic with attribute columns", spec: Spec{Source: "synthetic", Count: 1, AttributeColumns: []string{"a"}}, field: "audience.attribute_columns"},

		{name: "prepared dir", spec: Spec{Source: "prepared", Path: "/mnt/aud/v1"}},
		{name: "prepared s3", spec: Spec{Source: "prepared", Path: "s3://audiences/v1", Connection: "s3-audiences"}},
		{name: "prepared without path", spec: Spec{Source: "prepared"}, field: "audience.path"},
		{name: "prepared s3 without connection", spec: Spec{Source: "prepared", Path: "s3://audiences/v1"}, field: "audience.connection"},
		{name: "prepared dir with connection", spec: Spec{Source: "prepared", Path: "/mnt/aud", Connection: "x"}, field: "audience.connection"},
		{name: "prepared other scheme", spec: Spec{Source: "prepared", Path: "gs://b/p"}, field: "audience.path"},
		{name: "prepared no bucket", spec: Spec{Source: "prepared", Path: "s3:///p", Connection: "x"}, field: "audience.path"},
		{name: "prepared with table", spec: Spec{Source: "prepared", Path: "/a", Table: "t"}, field: "audience.table"},
		{name: "prepared with seed", spec: Spec{Source: "prepared", Path: "/a", Seed: 2}, field: "audience.seed"},
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

func manyColumns(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("c%d", i)
	}
	return out
}

// The range sources are not streams: Open says so instead of reading.
func TestOpenRangeSource(t *testing.T) {
	for _, sp := range []Spec{
		{Source: "postgres", Connection: "db", Table: "subs"},
		{Source: "prepared", Path: "/a"},
	} {
		if _, err := Open(sp, zeroCursor, Limits{}); !errors.Is(err, ErrRangeSource) {
			t.Errorf("Open(%s) = %v, want ErrRangeSource", sp.Source, err)
		}
	}
}
