package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/herald-dev/herald/sharding"
)

func TestRegisterIsIdempotentAndRefusesConflicts(t *testing.T) {
	c := newCluster(t)
	reg := NewRegistry(c.admin, "")
	ctx := context.Background()
	spec := []byte(`{"id":"spring"}`)

	created, err := reg.Register(ctx, Broadcast{ID: "spring", Spec: spec})
	if err != nil || !created {
		t.Fatalf("first register: created=%v err=%v", created, err)
	}
	before, err := reg.Status(ctx, "spring")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		spec        []byte
		wantCreated bool
		wantErr     error
	}{
		{"same spec again is a no-op", spec, false, nil},
		{"different spec is a conflict", []byte(`{"id":"spring","x":1}`), false, ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			created, err := reg.Register(ctx, Broadcast{ID: "spring", Spec: tt.spec})
			if created != tt.wantCreated || !errors.Is(err, tt.wantErr) {
				t.Fatalf("created=%v err=%v, want %v %v", created, err, tt.wantCreated, tt.wantErr)
			}
			got, err := reg.Spec(ctx, "spring")
			if err != nil || string(got) != string(spec) {
				t.Fatalf("spec now %q %v, want the original", got, err)
			}
			after, err := reg.Status(ctx, "spring")
			if err != nil || after.State != StatePending || !after.UpdatedAt.Equal(before.UpdatedAt) {
				t.Fatalf("state touched: %+v %v", after, err)
			}
		})
	}

	t.Run("reject records the reason", func(t *testing.T) {
		if err := reg.Reject(ctx, "bad-one", []byte("{not json"), "spec: invalid JSON"); err != nil {
			t.Fatal(err)
		}
		st, err := reg.Status(ctx, "bad-one")
		if err != nil || st.State != StateRejected || st.Reason != "spec: invalid JSON" {
			t.Fatalf("status %+v %v", st, err)
		}
		if err := reg.Reject(ctx, "spring", []byte("{other"), "x"); !errors.Is(err, ErrConflict) {
			t.Fatalf("reject over an existing broadcast: %v, want ErrConflict", err)
		}
	})
	t.Run("bad ids and missing broadcasts", func(t *testing.T) {
		if _, err := reg.Register(ctx, Broadcast{ID: "a/b", Spec: spec}); !errors.Is(err, ErrInvalidID) {
			t.Fatalf("register a/b: %v", err)
		}
		if _, err := reg.Spec(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("spec nope: %v", err)
		}
		if _, err := reg.Status(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("status nope: %v", err)
		}
		if err := reg.SetState(ctx, "nope", Pause); !errors.Is(err, ErrNotFound) {
			t.Fatalf("pause nope: %v", err)
		}
	})
	t.Run("list", func(t *testing.T) {
		all, err := reg.List(ctx)
		if err != nil || len(all) != 2 || all[0].ID != "bad-one" || all[1].ID != "spring" {
			t.Fatalf("list %+v %v", all, err)
		}
	})
}

func TestTransitions(t *testing.T) {
	tests := []struct {
		from    State
		action  Action
		started bool
		want    State
		ok      bool
	}{
		{StatePending, Pause, false, StatePaused, true},
		{StateRunning, Pause, true, StatePaused, true},
		{StatePaused, Pause, true, StatePaused, false},
		{StatePaused, Resume, true, StateRunning, true},
		{StatePaused, Resume, false, StatePending, true},
		{StateRunning, Resume, true, StateRunning, false},
		{StatePending, Cancel, false, StateCancelled, true},
		{StateRunning, Cancel, true, StateCancelled, true},
		{StatePaused, Cancel, true, StateCancelled, true},
		{StateDone, Cancel, true, StateDone, false},
		{StateCancelled, Resume, true, StateCancelled, false},
		{StateRejected, Pause, false, StateRejected, false},
		{StateExpired, Cancel, true, StateExpired, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.from)+"/"+string(tt.action), func(t *testing.T) {
			got, ok := transition(tt.from, tt.action, tt.started)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("got %s %v, want %s %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero value", Config{}, true},
		{"short ttl", Config{LeaseTTL: time.Second}, false},
		{"margin too wide", Config{LeaseTTL: 2 * time.Second, SafetyMargin: time.Second}, false},
		{"bad member id", Config{MemberID: "a b"}, false},
		{"capacity too big", Config{Capacity: 1000}, false},
		{"negative capacity", Config{Capacity: -1}, false},
		{"slash prefix", Config{Prefix: "/"}, false},
		{"negative archive delay", Config{ArchiveAfter: -time.Second}, false},
		{"negative retention", Config{Retention: -time.Hour}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v is not ErrInvalidConfig", err)
			}
		})
	}
	d := Config{LeaseTTL: 2500 * time.Millisecond}.withDefaults()
	if d.LeaseTTL != 3*time.Second || d.SafetyMargin != 600*time.Millisecond || d.Prefix != DefaultPrefix ||
		d.ArchiveAfter != DefaultArchiveAfter || d.Retention != DefaultRetention {
		t.Fatalf("defaults: %+v", d)
	}
}

