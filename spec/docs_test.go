package spec

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestProvidersDocTriggersParse: every complete trigger in
// docs/PROVIDERS.md is a valid spec of the kind it shows.
func TestProvidersDocTriggersParse(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROVIDERS.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(\\{\"id\".*?)```").FindAllStringSubmatch(string(doc), -1)
	kinds := map[string]bool{}
	for _, b := range blocks {
		s, _, err := Parse([]byte(b[1]), Limits{})
		if err != nil {
			t.Errorf("trigger in PROVIDERS.md refused: %v\n%s", err, b[1])
			continue
		}
		kinds[s.Endpoint.Kind] = true
	}
	for _, k := range []string{KindAPNs, KindFCM, KindWebPush} {
		if !kinds[k] {
			t.Errorf("PROVIDERS.md has no complete %s trigger (found %d triggers)", k, len(blocks))
		}
	}
	if strings.Count(string(doc), "```json") < 3 {
		t.Error("PROVIDERS.md lost its triggers")
	}
}
