package audience

import (
	"fmt"
	"strings"
)

// maxIdentifier is PostgreSQL's NAMEDATALEN-1: longer names are truncated
// by the server, so two different spec names could mean one column.
const maxIdentifier = MaxIdentifierBytes

// MaxIdentifierBytes is the longest SQL name a spec may give.
const MaxIdentifierBytes = 63

// postgresFieldSet is the JSON name of the first postgres-only field set,
// "" when none is.
func (s Spec) postgresFieldSet() string {
	switch {
	case s.Table != "":
		return "table"
	case s.IDColumn != "":
		return "id_column"
	case s.PositionColumn != "":
		return "position_column"
	case s.LocaleColumn != "":
		return "locale_column"
	case s.ReachableColumn != "":
		return "reachable_column"
	case len(s.AttributeColumns) > 0:
		return "attribute_columns"
	case s.AttributesColumn != "":
		return "attributes_column"
	}
	return ""
}

func (s Spec) validatePostgres() error {
	bad := func(field, msg string) error { return &FieldError{"audience." + field, msg} }
	switch {
	case s.Connection == "":
		return bad("connection", "required for source postgres: the name of the worker secret holding the connection string")
	case !validSecretName(s.Connection):
		return bad("connection", "must be a secret name (letters, digits, '.', '_' and '-'), never a connection string")
	case s.Table == "":
		return bad("table", "required for source postgres")
	case s.Path != "":
		return bad("path", "only for sources file and prepared")
	case s.Count != 0:
		return bad("count", "only for source synthetic")
	case s.Seed != 0:
		return bad("seed", "only for source synthetic")
	case s.AttributesColumn != "" && len(s.AttributeColumns) > 0:
		return bad("attributes_column", "cannot be used with attribute_columns: name the columns or one json column")
	case len(s.AttributeColumns) > MaxAttributeColumns:
		return bad("attribute_columns", fmt.Sprintf("at most %d columns", MaxAttributeColumns))
	}
	parts := strings.Split(s.Table, ".")
	if len(parts) > 2 {
		return bad("table", "must be table or schema.table")
	}
	for _, p := range parts {
		if msg := CheckIdentifier(p); msg != "" {
			return bad("table", msg)
		}
	}
	for _, c := range []struct{ field, name string }{
		{"id_column", s.IDColumn}, {"position_column", s.PositionColumn},
		{"locale_column", s.LocaleColumn}, {"reachable_column", s.ReachableColumn},
		{"attributes_column", s.AttributesColumn},
	} {
		if c.name == "" {
			continue
		}
		if msg := CheckIdentifier(c.name); msg != "" {
			return bad(c.field, msg)
		}
	}
	seen := make(map[string]bool, len(s.AttributeColumns))
	for i, name := range s.AttributeColumns {
		field := fmt.Sprintf("attribute_columns[%d]", i)
		if msg := CheckIdentifier(name); msg != "" {
			return bad(field, msg)
		}
		if seen[name] {
			return bad(field, fmt.Sprintf("column %q named twice", name))
		}
		seen[name] = true
	}
	return nil
}

func (s Spec) validatePrepared() error {
	bad := func(field, msg string) error { return &FieldError{"audience." + field, msg} }
	if f := s.postgresFieldSet(); f != "" {
		return bad(f, "only for source postgres")
	}
	switch {
	case s.Path == "":
		return bad("path", "required for source prepared: the directory or s3://bucket/prefix `herald audience import` wrote")
	case s.Count != 0:
		return bad("count", "only for source synthetic")
	case s.Seed != 0:
		return bad("seed", "only for source synthetic")
	}
	loc, err := ParseLocation(s.Path)
	if err != nil {
		return bad("path", err.Error())
	}
	switch {
	case loc.Bucket != "" && s.Connection == "":
		return bad("connection", "required for an s3:// path: the name of the worker secret holding the endpoint and keys")
	case loc.Bucket == "" && s.Connection != "":
		return bad("connection", "only for an s3:// path")
	case s.Connection != "" && !validSecretName(s.Connection):
		return bad("connection", "must be a secret name (letters, digits, '.', '_' and '-')")
	}
	return nil
}

// CheckIdentifier is why name cannot be a column or table name in a spec,
// "" if it can: plain SQL identifiers only, which need no quoting rules
// in the spec and name the same column in every tool. They are quoted
// when used, so their case is kept.
func CheckIdentifier(name string) string {
	if name == "" {
		return "empty name"
	}
	if len(name) > maxIdentifier {
		return fmt.Sprintf("name longer than %d bytes", maxIdentifier)
	}
	for i, c := range name {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return fmt.Sprintf("%q is not a plain SQL name (letters, digits and '_', not starting with a digit)", name)
		}
	}
	return ""
}

// validSecretName accepts the names worker secrets have (file names under
// --secrets-dir, the rule of internal/connect); a connection string (with ':', '/', '@') is refused, so
// a password pasted into a trigger is caught at once.
func validSecretName(name string) bool {
	if name == "" || len(name) > 128 || name[0] == '.' {
		return false
	}
	for _, c := range name {
		switch {
		case c == '.', c == '_', c == '-', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		default:
			return false
		}
	}
	return true
}
