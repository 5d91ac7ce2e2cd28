package coordinator

import (
	"strings"
	"testing"
)

// TestStatusOf: each key in StatusRange is attributed to the broadcast whose
// status it is part of, and the range holds exactly those keys.
func TestStatusOf(t *testing.T) {
	r := newRegistry(nil, "/herald")
	from, end := r.StatusRange()
	tests := []struct {
		key     string
		id      string
		all     bool
		inRange bool
	}{
		{"/herald/broadcasts/b1/state", "b1", false, true},
		{"/herald/broadcasts/b1/spec", "b1", false, true},
		{"/herald/progress/b1/7", "b1", false, true},
		{"/herald/members/w1", "", true, true},
		{"/herald/slots/b1/claim/3", "", false, false},
		{"/herald/assigned/w1/b1/3", "", false, false},
		{"/herald/archive/b1", "", false, false},
	}
	for _, tt := range tests {
		id, all := r.StatusOf(tt.key)
		if id != tt.id || all != tt.all {
			t.Errorf("StatusOf(%s) = %q, %v; want %q, %v", tt.key, id, all, tt.id, tt.all)
		}
		if in := strings.Compare(tt.key, from) >= 0 && strings.Compare(tt.key, end) < 0; in != tt.inRange {
			t.Errorf("%s in [%s, %s) = %v, want %v", tt.key, from, end, in, tt.inRange)
		}
	}
}
