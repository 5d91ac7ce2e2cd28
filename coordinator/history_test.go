package coordinator

import (
	"cmp"
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
// on overlapping arcs, cursors never moving backwards within a unit, and at
// the end every position of the hash space in exactly one done unit with
// the counters conserved. Set HERALD_SEED to replay a run.
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
	dc := driverConfig{stream: s, ledger: l, every: 300, rate: 1500}
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
			m.proxy.sever()
			time.Sleep(ttl + time.Duration(rng.IntN(1500))*time.Millisecond)
			m.proxy.restore()
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
		rev    int64
	}
	arcs := map[string]sharding.Arcs{}        // broadcast/unit -> arcs
	claims := map[string]map[string]claimAt{} // broadcast -> unit -> holder
	records := map[string]unitRecord{}        // broadcast/unit -> latest record
	cursors := map[string]sharding.Cursor{}   // broadcast/unit -> latest cursor
	broadcasts := map[string]bool{}
	checkpoints, maxClaims := 0, 0
	for _, ev := range events {
		kind, b, name := k.parse(string(ev.Kv.Key))
		id := b + "/" + name
		del := ev.Type == clientv3.EventTypeDelete
		switch kind {
		case keyArcs:
			u, err := decodeArcs(ev.Kv.Value)
			if err != nil {
				t.Fatal(err)
			}
			arcs[id] = u.Arcs
		case keyUnit:
			var rec unitRecord
			if err := jsonUnmarshal(ev.Kv.Value, &rec); err != nil {
				t.Fatal(err)
			}
			cur, err := rec.cursor()
			if err != nil {
				t.Fatal(err)
			}
			if prev, ok := cursors[id]; ok && cur.Seq < prev.Seq {
				t.Fatalf("rev %d: unit %s cursor moved back from %v to %v", ev.Kv.ModRevision, id, prev, cur)
			}
			if _, ok := records[id]; ok {
				checkpoints++
			}
			cursors[id], records[id] = cur, rec
			broadcasts[b] = true
		case keyClaim:
			if claims[b] == nil {
				claims[b] = map[string]claimAt{}
			}
			if del {
				delete(claims[b], name)
				continue
			}
			mine, ok := arcs[id]
			if !ok {
				t.Fatalf("rev %d: claim on %s, a unit without arcs", ev.Kv.ModRevision, id)
			}
			for other, holder := range claims[b] {
				if overlap := arcs[b+"/"+other].Intersect(mine); !overlap.IsEmpty() {
					t.Fatalf("rev %d: claim on %s by %s overlaps the live claim on %s by %s (taken at rev %d)",
						ev.Kv.ModRevision, id, ev.Kv.Value, other, holder.member, holder.rev)
				}
			}
			claims[b][name] = claimAt{member: string(ev.Kv.Value), rev: ev.Kv.ModRevision}
			live := 0
			for _, cs := range claims {
				live += len(cs)
			}
			maxClaims = max(maxClaims, live)
		}
	}
	t.Logf("history: %d events, %d unit records, %d checkpoints, at most %d live claims at once",
		len(events), len(records), checkpoints, maxClaims)

	for b := range broadcasts {
		var done []sharding.Range
		var sum Counters
		for id, rec := range records {
			if id[:len(b)+1] != b+"/" {
				continue
			}
			sum = sum.Add(rec.Counters)
			switch rec.Status {
			case unitSplit:
			case unitDone:
				done = append(done, arcs[id]...)
			default:
				t.Fatalf("unit %s ended %s", id, rec.Status)
			}
		}
		slices.SortFunc(done, func(x, y sharding.Range) int { return cmp.Compare(x.Lo, y.Lo) })
		for i := 1; i < len(done); i++ {
			if done[i].Lo <= done[i-1].Hi {
				t.Fatalf("%s: done units overlap at %x", b, done[i].Lo)
			}
		}
		if !sharding.Normalize(done...).Equal(sharding.Full()) {
			t.Fatalf("%s: done units do not cover the hash space", b)
		}
		if sum.Scanned != int64(n) || sum.Delivered != int64(n) {
			t.Fatalf("%s: counters %+v, want %d scanned and delivered", b, sum, n)
		}
	}
}
