package worker

import (
	"time"

	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/delivery"
)

// batchLinger is the longest a record waits in a part-filled batch while
// the reader goes on reading (records of other workers' slots, say). A
// batch also goes as soon as it is full, and whenever the reader is about
// to wait for anything, so a record never waits on a batch that cannot
// fill.
const batchLinger = 5 * time.Millisecond

// When a broadcast's endpoint takes batches (endpoint.batch_size above 1),
// its reader gathers the records it dispatches into a batch (queue) and
// hands the batch to a sender as one job once it is full, has lingered
// batchLinger, or the reader is about to wait (flush). A batch takes one
// send slot: max_in_flight bounds requests, and the broadcast's window
// bounds records. The sender renders every record, sends them together
// (delivery.Sender.SendBatch) and finishes each one on its own outcome,
// exactly as a record sent alone is finished: the cursor and checkpoint
// rules do not know batches exist.

// queue adds j to the batch being gathered, waiting first for the
// broadcast's rate (which counts messages, not requests); the batch goes
// to a sender once full.
func (b *broadcastRun) queue(j job) {
	if b.limiter != nil {
		if len(b.batch) > 0 && b.limiter.Tokens() < 1 {
			b.flush() // not while the reader waits for the rate
		}
		if err := b.limiter.Wait(j.slot.sendCtx); err != nil {
			b.t.finish(j.idx, pending)
			return
		}
	}
	if len(b.batch) == 0 {
		b.batchSince = time.Now()
	}
	b.batch = append(b.batch, j)
	if len(b.batch) >= b.batchSize {
		b.flush()
	}
}

// lingered sends a part-filled batch that has waited batchLinger.
func (b *broadcastRun) lingered() {
	if len(b.batch) > 0 && time.Since(b.batchSince) >= batchLinger {
		b.flush()
	}
}

// flush hands the batch gathered so far to a sender, once a send slot is
// free. Only the reader calls it. If the run stops first, the records stay
// unfinished, as records never sent do.
func (b *broadcastRun) flush() {
	if len(b.batch) == 0 {
		return
	}
	batch := b.batch
	select {
	case b.batch = <-b.spare:
	default:
		b.batch = make([]job, 0, b.batchSize)
	}
	if err := b.sends.acquire(b.runCtx); err != nil {
		for _, j := range batch {
			b.t.finish(j.idx, pending)
		}
		return
	}
	b.sending.Add(1)
	b.deps.senders.run(job{b: b, batch: batch})
}

// dropBatch leaves the records of a batch never handed over unfinished,
// when the reader ends.
func (b *broadcastRun) dropBatch() {
	for _, j := range b.batch {
		b.t.finish(j.idx, pending)
	}
	b.batch = b.batch[:0]
}

// sendBatch is what a sender does with a batch: render each record, send
// them in one request (more if the endpoint asks for some again), and
// finish each on its own outcome. It gives the batch's send slot back at
// the end.
func (b *broadcastRun) sendBatch(jobs []job, sc *scratch) {
	defer b.sending.Done()
	defer b.sends.release()
	defer b.recycle(jobs)
	sc.bodies, sc.ends, sc.sent = sc.bodies[:0], sc.ends[:0], sc.sent[:0]
	keys := make([]string, 0, len(jobs))
	for _, j := range jobs {
		switch {
		case j.slot.sendCtx.Err() != nil:
			b.t.finish(j.idx, pending) // the slot is gone; its next holder sends this record
			continue
		case b.expired():
			b.deps.metrics.outcome(expired)
			b.t.finish(j.idx, expired)
			continue
		}
		k, letter := b.render(j, &sc.msg, &sc.key)
		if letter != nil {
			b.deadLetter(j, letter)
			continue
		}
		sc.bodies = templates.AppendBody(sc.bodies, templates.Delivery{
			BroadcastID: b.id, SubscriberID: j.id, Key: k, Locale: sc.msg.Locale, Message: &sc.msg,
		})
		sc.ends = append(sc.ends, len(sc.bodies))
		keys = append(keys, k)
		sc.sent = append(sc.sent, j)
	}
	if len(sc.sent) == 0 {
		return
	}
	// The bodies are sliced only now: the buffer may have moved as it grew.
	sc.items = sc.items[:0]
	start := 0
	for i, end := range sc.ends {
		sc.items = append(sc.items, delivery.Item{Key: keys[i], Body: sc.bodies[start:end:end]})
		start = end
	}
	sc.results = append(sc.results[:0], make([]delivery.Result, len(sc.items))...)
	sent := sc.sent
	live := func(i int) bool { return sent[i].slot.sendCtx.Err() == nil }
	b.send.SendBatch(b.runCtx, b.spec.Endpoint.URL, sc.items, live, sc.results)
	for i, j := range sent {
		out, letter := b.settle(j.slot.sendCtx, j, keys[i], sc.results[i])
		b.finishSent(j, out, letter)
	}
	// Nothing of the batch is kept past here but the keys (in dead
	// letters): the next batch may write over the bodies, and the reader
	// gather another in jobs.
	clear(sc.items)
	clear(sc.sent)
	if cap(sc.bodies) > maxKeptBodies {
		sc.bodies = nil
	}
}

// spareBatches is how many used batches a broadcast run keeps for its
// reader.
const spareBatches = 8

// recycle gives a batch the sender is done with back to the reader.
func (b *broadcastRun) recycle(jobs []job) {
	clear(jobs)
	select {
	case b.spare <- jobs[:0]:
	default:
	}
}
