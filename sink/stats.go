package sink

import (
	"sync"
	"sync/atomic"
	"time"
)

// Stats is what GET /stats serves. Every delivery is counted in Requests
// and in exactly one of Delivered, Duplicates, BadRequests, Unauthorized,
// InvalidBodies, Outage, Refused, Injected429, Injected500, Injected503 or
// Abandoned, so they add up to Requests once no request is in flight. A
// delivery is a request of its own or an item of a batch; a batch that
// cannot be read as one (a bad signature, not a JSON array of objects)
// counts as one delivery.
type Stats struct {
	// Since is when counting started: the sink's start or the last reset.
	Since time.Time `json:"since"`
	// Requests counts every delivery received (POST to any path but
	// /reset, or an item of such a POST's batch), whatever the answer.
	Requests int64 `json:"requests"`
	// Batches counts the batch requests among them: POSTs whose body is a
	// JSON array of deliveries, answered per item.
	Batches int64 `json:"batches"`
	// Delivered counts distinct idempotency keys accepted (200).
	Delivered int64 `json:"delivered"`
	// Duplicates counts accepted requests whose key was already
	// delivered (409).
	Duplicates int64 `json:"duplicates"`
	// BadRequests counts requests without an Idempotency-Key, with an
	// unreadable body or with a body over the size limit (400, 413).
	BadRequests int64 `json:"bad_requests"`
	// Unauthorized counts, when the sink verifies signatures, requests
	// whose Herald-Signature is missing, malformed, stale or forged (401).
	Unauthorized int64 `json:"unauthorized"`
	// HeadersTooLarge counts requests refused (431) for headers over
	// Config.MaxHeaderBytes. net/http refuses them before they are read,
	// so they are not in Requests.
	HeadersTooLarge int64 `json:"headers_too_large"`
	// InvalidBodies counts, in strict mode only, bodies that are not JSON
	// and keys that are not printable ASCII of at most 200 characters
	// (400).
	InvalidBodies int64 `json:"invalid_bodies"`
	// Outage counts requests answered Config.OutageStatus because the
	// outage window covered them; OutageFrom and OutageUntil bound that
	// window once its clock has started (absent without an outage).
	Outage      int64     `json:"outage"`
	OutageFrom  time.Time `json:"outage_from,omitzero"`
	OutageUntil time.Time `json:"outage_until,omitzero"`
	// Refused counts requests refused (400) because their key is among
	// those Config.Refuse400 selects.
	Refused int64 `json:"refused"`
	// Injected429, Injected500 and Injected503 count injected failures.
	Injected429 int64 `json:"injected_429"`
	Injected500 int64 `json:"injected_500"`
	Injected503 int64 `json:"injected_503"`
	// Abandoned counts requests whose client went away during the
	// injected latency; they are not delivered.
	Abandoned int64 `json:"abandoned"`
	// FirstDeliveryAt and LastDeliveryAt bound the first deliveries of
	// keys; absent before any.
	FirstDeliveryAt time.Time `json:"first_delivery_at,omitzero"`
	LastDeliveryAt  time.Time `json:"last_delivery_at,omitzero"`
	// PerSecond counts first deliveries in each second, the first entry
	// being the second that starts at SeriesStart. Leading and trailing
	// empty seconds are left out; seconds beyond a week after Since are
	// not charted (still counted in Delivered).
	PerSecond   []int64   `json:"per_second"`
	SeriesStart time.Time `json:"series_start,omitzero"`
	// Broadcasts breaks the counts down by the broadcast_id read from the
	// body; requests without a readable one are under "".
	Broadcasts map[string]BroadcastStats `json:"broadcasts"`
}

// BroadcastStats are the counts of one broadcast.
type BroadcastStats struct {
	// Requests counts its well-formed delivery requests (a key, a
	// readable body, valid in strict mode), whatever the answer.
	Requests int64 `json:"requests"`
	// Delivered counts its distinct keys accepted.
	Delivered int64 `json:"delivered"`
	// Duplicates counts its accepted requests for keys already delivered.
	Duplicates int64 `json:"duplicates"`
	// Refused counts its requests refused for their key (Config.Refuse400).
	Refused int64 `json:"refused"`
}

// counters is one counting period, from start or a reset. A reset swaps in
// a fresh one, so requests in flight finish counting into the old one and
// never straddle the two.
type counters struct {
	since time.Time
	keys  keySet

	requests, batches, delivered, duplicates, badRequests, invalidBodies atomic.Int64
	unauthorized, headersTooLarge, outage, refused                       atomic.Int64
	injected429, injected500, injected503, abandoned                     atomic.Int64
	firstNanos, lastNanos                                                atomic.Int64 // since `since`; 0 = none yet
	firstRequestNanos                                                    atomic.Int64 // the outage's clock; 0 = not started

	series   series
	refusals refusals // Config.Retry's

	bmu        sync.RWMutex
	broadcasts map[string]*broadcastCounters
}

type broadcastCounters struct {
	requests, delivered, duplicates, refused atomic.Int64
}

