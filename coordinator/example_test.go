package coordinator_test

import (
	"context"
	"errors"
	"log/slog"
	"os/signal"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/coordinator"
)

// A fleet member: Run joins the fleet and claims slots until SIGTERM, then
// hands every slot back and leaves; the worker loop streams each claim
// from where it resumes, checkpoints, and finishes or hands back when
// asked. (Herald's worker reads one stream per broadcast for all the
// slots it holds, and writes their checkpoints together with Write.)
func ExampleCoordinator() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://127.0.0.1:2379"}, DialTimeout: 5 * time.Second})
	if err != nil {
		return
	}
	defer cli.Close()
	c, err := coordinator.New(coordinator.Config{MemberID: "worker-1"}, cli, slog.Default(), nil)
	if err != nil {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var units sync.WaitGroup
		for cl := range c.Claims() { // closed when Run returns
			units.Add(1)
			go func() {
				defer units.Done()
				work(cl)
			}()
		}
		units.Wait()
	}()
	_ = c.Run(ctx) // returns nil once ctx ends and the leave is done
	wg.Wait()
}

// work streams one claimed slot. The real worker reads the audience from
// cl.Progress().ResumeAt(), sends the records whose position is in the
// slot (sharding.SlotOf(position, cl.Slots()) == cl.Slot()) and that are
// at or after the cursor or pending behind it, and keeps exact progress;
// this sketch shows only the protocol.
func work(cl *coordinator.Claim) {
	p := cl.Progress() // cumulative counters; cursor and pending = what is left
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	write := func(f func(context.Context, coordinator.Progress) error) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return f(ctx, p)
	}
	for more := true; more; {
		select {
		case <-cl.Context().Done():
			return // lost, fenced or cancelled: stop sending at once
		case <-cl.HandoffRequested():
			// Stop reading, let in-flight sends finish, then hand back at
			// the exact cursor: nothing is sent twice.
			_ = write(cl.Handoff)
			return
		case <-tick.C:
			if err := write(cl.Checkpoint); errors.Is(err, coordinator.ErrNotOwner) {
				return // someone else owns this work now
			}
		default:
			// Send the next record of the unit, advance p.Cursor and
			// p.Counters; set more = false at the end of the stream.
			more = false
		}
	}
	_ = write(cl.Finish)
}
