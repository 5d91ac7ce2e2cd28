// Package templates turns a broadcast's template and one subscriber's record
// into that subscriber's message, and the message into the body Herald
// POSTs to the endpoint.
//
// It provides:
//   - Compile, which parses and checks a Spec (the trigger's "template"
//     object) once per broadcast, under Limits, into a Set;
//   - (*Set).Locale, the choice of variant for a subscriber's locale: the
//     same tag (ignoring case, "_" as "-"), then its shorter prefixes
//     ("zh-TW" to "zh"), then the default locale;
//   - (*Set).Render, which renders one subscriber's Record into a reusable
//     Message, the hot path of a worker;
//   - ParseRecord, which decodes an audience line with numbers as
//     json.Number, the Record convention;
//   - AppendBody, the JSON body of a delivery's POST, always valid JSON;
//   - Key and AppendKey, the deterministic idempotency key.
//
// It does not read audiences, send anything, or choose which subscribers
// get a message; it does no I/O and starts no goroutines.
//
// # Template language
//
// Each field is a Go text/template evaluated with the record as data
// ({{.name}}, {{.address.city}}), with these restrictions, since templates
// come from whoever can produce a trigger:
//
//   - Functions: default, upper, lower, title, trim, truncate, number,
//     fixed, date, and of text/template's builtins and, or, not, len, index,
//     slice, eq, ne, lt, le, gt, ge, html, js, urlquery. call, print, printf
//     and println are refused: call reaches functions nobody vetted, and
//     printf's widths let a template allocate without bound.
//   - {{define}}, {{template}} and {{block}} are refused: a field is one
//     template and cannot call another, or itself.
//   - A range may not contain another range, and goes only over a list or
//     an object. $ may not be reassigned.
//   - Each message has a budget of work (about 32,000 node evaluations):
//     a loop costs its items times the size of its body, a function that
//     reads or writes text one unit per 64 bytes. A template that needs
//     more for a subscriber fails for that subscriber (ErrWorkLimit), so no
//     template can make the fleet spend more than a bounded time per
//     message.
//   - A rendered field may not pass Limits.MaxFieldBytes; the renderer stops
//     writing when it would.
//
// A reference to an attribute the record lacks, or holds as null, fails the
// subscriber's message with a *MissingAttributeError naming the attribute
// and the field, unless it is an argument of default, written
// {{default "friend" .name}} or {{.name | default "friend"}}; default also
// replaces "" and empty lists and objects (not false or 0). Nothing
// renders as text/template's "<no value>".
//
// The functions, with VALUE any attribute or expression:
//
//	default FALLBACK VALUE  VALUE, or FALLBACK when VALUE is missing or empty
//	upper VALUE             upper case, by the rules of the field's locale
//	lower VALUE             lower case, likewise
//	title VALUE             first letter of each word upper case, the rest as is
//	trim VALUE              without leading and trailing white space
//	truncate N VALUE        the first N characters (runes), no ellipsis added
//	number VALUE            with the locale's separators, at most 3 decimals: 1,234,567.5
//	fixed N VALUE           with the locale's separators, exactly N (0-20) decimals
//	date LAYOUT VALUE       an RFC 3339 time or unix seconds, in a Go layout
//	eq ne lt le gt ge       comparisons; JSON numbers compare as numbers
//	index VALUE KEY...      an object's attribute or a list's item; missing is an error
//
// Numbers round half away from zero on their decimal digits. Dates keep the
// offset of an RFC 3339 value and show unix seconds in UTC; names of
// months and days are English. docs/TEMPLATES.md has an example of each.
//
// Records hold numbers as json.Number, so {{.code}} prints a number exactly
// as the audience wrote it; whole numbers reach conditions and functions as
// int64, so {{if .unread}} is false for 0. Lists and objects print in Go's
// fmt form and are meant for range and index.
//
// # Cost
//
// Fields made of text and actions that print an attribute, a literal or
// a pipeline of default, upper, lower, title, trim, truncate, number,
// fixed, date, index, html, js and urlquery over attributes and literals
// ({{.name | default "friend" | upper}}, {{number .points}}), the common
// case, are rendered without text/template, by direct calls of the same
// functions: Render then makes one allocation per message, the string its
// fields share, plus a few per call of title, date, html, js and urlquery,
// of upper and lower on text that is not ASCII (or in Turkish and Azeri),
// of number and fixed beyond 2^53, and of a function whose text is the
// argument of another. Fields with if, range,
// with, variables, or and, or, not, len, slice and the comparisons run
// through text/template, at some microseconds and a few dozen allocations
// each.
package templates
