package audience

import (
	"strings"
	"testing"
)

func TestParseLocation(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Location
		err  bool
	}{
		{"/data/aud", Location{Dir: "/data/aud"}, false},
		{"rel/dir", Location{Dir: "rel/dir"}, false},
		{"s3://b", Location{Bucket: "b"}, false},
		{"s3://b/p/q/", Location{Bucket: "b", Prefix: "p/q"}, false},
		{"s3:///p", Location{}, true},
		{"gs://b/p", Location{}, true},
	} {
		got, err := ParseLocation(c.in)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseLocation(%q) = %+v, %v", c.in, got, err)
		}
	}
}

// FuzzParseLocation: never panics; an s3 location names a bucket and a
// prefix without slashes at its ends, and prints back as a location that
// parses to itself.
func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{"/data/a", "s3://b/p", "s3://b//p//", "s3://", "http://x", "", "s3://b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		loc, err := ParseLocation(s)
		if err != nil {
			return
		}
		if loc.Bucket == "" {
			if loc.Dir != s {
				t.Fatalf("%q: dir %q", s, loc.Dir)
			}
			return
		}
		if strings.HasPrefix(loc.Prefix, "/") || strings.HasSuffix(loc.Prefix, "/") || strings.Contains(loc.Bucket, "/") {
			t.Fatalf("%q: %+v", s, loc)
		}
		again, err := ParseLocation(loc.String())
		if err != nil || again.Bucket != loc.Bucket || strings.Trim(again.Prefix, "/") != strings.Trim(loc.Prefix, "/") {
			t.Fatalf("%q: %+v printed %q parses to %+v, %v", s, loc, loc.String(), again, err)
		}
	})
}
