package worker

import (
	"sync"
	"time"

	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/delivery"
)

// senderIdle is how long a sender goroutine waits for a record before it
// ends.
const senderIdle = time.Second

// senders deliver the records of every broadcast on a worker, on at most
// max goroutines: one per send slot (Config.MaxInFlight). A broadcast's
// reader takes a send slot before it hands a record over (run), and the
// sender gives the slot back once the record is finished, so whenever a
// reader holds a slot a sender is free, or about to be. Senders start when
// a record finds none free and end after senderIdle without one: a worker
// with nothing to send keeps none, and however many broadcasts it runs it
// never keeps more than max.
//
// Worker.Run creates them and closes them once every broadcast run has
// stopped.
type senders struct {
	do   func(job, *scratch) // delivers one record
	work chan job
	quit chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	n     int // goroutines running; guarded by mu
	max   int
	ended chan struct{} // guarded by mu; closed, and replaced, when one ends
}

// newSenders returns senders that deliver each record with its
// broadcast's sendJob.
func newSenders(max int) *senders {
	return newSendersDoing(max, func(j job, sc *scratch) { j.b.sendJob(j, sc) })
}

func newSendersDoing(max int, do func(job, *scratch)) *senders {
	return &senders{do: do, work: make(chan job), quit: make(chan struct{}), max: max, ended: make(chan struct{})}
}

// run hands j to a free sender, starting one if none is free and fewer
// than max run. The caller holds a send slot for j.
func (p *senders) run(j job) {
	for {
		select {
		case p.work <- j:
			return
		default:
		}
		p.mu.Lock()
		if p.n < p.max {
			p.n++
			p.wg.Add(1)
			p.mu.Unlock()
			go p.loop(j)
			return
		}
		ended := p.ended
		p.mu.Unlock()
		// Every sender is busy; one is about to finish (the slot the caller
		// holds was given back by one), or to end, which makes room to
		// start another.
		select {
		case p.work <- j:
			return
		case <-ended:
		}
	}
}

// loop is one sender: it delivers j, then whatever records come next,
// until none comes for senderIdle or the senders are closed. Its scratch
// space (the rendered message, the key) is reused record after record.
func (p *senders) loop(j job) {
	defer p.wg.Done()
	var sc scratch
	idle := time.NewTimer(senderIdle)
	defer idle.Stop()
	for {
		p.do(j, &sc)
		idle.Reset(senderIdle)
		select {
		case j = <-p.work:
			continue
		case <-idle.C:
		case <-p.quit:
		}
		p.mu.Lock()
		p.n--
		close(p.ended)
		p.ended = make(chan struct{})
		p.mu.Unlock()
		return
	}
}

// close ends the senders, once each has finished its record, and waits for
// them. No broadcast run may hand records over any more.
func (p *senders) close() {
	close(p.quit)
	p.wg.Wait()
}

// scratch is a sender's reusable space for one record, and for the
// bodies and results of one batch: a batch's items are rendered into one
// buffer, which the next batch of the same sender reuses once the request
// is answered.
type scratch struct {
	msg     templates.Message
	key     []byte
	bodies  []byte
	ends    []int
	items   []delivery.Item
	sent    []job
	results []delivery.Result
}

// maxKeptBodies is the most body buffer a sender keeps between batches:
// a batch of 1,000 large messages does not leave a megabyte with every
// sender.
const maxKeptBodies = 256 << 10
