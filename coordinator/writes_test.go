package coordinator

import (
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcd writes per member are bounded by units held times the checkpoint
// rate, whatever the message rate: the same broadcast shape driven at two
// speeds ten times apart writes about as often per second.
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
		rate float64 // records per second per unit
	}{{"slow", 2000}, {"fast", 20000}} {
		t.Run(speed.name, func(t *testing.T) {
			c := newCluster(t)
			n := int(speed.rate * members * duration.Seconds())
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

			// A member's writes: its claims and the unit records it wrote
			// as owner (checkpoints, finish). Each is one txn.
			writes := map[string]int{}
			for _, ev := range c.readHistory() {
				if ev.Kv.ModRevision <= from || ev.Type != clientv3.EventTypePut {
					continue
				}
				kind, _, _ := keys{c.prefix}.parse(string(ev.Kv.Key))
				switch kind {
				case keyClaim:
					writes[string(ev.Kv.Value)]++
				case keyUnit:
					var rec unitRecord
					if err := jsonUnmarshal(ev.Kv.Value, &rec); err != nil {
						t.Fatal(err)
					}
					if rec.Owner != "" {
						writes[rec.Owner]++
					}
				}
			}
			// One unit each: at most one checkpoint per interval, plus the
			// claim and the finish.
			bound := int(elapsed/interval) + 2
			var most int
			for m, w := range writes {
				most = max(most, w)
				if w > bound {
					t.Errorf("%s wrote %d times in %v; one unit at one checkpoint per %v allows %d", m, w, elapsed, interval, bound)
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
