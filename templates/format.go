package templates

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/number"
)

// maxFixedDigits bounds `fixed N`: more decimals than a float64 holds would
// only print noise, and an unbounded N would let a template allocate at will.
const maxFixedDigits = 20

// numberDigits is how many decimals `number` keeps, CLDR's standard decimal
// pattern (#,##0.###).
const numberDigits = 3

// num is a numeric value: an exact integer when it fits, else a float.
type num struct {
	i     int64
	f     float64
	isInt bool
}

// numberOf reads v as a number: Go integers and floats, json.Number, and
// strings holding a JSON-style number (records often carry "12.50").
func numberOf(v any) (num, bool) {
	switch v := v.(type) {
	case int:
		return num{i: int64(v), isInt: true}, true
	case int8:
		return num{i: int64(v), isInt: true}, true
	case int16:
		return num{i: int64(v), isInt: true}, true
	case int32:
		return num{i: int64(v), isInt: true}, true
	case int64:
		return num{i: v, isInt: true}, true
	case uint:
		return numFromUint(uint64(v)), true
	case uint8:
		return numFromUint(uint64(v)), true
	case uint16:
		return numFromUint(uint64(v)), true
	case uint32:
		return numFromUint(uint64(v)), true
	case uint64:
		return numFromUint(v), true
	case float32:
		return num{f: float64(v)}, !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0)
	case float64:
		return num{f: v}, !math.IsNaN(v) && !math.IsInf(v, 0)
	case json.Number:
		return parseNum(string(v))
	case string:
		return parseNum(strings.TrimSpace(v))
	}
	return num{}, false
}

func numFromUint(u uint64) num {
	if u <= math.MaxInt64 {
		return num{i: int64(u), isInt: true}
	}
	return num{f: float64(u)}
}

func parseNum(s string) (num, bool) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return num{i: i, isInt: true}, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return num{}, false
	}
	return num{f: f}, true
}

func (n num) float() float64 {
	if n.isInt {
		return float64(n.i)
	}
	return n.f
}

// appendNumber appends v with the separators of l's language. With fixed
// it shows exactly digits decimals, else at most numberDigits. Rounding is
// half away from zero on the decimal digits (2.5 gives 3, 1.005 gives
// 1.01), which is what readers of a message expect, rather than on the
// binary value.
func (l *lang) appendNumber(dst []byte, st *renderState, fn string, digits int, fixed bool, v any) ([]byte, error) {
	n, ok := numberOf(v)
	if !ok {
		return dst, valueErrorf(fn, "want a number, got %s", describe(v))
	}
	// A float prints up to 309 whole digits; charge for the widest.
	if err := st.chargeText(fn, 330); err != nil {
		return dst, err
	}
	if !n.isInt {
		n.f = roundHalfAway(n.f, digits)
		if n.f == 0 {
			n.f = 0 // drop the sign of -0
		}
	}
	if out, ok := l.num.append(dst, n, digits, fixed); ok {
		return out, nil
	}
	var val any = n.i
	if !n.isInt {
		val = n.f
	}
	if fixed {
		return append(dst, l.printer.Sprint(number.Decimal(val, number.Scale(digits)))...), nil
	}
	return append(dst, l.printer.Sprint(number.Decimal(val, number.MaxFractionDigits(digits)))...), nil
}

// appendFixed is `fixed N VALUE`.
func (l *lang) appendFixed(dst []byte, st *renderState, n, v any) ([]byte, error) {
	digits, err := count("fixed", n, maxFixedDigits)
	if err != nil {
		return dst, err
	}
	return l.appendNumber(dst, st, "fixed", digits, true, v)
}

// roundHalfAway rounds f to digits decimals, half away from zero, working on
// its shortest decimal form.
func roundHalfAway(f float64, digits int) float64 {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) <= digits {
		return f
	}
	up := frac[digits] >= '5'
	d := []byte(whole + frac[:digits])
	if up {
		i := len(d) - 1
		for ; i >= 0 && d[i] == '9'; i-- {
			d[i] = '0'
		}
		if i < 0 {
			d = append([]byte{'1'}, d...)
		} else {
			d[i]++
		}
	}
	cut := len(d) - digits
	out := string(d[:cut])
	if digits > 0 {
		out += "." + string(d[cut:])
	}
	if neg {
		out = "-" + out
	}
	r, err := strconv.ParseFloat(out, 64)
	if err != nil {
		return f
	}
	return r
}

// count reads a small non-negative integer argument such as truncate's N.
func count(fn string, v any, max int) (int, error) {
	n, ok := numberOf(v)
	if !ok || !n.isInt || n.i < 0 || n.i > int64(max) {
		return 0, valueErrorf(fn, "want a whole number from 0 to %d, got %s", max, describe(v))
	}
	return int(n.i), nil
}

// formatDate renders v, an RFC 3339 time or unix seconds, with a Go layout.
// An RFC 3339 time keeps its own offset; unix seconds are shown in UTC. No
// time zone database is read: a template cannot reach the file system.
func formatDate(st *renderState, layout string, v any) (string, error) {
	t, ok := timeOf(v)
	if !ok {
		return "", valueErrorf("date", "want an RFC 3339 time or unix seconds, got %s", describe(v))
	}
	out := t.Format(layout)
	return out, st.chargeText("date", len(layout)+len(out))
}

func timeOf(v any) (time.Time, bool) {
	if s, ok := v.(string); ok {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t, true
		}
	}
	n, ok := numberOf(v)
	if !ok {
		return time.Time{}, false
	}
	if n.isInt {
		return time.Unix(n.i, 0).UTC(), true
	}
	// A float beyond 2^53 seconds has no exact whole part left, and
	// int64(sec) would overflow further out.
	if math.Abs(n.f) > 1<<53 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(n.f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
}
