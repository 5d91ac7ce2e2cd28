package templates

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/number"
)

// lang is what a locale's functions need of its language, built once per
// variant and shared by text/template's function table and the fast path.
// golang.org/x/text is exact but slow (a number costs over a dozen
// allocations), so lang learns the shapes of the language's output once
// and writes the common cases itself: ASCII text for upper and lower, and
// numbers of ordinary size. It checks what it learnt against x/text before
// relying on it, and leaves whatever it is not sure of to x/text.
type lang struct {
	tag     language.Tag
	printer *message.Printer
	// asciiCase says upper and lower map ASCII text letter by letter as
	// ASCII does: false for Turkish and Azeri, whose i and I differ.
	asciiCase bool
	num       *numberFormat // nil: every number goes through printer
}

func newLang(tag language.Tag) *lang {
	l := &lang{tag: tag, printer: message.NewPrinter(tag)}
	var ascii [0x7f - 0x20]byte
	for i := range ascii {
		ascii[i] = byte(0x20 + i)
	}
	probe := string(ascii[:]) + " ij IJ"
	l.asciiCase = cases.Upper(tag).String(probe) == string(asciiCase(nil, probe, 'a', 'z', 'A'-'a')) &&
		cases.Lower(tag).String(probe) == string(asciiCase(nil, probe, 'A', 'Z', 'a'-'A'))
	l.num = learnNumberFormat(l.printer)
	return l
}

// appendCase is upper, lower and title.
func (l *lang) appendCase(dst []byte, st *renderState, fn string, v any) ([]byte, error) {
	s, err := text(fn, v)
	if err != nil {
		return dst, err
	}
	if err := st.chargeText(fn, len(s)); err != nil {
		return dst, err
	}
	switch {
	case fn == "upper" && l.asciiCase && isASCII(s):
		return asciiCase(dst, s, 'a', 'z', 'A'-'a'), nil
	case fn == "lower" && l.asciiCase && isASCII(s):
		return asciiCase(dst, s, 'A', 'Z', 'a'-'A'), nil
	}
	// A cases.Caser keeps state between calls, so each call makes its own.
	var c cases.Caser
	switch fn {
	case "upper":
		c = cases.Upper(l.tag)
	case "lower":
		c = cases.Lower(l.tag)
	default:
		c = cases.Title(l.tag, cases.NoLower)
	}
	return append(dst, c.String(s)...), nil
}

// asciiCase appends s with the bytes from lo to hi shifted by delta.
func asciiCase(dst []byte, s string, lo, hi byte, delta int) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if lo <= c && c <= hi {
			c = byte(int(c) + delta)
		}
		dst = append(dst, c)
	}
	return dst
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// numberFormat writes numbers as a language's printer does when its
// pattern has the ordinary shape: ten digits, a decimal symbol, a minus
// prefix, and the whole part in groups of primary digits, then of
// secondary ones (Indian 12,34,567), once it has at least primary +
// minGroup digits (Spanish writes 1234 but 12.345).
type numberFormat struct {
	digits                     [10]string
	decimal, group, minus      string
	primary, secondary, minGrp int
}

// maxPlainFloat bounds the floats numberFormat writes: below 2^53 the
// whole part is exact and x/text's digits are strconv's. Larger ones are
// rare and go to x/text.
const maxPlainFloat = 1 << 53

// append writes n, already rounded to digits decimals; ok is false when it
// is left to x/text.
func (f *numberFormat) append(dst []byte, n num, digits int, fixed bool) ([]byte, bool) {
	if f == nil || (!n.isInt && !(n.f > -maxPlainFloat && n.f < maxPlainFloat)) {
		return dst, false
	}
	var buf [64]byte
	var plain []byte // ASCII digits, maybe a point and decimals; no sign
	neg := false
	if n.isInt {
		u := uint64(n.i)
		if n.i < 0 {
			neg, u = true, -u
		}
		plain = strconv.AppendUint(buf[:0], u, 10)
		if fixed && digits > 0 {
			plain = append(plain, '.')
			for range digits {
				plain = append(plain, '0')
			}
		}
	} else {
		neg = n.f < 0
		x := n.f
		if neg {
			x = -x
		}
		plain = strconv.AppendFloat(buf[:0], x, 'f', digits, 64)
		if !fixed && digits > 0 {
			plain = trimZeros(plain)
		}
	}
	if neg {
		dst = append(dst, f.minus...)
	}
	whole, frac, hasFrac := strings.Cut(string(plain), ".") // no allocation: only compared and indexed
	for i := 0; i < len(whole); i++ {
		if i > 0 && f.groupBefore(len(whole)-i, len(whole)) {
			dst = append(dst, f.group...)
		}
		dst = append(dst, f.digits[whole[i]-'0']...)
	}
	if hasFrac {
		dst = append(dst, f.decimal...)
		for i := 0; i < len(frac); i++ {
			dst = append(dst, f.digits[frac[i]-'0']...)
		}
	}
	return dst, true
}

