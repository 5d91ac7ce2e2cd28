package audience

import (
	"errors"
	"fmt"
)

// Source names accepted in Spec.Source.
const (
	SourceFile      = "file"
	SourceSynthetic = "synthetic"
	// SourcePostgres reads a table or view of PostgreSQL by position
	// range (postgres.go).
	SourcePostgres = "postgres"
	// SourcePrepared reads an audience `herald audience import` wrote, in a
	// directory or in object storage, by position range (prepared.go).
	SourcePrepared = "prepared"
)

// Defaults of a postgres audience's column names.
const (
	DefaultIDColumn       = "id"
	DefaultPositionColumn = "herald_position"
)

// MaxAttributeColumns bounds Spec.AttributeColumns: PostgreSQL's
// jsonb_build_object takes at most 100 arguments, a name and a value per
// column.
const MaxAttributeColumns = 48

// MaxSyntheticCount bounds a synthetic audience: ten billion subscribers is
// far beyond any test while keeping Seq arithmetic far from overflow.
const MaxSyntheticCount = 10_000_000_000

// MaxIDBytes is the longest subscriber id a record may carry, as Herald's
// contracts set it.
const MaxIDBytes = 256

// DefaultMaxLineBytes is the longest file line read when Limits leaves it unset.
const DefaultMaxLineBytes = 64 << 10

var (
	// ErrSpec marks an audience spec that fails validation; the error is a
	// *FieldError naming the field.
	ErrSpec = errors.New("audience: invalid spec")
	// ErrCursor marks a cursor that cannot be a position in the stream.
	ErrCursor = errors.New("audience: cursor does not fit the stream")
)

// Spec says where a broadcast's audience comes from. It is the "audience"
// object of a broadcast spec; its JSON names are the contract.
type Spec struct {
	// Source is SourceFile or SourceSynthetic.
	Source string `json:"source"`
	// Path is the JSON Lines file of a file audience. A relative path is
	// resolved against each worker's working directory.
	Path string `json:"path,omitempty"`
	// Count is the number of subscribers of a synthetic audience.
	Count int64 `json:"count,omitempty"`
	// Seed varies a synthetic audience: the same count and seed always yield
	// the same subscribers.
	Seed int64 `json:"seed,omitempty"`

	// Connection names the worker secret that says how to reach the
	// audience: for postgres a connection string (postgres://...), for a
	// prepared audience in object storage the S3 endpoint and its keys
	// (https://ACCESS_KEY:SECRET_KEY@host[:port][?region=...]). Never the
	// credentials themselves: a trigger is not a place for passwords.
	Connection string `json:"connection,omitempty"`
	// Table is the postgres table or view, optionally schema-qualified
	// (schema.table).
	Table string `json:"table,omitempty"`
	// IDColumn is the postgres column of subscriber ids (text or
	// varchar, unique, not null); "" means DefaultIDColumn.
	IDColumn string `json:"id_column,omitempty"`
	// PositionColumn is the postgres bigint column holding
	// sharding.PositionColumn of the id, indexed on (position, id); ""
	// means DefaultPositionColumn.
	PositionColumn string `json:"position_column,omitempty"`
	// LocaleColumn and ReachableColumn are the postgres columns of the
	// subscriber's locale (text) and reachability (boolean); "" means the
	// table has none (no locale, always reachable). A NULL is absent.
	LocaleColumn    string `json:"locale_column,omitempty"`
	ReachableColumn string `json:"reachable_column,omitempty"`
	// AttributeColumns are the postgres columns templates see, each under
	// its column name. AttributesColumn instead names one json or jsonb
	// column whose object's keys templates see. At most one of the two.
	AttributeColumns []string `json:"attribute_columns,omitempty"`
	AttributesColumn string   `json:"attributes_column,omitempty"`
}

// FieldError is a validation failure of one field of a Spec. Field is the
// JSON path from the broadcast spec's root, such as "audience.source".
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Is lets callers test for ErrSpec without knowing the field.
func (e *FieldError) Is(target error) bool { return target == ErrSpec }

// Validate reports the first field that is missing, out of range or does not
// belong to the source. Fields that do not belong are refused rather than
// ignored, so two specs that stream the same audience also read the same.
func (s Spec) Validate() error {
	switch s.Source {
	case SourceFile:
		if s.Path == "" {
			return &FieldError{"audience.path", "required for source file"}
		}
		if s.Count != 0 {
			return &FieldError{"audience.count", "only for source synthetic"}
		}
		if s.Seed != 0 {
			return &FieldError{"audience.seed", "only for source synthetic"}
		}
	case SourceSynthetic:
		if s.Count <= 0 || s.Count > MaxSyntheticCount {
			return &FieldError{"audience.count", fmt.Sprintf("must be 1 to %d for source synthetic", int64(MaxSyntheticCount))}
		}
		if s.Path != "" {
			return &FieldError{"audience.path", "only for source file"}
		}
	case SourcePostgres:
		return s.validatePostgres()
	case SourcePrepared:
		return s.validatePrepared()
	case "":
		return &FieldError{"audience.source", "required (file, synthetic, postgres or prepared)"}
	default:
		return &FieldError{"audience.source", fmt.Sprintf("unknown source %q (want file, synthetic, postgres or prepared)", s.Source)}
	}
	if f := s.postgresFieldSet(); f != "" {
		return &FieldError{"audience." + f, "only for source postgres"}
	}
	if s.Connection != "" {
		return &FieldError{"audience.connection", "only for sources postgres and prepared"}
	}
	return nil
}

// Limits bounds what a stream reads. The zero value means the defaults.
type Limits struct {
	// MaxLineBytes is the longest file line, without its line ending, that
	// is parsed; a longer line is an invalid record. Zero means
	// DefaultMaxLineBytes.
	MaxLineBytes int
}

func (l Limits) maxLine() int {
	if l.MaxLineBytes <= 0 {
		return DefaultMaxLineBytes
	}
	return l.MaxLineBytes
}
