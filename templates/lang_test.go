package templates

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"golang.org/x/text/number"
)

// TestLangMatchesXText checks what lang writes itself against x/text, on
// random numbers and on ASCII text, in languages of every shape of number.
func TestLangMatchesXText(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, loc := range []string{"en", "de", "fr", "hi", "es", "ar", "fa", "bn", "de-CH", "pl", "ru", "ja", "tr", "az", "lt", "el", "nl", "sv", "ar-EG", "mr", "th", "zh-TW"} {
		l := newLang(language.Make(loc))
		if l.num == nil {
			t.Logf("%s: numbers go through x/text", loc)
		}
		for range 2000 {
			var n num
			var val any
			digits := r.IntN(6)
			if r.IntN(2) == 0 {
				n = num{i: r.Int64() >> r.IntN(64), isInt: true}
				if r.IntN(2) == 0 {
					n.i = -n.i
				}
				val = n.i
			} else {
				n = num{f: roundHalfAway((r.Float64()-0.5)*math.Pow(10, float64(r.IntN(18))), digits)}
				if n.f == 0 {
					n.f = 0
				}
				val = n.f
			}
			for _, fixed := range []bool{false, true} {
				got, ok := l.num.append(nil, n, digits, fixed)
				if !ok {
					continue
				}
				opt := number.MaxFractionDigits(digits)
				if fixed {
					opt = number.Scale(digits)
				}
				if want := l.printer.Sprint(number.Decimal(val, opt)); string(got) != want {
					t.Fatalf("%s: %v with %d digits (fixed %v) = %q, x/text %q", loc, val, digits, fixed, got, want)
				}
			}
		}
		if !l.asciiCase {
			continue
		}
		for range 200 {
			var b strings.Builder
			for range r.IntN(20) {
				b.WriteByte(byte(0x20 + r.IntN(0x5f)))
			}
			s := b.String()
			st := &renderState{left: workPerMessage}
			up, _ := l.appendCase(nil, st, "upper", s)
			low, _ := l.appendCase(nil, st, "lower", s)
			if string(up) != cases.Upper(l.tag).String(s) || string(low) != cases.Lower(l.tag).String(s) {
				t.Fatalf("%s: upper/lower of %q = %q/%q", loc, s, up, low)
			}
		}
	}
}