// groupBefore says whether a group separator goes before the digit that
// has left digits from it to the point, of a whole part of width digits.
func (f *numberFormat) groupBefore(left, width int) bool {
	if f.primary == 0 || width < f.primary+f.minGrp {
		return false
	}
	if left == f.primary {
		return true
	}
	return left > f.primary && (left-f.primary)%f.secondary == 0
}

func trimZeros(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == '0' {
		b = b[:len(b)-1]
	}
	if len(b) > 0 && b[len(b)-1] == '.' {
		b = b[:len(b)-1]
	}
	return b
}

// learnNumberFormat reads the language's symbols and grouping off the
// printer's output for a few numbers, then checks the result against the
// printer on many; nil when they differ anywhere.
func learnNumberFormat(p *message.Printer) *numberFormat {
	var f numberFormat
	for d := range f.digits {
		f.digits[d] = p.Sprint(number.Decimal(d))
		if f.digits[d] == "" {
			return nil
		}
	}
	var ok bool
	one, five := f.digits[1], f.digits[5]
	if f.decimal, ok = between(p.Sprint(number.Decimal(1.5, number.MaxFractionDigits(1))), one, five); !ok {
		return nil
	}
	if f.minus, ok = strings.CutSuffix(p.Sprint(number.Decimal(-1)), one); !ok {
		return nil
	}
	// The groups of a long number, from the right.
	long := p.Sprint(number.Decimal(int64(1111111111111111111)))
	var sizes []int
	run := 0
	for rest := long; rest != ""; {
		if after, ok := strings.CutPrefix(rest, one); ok {
			run++
			rest = after
			continue
		}
		sep, after, ok := cutBefore(rest, one)
		if !ok || (f.group != "" && sep != f.group) {
			return nil
		}
		f.group, rest = sep, after
		sizes = append(sizes, run)
		run = 0
	}
	if len(sizes) > 0 {
		f.primary = run
		f.secondary = sizes[len(sizes)-1]
		f.minGrp = 1
		// The shortest number that gets a separator tells minGrp.
		for w := f.primary + 1; w <= f.primary+3; w++ {
			if strings.Contains(p.Sprint(number.Decimal(pow10(w-1))), f.group) {
				f.minGrp = w - f.primary
				break
			}
		}
	}
	if !f.agrees(p) {
		return nil
	}
	return &f
}

// between returns what s holds between prefix and suffix.
func between(s, prefix, suffix string) (string, bool) {
	mid, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return "", false
	}
	return strings.CutSuffix(mid, suffix)
}

// cutBefore splits s before the first sep, which must not be at its start.
func cutBefore(s, sep string) (before, after string, ok bool) {
	i := strings.Index(s, sep)
	if i <= 0 {
		return "", "", false
	}
	return s[:i], s[i:], true
}

func pow10(n int) int64 {
	p := int64(1)
	for range n {
		p *= 10
	}
	return p
}

// agrees checks f against the printer on numbers of every shape it writes.
func (f *numberFormat) agrees(p *message.Printer) bool {
	ints := []int64{0, 1, -1, 7, 12, 123, 1234, -1234, 12345, 123456, 1234567, 12345678, 123456789,
		1234567890, -9876543210, 100000, 1000000000000, 1<<53 - 1, 1<<63 - 1, -1 << 63}
	floats := []float64{0, 0.5, -0.5, 1.5, 2.25, 0.001, 0.125, 1234.5, -1234.568, 12345.678, 0.1, 0.3,
		999.999, 1e15 + 0.5, 123456789012.345, 4503599627370495.5, 1 << 52, -(1<<53 - 1)}
	for _, digits := range []int{0, 1, 2, 3, 20} {
		for _, fixed := range []bool{false, true} {
			check := func(n num, val any) bool {
				got, ok := f.append(nil, n, digits, fixed)
				if !ok {
					return true
				}
				opt := number.MaxFractionDigits(digits)
				if fixed {
					opt = number.Scale(digits)
				}
				return string(got) == p.Sprint(number.Decimal(val, opt))
			}
			for _, i := range ints {
				if !check(num{i: i, isInt: true}, i) {
					return false
				}
			}
			for _, x := range floats {
				x = roundHalfAway(x, digits)
				if !check(num{f: x}, x) {
					return false
				}
			}
		}
	}
	return true
}
