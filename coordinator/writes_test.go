package coordinator

import (
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/sharding"
)

// etcd writes per member are bounded by the checkpoint rate, whatever the
// message rate: the same broadcast shape driven at two speeds ten times
// apart writes about as often per second. (The test driver writes each
// slot on its own; the worker writes all its slots of a broadcast in one
// transaction per tick, see worker's tests.)
func TestEtcdWritesDoNotGrowWithMessageRate(t *testing.T) {
	const (
		members  = 2
		interval = 100 * time.Millisecond
		duration = 2 * time.Second
	)
	type result struct {
		msgsPerSec, writesPerSec float64
	}
	results := map[string]result{}
	for _, speed := range []struct {
		name string
		rate float64 // records per second per slot
	}{{"slow", 250}, {"fast", 2500}} {
		t.Run(speed.name, func(t *testing.T) {
			c := newCluster(t)
			n := int(speed.rate * members * sharding.SlotsPerMember * duration.Seconds())
			s, l := newStream(n), newLedger(n)
			dc := driverConfig{stream: s, ledger: l, interval: interval, rate: speed.rate}
			for i := range members {
				c.start(fmt.Sprintf("w%d", i), memberOpts{}, dc)
			}
			eventually(t, 10*time.Second, "live members", func() bool {
				return c.members["w0"].coord.LiveMembers() == members
			})
			from := c.revision()
			start := time.Now()
			c.register("wr")
			c.waitState("wr", StateDone, 60*time.Second)
			elapsed := time.Since(start)

			// A member's writes: the transactions that claimed its slots
			// or wrote their progress (checkpoints, finish), counted by
			// revision.
			txns := map[string]map[int64]bool{}
			note := func(m string, rev int64) {
				if txns[m] == nil {
					txns[m] = map[int64]bool{}
				}
				txns[m][rev] = true
			}
			for _, ev := range c.readHistory() {
				if ev.Kv.ModRevision <= from || ev.Type != clientv3.EventTypePut {
					continue
				}
				kind, _, _, _ := keys{c.prefix}.parse(string(ev.Kv.Key))
				switch kind {
				case keyClaim:
					note(string(ev.Kv.Value), ev.Kv.ModRevision)
				case keyProgress:
					rec, err := decodeProgress(ev.Kv.Value)
					if err != nil {
						t.Fatal(err)
					}
					note(rec.Owner, ev.Kv.ModRevision)
				}
			}
			writes := map[string]int{}
			for m, revs := range txns {
				writes[m] = len(revs)
			}
			// Eight slots each: at most one checkpoint per slot per
			// interval, plus the finishes, plus the claims.
			bound := sharding.SlotsPerMember*(int(elapsed/interval)+2) + 1
			var most int
			for m, w := range writes {
				most = max(most, w)
				if w > bound {
					t.Errorf("%s wrote %d times in %v; eight slots at one checkpoint per %v allow %d", m, w, elapsed, interval, bound)
				}
			}
			r := result{msgsPerSec: float64(n) / elapsed.Seconds(), writesPerSec: float64(most) / elapsed.Seconds()}
			results[speed.name] = r
			t.Logf("%s: %.0f msgs/s over %v; etcd writes per member %v, the busiest %.1f/s (bound %.1f/s)",
				speed.name, r.msgsPerSec, elapsed.Round(time.Millisecond), writes, r.writesPerSec,
				float64(bound)/elapsed.Seconds())
		})
	}
	slow, fast := results["slow"], results["fast"]
	if slow.writesPerSec == 0 || fast.writesPerSec == 0 {
		return
	}
	t.Logf("message rate x%.1f, etcd write rate per member x%.2f", fast.msgsPerSec/slow.msgsPerSec,
		fast.writesPerSec/slow.writesPerSec)
	if fast.writesPerSec > 1.5*slow.writesPerSec {
		t.Errorf("etcd writes grew with the message rate: %.1f/s at %.0f msgs/s, %.1f/s at %.0f msgs/s",
			slow.writesPerSec, slow.msgsPerSec, fast.writesPerSec, fast.msgsPerSec)
	}
}