func newCounters(now time.Time) *counters {
	c := &counters{since: now, broadcasts: make(map[string]*broadcastCounters)}
	c.series.start = now
	return c
}

// broadcast returns the counters of broadcast id, creating them. Looking
// up with string(id) does not allocate; only a new broadcast does.
func (c *counters) broadcast(id []byte) *broadcastCounters {
	c.bmu.RLock()
	b := c.broadcasts[string(id)]
	c.bmu.RUnlock()
	if b != nil {
		return b
	}
	c.bmu.Lock()
	defer c.bmu.Unlock()
	if b = c.broadcasts[string(id)]; b == nil {
		b = new(broadcastCounters)
		c.broadcasts[string(id)] = b
	}
	return b
}

// firstDelivery records a key delivered for the first time at now.
func (c *counters) firstDelivery(now time.Time) {
	c.delivered.Add(1)
	// Offset by one so that zero keeps meaning "none yet".
	n := now.Sub(c.since).Nanoseconds() + 1
	c.firstNanos.CompareAndSwap(0, n)
	for {
		last := c.lastNanos.Load()
		if n <= last || c.lastNanos.CompareAndSwap(last, n) {
			break
		}
	}
	c.series.add(now)
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Since:           c.since,
		Requests:        c.requests.Load(),
		Batches:         c.batches.Load(),
		Delivered:       c.delivered.Load(),
		Duplicates:      c.duplicates.Load(),
		BadRequests:     c.badRequests.Load(),
		Unauthorized:    c.unauthorized.Load(),
		HeadersTooLarge: c.headersTooLarge.Load(),
		InvalidBodies:   c.invalidBodies.Load(),
		Outage:          c.outage.Load(),
		Refused:         c.refused.Load(),
		Injected429:     c.injected429.Load(),
		Injected500:     c.injected500.Load(),
		Injected503:     c.injected503.Load(),
		Abandoned:       c.abandoned.Load(),
		Broadcasts:      make(map[string]BroadcastStats),
	}
	if n := c.firstNanos.Load(); n > 0 {
		s.FirstDeliveryAt = c.since.Add(time.Duration(n - 1))
	}
	if n := c.lastNanos.Load(); n > 0 {
		s.LastDeliveryAt = c.since.Add(time.Duration(n - 1))
	}
	s.SeriesStart, s.PerSecond = c.series.snapshot()
	c.bmu.RLock()
	for id, b := range c.broadcasts {
		s.Broadcasts[id] = BroadcastStats{
			Requests:   b.requests.Load(),
			Delivered:  b.delivered.Load(),
			Duplicates: b.duplicates.Load(),
			Refused:    b.refused.Load(),
		}
	}
	c.bmu.RUnlock()
	return s
}

// series counts events per second since start in fixed chunks allocated
// as time passes, so adding is one atomic increment and memory grows with
// elapsed time (8 bytes a second), not with events.
type series struct {
	start  time.Time
	mu     sync.Mutex // serialises growing
	chunks atomic.Pointer[[]*seriesChunk]
}

const (
	chunkSeconds  = 600
	seriesSeconds = 7 * 24 * 3600
)

type seriesChunk [chunkSeconds]atomic.Int64

func (s *series) add(now time.Time) {
	sec := int(now.Sub(s.start) / time.Second)
	if sec < 0 || sec >= seriesSeconds {
		return
	}
	i := sec / chunkSeconds
	cs := s.chunks.Load()
	if cs == nil || i >= len(*cs) || (*cs)[i] == nil {
		cs = s.grow(i)
	}
	(*cs)[i][sec%chunkSeconds].Add(1)
}

// grow makes sure chunk i exists; chunks before it that nothing fell into
// stay nil. The slice is copied, never changed in place, so readers that
// loaded the old one stay correct.
func (s *series) grow(i int) *[]*seriesChunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cur []*seriesChunk
	if p := s.chunks.Load(); p != nil {
		cur = *p
		if i < len(cur) && cur[i] != nil {
			return p
		}
	}
	next := make([]*seriesChunk, max(len(cur), i+1))
	copy(next, cur)
	next[i] = new(seriesChunk)
	s.chunks.Store(&next)
	return &next
}

// snapshot returns the counts from the first to the last non-empty second
// and the time of the first.
func (s *series) snapshot() (time.Time, []int64) {
	p := s.chunks.Load()
	if p == nil {
		return time.Time{}, []int64{}
	}
	cs := *p
	at := func(sec int) int64 {
		if ch := cs[sec/chunkSeconds]; ch != nil {
			return ch[sec%chunkSeconds].Load()
		}
		return 0
	}
	first, last := -1, -1
	for sec := range len(cs) * chunkSeconds {
		if at(sec) != 0 {
			if first < 0 {
				first = sec
			}
			last = sec
		}
	}
	if first < 0 {
		return time.Time{}, []int64{}
	}
	out := make([]int64, last-first+1)
	for i := range out {
		out[i] = at(first + i)
	}
	return s.start.Add(time.Duration(first) * time.Second), out
}
