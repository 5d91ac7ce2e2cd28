package templates_test

import (
	"errors"
	"fmt"

	"github.com/herald-dev/herald/templates"
)

func Example() {
	set, err := templates.Compile(templates.Spec{
		DefaultLocale: "en",
		Locales: map[string]map[string]string{
			"en": {"title": `Hi {{default "friend" .name}}`, "body": "Your code: {{.code}}"},
			"zh": {"title": "{{.name}}，你好", "body": "优惠码：{{.code}}"},
		},
	}, templates.Limits{})
	if err != nil {
		fmt.Println(err)
		return
	}
	rec, err := templates.ParseRecord([]byte(`{"id":"u42","name":"Ann","code":"X7","locale":"en-GB"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	var msg templates.Message // reuse one per goroutine
	if err := set.Render(rec, rec["locale"].(string), &msg); err != nil {
		fmt.Println(err)
		return
	}
	body := templates.AppendBody(nil, templates.Delivery{
		BroadcastID:  "spring-sale-2026",
		SubscriberID: "u42",
		Key:          templates.Key("spring-sale-2026", "u42"),
		Message:      &msg,
	})
	fmt.Println(string(body))
	// Output:
	// {"broadcast_id":"spring-sale-2026","subscriber_id":"u42","idempotency_key":"hk1-e8021e7b56e149452887477bec034bba","locale":"en","message":{"body":"Your code: X7","title":"Hi Ann"}}
}

func ExampleCompile_error() {
	_, err := templates.Compile(templates.Spec{
		DefaultLocale: "en",
		Locales: map[string]map[string]string{
			"en": {"title": "Hi {{.name}}"},
			"zh": {"title": "{{.name}，你好"},
		},
	}, templates.Limits{})
	var e *templates.Error
	if errors.As(err, &e) {
		fmt.Println(e.Locale, e.Field, e.Line, e.Col)
	}
	fmt.Println(err)
	// Output:
	// zh title 1 8
	// templates: locale "zh" field "title": line 1 col 8: bad character U+007D '}'
}

func ExampleSet_Render_missingAttribute() {
	set, _ := templates.Compile(templates.Spec{
		DefaultLocale: "en",
		Locales:       map[string]map[string]string{"en": {"title": "Hi {{.name}}"}},
	}, templates.Limits{})
	var msg templates.Message
	err := set.Render(templates.Record{"id": "u1"}, "en", &msg)
	var missing *templates.MissingAttributeError
	if errors.As(err, &missing) {
		fmt.Println(missing.Attr, missing.Field)
	}
	fmt.Println(err)
	// Output:
	// name title
	// templates: locale "en" field "title": missing attribute "name"
}

func ExampleSet_Locale() {
	set, _ := templates.Compile(templates.Spec{
		DefaultLocale: "en",
		Locales:       map[string]map[string]string{"en": {"t": "Hi"}, "zh": {"t": "你好"}, "zh-TW": {"t": "妳好"}},
	}, templates.Limits{})
	for _, l := range []string{"zh_tw", "zh-HK", "fr", ""} {
		fmt.Printf("%q → %s\n", l, set.Locale(l))
	}
	// Output:
	// "zh_tw" → zh-TW
	// "zh-HK" → zh
	// "fr" → en
	// "" → en
}
