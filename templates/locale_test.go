package templates

import (
	"fmt"
	"testing"
)

func TestLocale(t *testing.T) {
	s, err := Compile(Spec{DefaultLocale: "en", Locales: map[string]map[string]string{
		"en": {"f": "en"}, "zh": {"f": "zh"}, "zh-TW": {"f": "zh-TW"}, "pt-BR": {"f": "pt-BR"}, "sr-Latn": {"f": "sr-Latn"},
	}}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want string }{
		{"en", "en"},
		{"zh", "zh"},
		{"zh-TW", "zh-TW"},
		{"zh_TW", "zh-TW"},
		{"ZH-tw", "zh-TW"},
		{"zh-HK", "zh"},
		{"zh_Hant_HK", "zh"},
		{"ZH", "zh"},
		{"pt-BR", "pt-BR"},
		{"pt", "en"},
		{"pt-PT", "en"},
		{"sr-Latn-RS", "sr-Latn"},
		{"sr", "en"},
		{"", "en"},
		{"-", "en"},
		{"_zh", "en"},
		{"fr-CA", "en"},
		{"en-GB", "en"},
		{"\xff\xfe", "en"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			// Twice: the second answer comes from the cache.
			for range 2 {
				if got := s.Locale(tt.in); got != tt.want {
					t.Fatalf("Locale(%q) = %q, want %q", tt.in, got, tt.want)
				}
			}
			got, err := renderField(s, Record{}, tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("Render for %q = %q, %v; want the %q variant", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestLocaleDoesNotAllocate(t *testing.T) {
	s, err := Compile(Spec{DefaultLocale: "en", Locales: map[string]map[string]string{"en": {"f": ""}, "zh": {"f": ""}}}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"en", "zh_TW", "fr-CA", ""} {
		s.Locale(in) // fill the cache
		if n := testing.AllocsPerRun(100, func() { s.Locale(in) }); n != 0 {
			t.Errorf("Locale(%q) allocates %v times", in, n)
		}
	}
}

func TestLocaleCacheIsBounded(t *testing.T) {
	s, err := Compile(Spec{DefaultLocale: "en", Locales: map[string]map[string]string{"en": {"f": ""}, "zh": {"f": ""}}}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 * maxMatched {
		in := fmt.Sprintf("zh-x%d", i)
		if got := s.Locale(in); got != "zh" {
			t.Fatalf("Locale(%q) = %q", in, got)
		}
	}
	if n := len(*s.matched.Load()); n != maxMatched {
		t.Errorf("cache holds %d locales, want the bound %d", n, maxMatched)
	}
}
