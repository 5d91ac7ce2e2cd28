package coordinator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/sharding"
)

// A randomized run with joins, kills, partitions and graceful leaves; then
// the whole etcd history is read back and checked: never two live claims
// on one slot, every progress write made under the slot's live claim by
// its holder (fencing), cursors never moving backwards within a slot, and
// at the end every slot done exactly once with the counters conserved.
// Set HERALD_SEED to replay a run.
func TestHistoryOfRandomizedRun(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("HERALD_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d (HERALD_SEED=%d replays this run)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	c := newCluster(t)
	const (
		ttl = 2 * time.Second
		n   = 80000
	)
	s, l := newStream(n), newLedger(n)
	dc := driverConfig{stream: s, ledger: l, every: 100, rate: 200, lag: 50}
	var live []*member
	next := 0
	startOne := func() {
		m := c.start(fmt.Sprintf("m%d", next), memberOpts{ttl: ttl, proxied: true}, dc)
		next++
		live = append(live, m)
	}
	for range 4 {
		startOne()
	}
	eventually(t, 10*time.Second, "four live members", func() bool { return live[0].coord.LiveMembers() == 4 })
	c.register("h")

	reg := NewRegistry(c.admin, c.prefix)
	running := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := reg.Status(ctx, "h")
		return err != nil || !st.State.Terminal()
	}
	// Every kind of event at least once, in random order, then more at
	// random while the broadcast runs.
	const (
		opJoin = iota
		opKill
		opPartition
		opLeave
	)
	must := rng.Perm(4)
	var log []string
	for end := time.Now().Add(10 * time.Second); (len(must) > 0 || time.Now().Before(end)) && running(); {
		time.Sleep(time.Duration(500+rng.IntN(1000)) * time.Millisecond)
		op := rng.IntN(4)
		if len(must) > 0 {
			op, must = must[0], must[1:]
		}
		pick := func() (*member, int) { i := rng.IntN(len(live)); return live[i], i }
		switch {
		case op == opJoin && len(live) < 6:
			startOne()
			log = append(log, "join "+live[len(live)-1].id)
		case op == opKill && len(live) > 2:
			m, i := pick()
			m.kill()
			live = slices.Delete(live, i, i+1)
			log = append(log, "kill "+m.id)
		case op == opPartition && len(live) >= 2:
			m, _ := pick()
			m.proxy.Blackhole()
			time.Sleep(ttl + time.Duration(rng.IntN(1500))*time.Millisecond)
			m.proxy.Restore()
			log = append(log, "partition "+m.id)
		case op == opLeave && len(live) > 2:
			m, i := pick()
			m.stop()
			live = slices.Delete(live, i, i+1)
			log = append(log, "leave "+m.id)
		}
	}
	t.Logf("events: %v", log)
	c.waitState("h", StateDone, 90*time.Second)

	lost, dup := l.check()
	if len(lost) > 0 {
		t.Fatalf("%d records lost", len(lost))
	}
	t.Logf("re-sent %d of %d records", len(dup), n)
	checkHistory(t, c.readHistory(), c.prefix, n)
}

// readHistory returns every event under the prefix from revision 1 on.
func (c *cluster) readHistory() []*clientv3.Event {
	c.t.Helper()
	last := c.revision()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*clientv3.Event
	for resp := range c.admin.Watch(ctx, keys{c.prefix}.root(), clientv3.WithPrefix(), clientv3.WithRev(1)) {
		if err := resp.Err(); err != nil {
			c.t.Fatal(err)
		}
		out = append(out, resp.Events...)
		if len(out) > 0 && out[len(out)-1].Kv.ModRevision >= last {
			return out
		}
	}
	c.t.Fatal("history watch ended early")
	return nil
}

// checkHistory checks the invariants over a history of one or more
// broadcasts whose audiences have n records each.
func checkHistory(t *testing.T, events []*clientv3.Event, prefix string, n int) {
	t.Helper()
	k := keys{prefix: prefix}
	type claimAt struct {
		member string
		token  int64
	}
	type slotKey struct {
		b    string
		slot int
	}
	slots := map[string]int{}                // broadcast -> slot count
	claims := map[slotKey]claimAt{}          // live claims
	done := map[slotKey]bool{}               // slots marked done
	records := map[slotKey]progressRecord{}  // latest progress
	cursors := map[slotKey]sharding.Cursor{} // latest cursor
	checkpoints, maxClaims := 0, 0
	for _, ev := range events {
		kind, b, _, slot := k.parse(string(ev.Kv.Key))
		key := slotKey{b, slot}
		del := ev.Type == clientv3.EventTypeDelete
		rev := ev.Kv.ModRevision
		switch kind {
		case keyState:
			var st stateRecord
			if err := jsonUnmarshal(ev.Kv.Value, &st); err != nil {
				t.Fatal(err)
			}
			if prev, ok := slots[b]; ok && prev != st.Slots {
				t.Fatalf("rev %d: %s changed its slot count from %d to %d", rev, b, prev, st.Slots)
			}
			if st.Slots > 0 {
				slots[b] = st.Slots
			}
		case keyClaim:
			if del {
				delete(claims, key)
				continue
			}
			if slot >= slots[b] {
				t.Fatalf("rev %d: claim on slot %d of %s, which has %d", rev, slot, b, slots[b])
			}
			if holder, ok := claims[key]; ok {
				t.Fatalf("rev %d: claim on %s/%d by %s while %s holds it (token %d)", rev, b, slot, ev.Kv.Value, holder.member, holder.token)
			}
			if done[key] {
				t.Fatalf("rev %d: claim on %s/%d, which is done", rev, b, slot)
			}
			claims[key] = claimAt{member: string(ev.Kv.Value), token: ev.Kv.CreateRevision}
			maxClaims = max(maxClaims, len(claims))
		case keyProgress:
			rec, err := decodeProgress(ev.Kv.Value)
			if err != nil {
				t.Fatal(err)
			}
			holder, ok := claims[key]
			if !ok || holder.token != rec.Token || holder.member != rec.Owner {
				t.Fatalf("rev %d: progress of %s/%d written by %s under token %d; the live claim is %+v (live: %v)",
					rev, b, slot, rec.Owner, rec.Token, holder, ok)
			}
			cur, err := rec.cursor()
			if err != nil {
				t.Fatal(err)
			}
			if prev, ok := cursors[key]; ok && cur.Seq < prev.Seq {
				t.Fatalf("rev %d: slot %s/%d cursor moved back from %v to %v", rev, b, slot, prev, cur)
			}
			if _, ok := records[key]; ok {
				checkpoints++
			}
			cursors[key], records[key] = cur, rec
		case keyDone:
			if del {
				t.Fatalf("rev %d: done marker of %s/%d deleted", rev, b, slot)
			}
			if done[key] {
				t.Fatalf("rev %d: %s/%d done twice", rev, b, slot)
			}
			if _, ok := claims[key]; !ok || !records[key].Done {
				t.Fatalf("rev %d: %s/%d marked done without its claim and final progress", rev, b, slot)
			}
			done[key] = true
		}
	}
	t.Logf("history: %d events, %d checkpoints, at most %d live claims at once", len(events), checkpoints, maxClaims)

	for b, count := range slots {
		var sum Counters
		for s := range count {
			key := slotKey{b, s}
			if !done[key] {
				t.Fatalf("%s: slot %d never done", b, s)
			}
			sum = sum.Add(records[key].Counters)
		}
		if sum.Scanned != int64(n) || sum.Delivered != int64(n) {
			t.Fatalf("%s: counters %+v, want %d scanned and delivered", b, sum, n)
		}
	}
}
