package templates

import (
	"strings"
	"testing"
)

// TestKeyGolden pins keys: endpoints deduplicate on them across releases,
// so a change here breaks exactly-once for broadcasts in flight. The values
// were computed apart from this code, from the documented scheme:
//
//	python3 -c 'import hashlib,struct; b,s=b"a",b"bc"; print("hk1-"+hashlib.sha256(struct.pack(">Q",len(b))+b+struct.pack(">Q",len(s))+s).hexdigest()[:32])'
func TestKeyGolden(t *testing.T) {
	tests := []struct{ broadcast, subscriber, want string }{
		{"spring-sale-2026", "u42", "hk1-e8021e7b56e149452887477bec034bba"},
		{"", "", "hk1-374708fff7719dd5979ec875d56cd228"},
		{"a", "bc", "hk1-3fafa1cf2f19a7c1129beb20cf0983f7"},
		{"ab", "c", "hk1-601d5476e2ccfe2c87a2bba7a3226597"},
		{"b", "李雷", "hk1-2148f2cf5cc2a1fb197b71f38268efa7"},
	}
	for _, tt := range tests {
		t.Run(tt.broadcast+"/"+tt.subscriber, func(t *testing.T) {
			if got := Key(tt.broadcast, tt.subscriber); got != tt.want {
				t.Errorf("Key(%q, %q) = %q, want %q", tt.broadcast, tt.subscriber, got, tt.want)
			}
		})
	}
}

func TestKeyShape(t *testing.T) {
	long := strings.Repeat("x", 10000)
	pairs := [][2]string{{"b", "s"}, {"b", "s\x00"}, {"b\x00", "s"}, {"", "bs"}, {"bs", ""}, {long, long}, {"b", "\xff\xfe"}}
	seen := map[string][2]string{}
	for _, p := range pairs {
		k := Key(p[0], p[1])
		if len(k) > 200 || !strings.HasPrefix(k, KeyPrefix) {
			t.Errorf("Key%q = %q: wrong shape", p, k)
		}
		for _, c := range []byte(k) {
			if c < 0x21 || c > 0x7e {
				t.Errorf("Key%q = %q: not printable ASCII", p, k)
			}
		}
		if other, dup := seen[k]; dup {
			t.Errorf("Key%q = Key%q = %q", p, other, k)
		}
		seen[k] = p
		if got := string(AppendKey([]byte("x"), p[0], p[1])); got != "x"+k {
			t.Errorf("AppendKey%q = %q, want x%q", p, got, k)
		}
	}
}

func TestAppendKeyDoesNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 64)
	b, s := strings.Repeat("b", 128), strings.Repeat("s", 256)
	if n := testing.AllocsPerRun(100, func() { buf = AppendKey(buf[:0], b, s) }); n != 0 {
		t.Fatalf("AppendKey allocates %v times", n)
	}
}