func TestKeysParse(t *testing.T) {
	k := keys{prefix: "/herald"}
	tests := []struct {
		key       string
		kind      keyKind
		broadcast string
		name      string
	}{
		{k.member("w1"), keyMember, "", "w1"},
		{k.spec("b.1"), keySpec, "b.1", ""},
		{k.state("b"), keyState, "b", ""},
		{k.unit("b", "u0.1.2"), keyUnit, "b", "u0.1.2"},
		{k.claim("b", "u3"), keyClaim, "b", "u3"},
		{"/herald2/members/x", keyOther, "", ""},
		{k.archive("b"), keyOther, "", ""},
		{"/herald/broadcasts/b/units/", keyOther, "", ""},
		{"/herald/broadcasts/b/other/x", keyOther, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			kind, b, name := k.parse(tt.key)
			if kind != tt.kind || b != tt.broadcast || name != tt.name {
				t.Fatalf("parse = %v %q %q", kind, b, name)
			}
		})
	}
}

// The start of a broadcast fits one etcd transaction, in ops and in bytes,
// whatever the fleet size; the figures show where the cap bites.
func TestStartFitsOneTransaction(t *testing.T) {
	k := keys{prefix: DefaultPrefix}
	for _, n := range []int{1, 3, 10, 25, 40, 63, 100} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			live := make([]sharding.Member, n)
			for i := range live {
				live[i] = sharding.Member{ID: fmt.Sprintf("worker-%03d", i), Weight: 1}
			}
			ops, inPlan, err := startOps(k, "b", `{"state":"running"}`, live, nil, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			size := 0
			for _, op := range ops {
				size += len(op.KeyBytes()) + len(op.ValueBytes())
			}
			t.Logf("%3d members: %3d in the plan, %3d ops, %7d bytes (%.1f KB per unit)",
				n, inPlan, len(ops), size, float64(size)/float64(inPlan)/1024)
			if len(ops) > maxTxnOps || size > maxTxnBytes {
				t.Fatalf("%d ops, %d bytes: over etcd's limits", len(ops), size)
			}
			if n <= (maxTxnOps-1)/2 && inPlan != n {
				t.Fatalf("only %d of %d members in the plan", inPlan, n)
			}
		})
	}
}

// A member reads and watches [viewStart, viewEnd): the broadcasts and the
// members, never the archive.
func TestViewRangeLeavesOutTheArchive(t *testing.T) {
	k := keys{prefix: "/herald"}
	in := func(key string) bool { return key >= k.viewStart() && key < k.viewEnd() }
	for _, key := range []string{k.spec("b"), k.state("zz"), k.unit("b", "u1"), k.claim("b", "u1"), k.member("w1"), k.member("~")} {
		if !in(key) {
			t.Errorf("%s is outside the view", key)
		}
	}
	for _, key := range []string{k.archive("b"), k.archive("~"), "/herald2/broadcasts/b/state", "/herald/"} {
		if in(key) {
			t.Errorf("%s is in the view", key)
		}
	}
	if a := k.archive("~~~"); a >= k.archivesEnd() || a < k.archives() {
		t.Errorf("%s is outside the archive's range", a)
	}
}
