package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
)

// proxyHost is the endpoint host of a broadcast whose senders are told
// apart. Workers cannot be given different endpoint URLs, but each can be
// given its own HTTP proxy (HTTP_PROXY): Go's transport skips proxies for
// loopback addresses, so the endpoint is named by a host that is not one.
// The .invalid top-level domain never resolves (RFC 2606), so a request
// can reach the endpoint only through a proxy, which forwards it to the
// sink on loopback.
const proxyHost = "sink.loadtest.invalid"

// attribution is one recording proxy per worker in front of the sink. It
// tells which worker sent which key, which the sink alone cannot: that is
// how sigstop checks that a worker woken after losing its lease sends
// nothing for the work it lost.
type attribution struct {
	target string // the sink's host:port
	tr     *http.Transport

	mu      sync.Mutex
	proxies map[string]*proxy
	wg      sync.WaitGroup
}

func newAttribution(sinkAddr string) *attribution {
	return &attribution{
		target:  sinkAddr,
		tr:      &http.Transport{MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute, DisableCompression: true},
		proxies: make(map[string]*proxy),
	}
}

// proxy is one worker's: it forwards every request and records its key.
type proxy struct {
	a   *attribution
	id  string
	srv *http.Server
	ln  net.Listener

	mu        sync.Mutex
	requests  int64
	woken     bool                // after the worker's SIGCONT
	rejoined  bool                // after its new member record appeared
	before    map[uint64]struct{} // keys forwarded before waking: all of them for a worker never stopped
	afterWake map[uint64]uint8    // keys forwarded once woken, with how often (saturating)
	// beforeRejoin counts requests between waking and the new lease.
	beforeRejoin int64
}

// env is the environment that sends worker id's deliveries through its
// proxy, started on first use.
func (a *attribution) env(id string) ([]string, error) {
	p, err := a.proxy(id)
	if err != nil {
		return nil, err
	}
	u := "http://" + p.ln.Addr().String()
	// Both spellings, and no exclusions inherited from this process.
	return []string{"HTTP_PROXY=" + u, "http_proxy=" + u, "NO_PROXY=", "no_proxy="}, nil
}

func (a *attribution) proxy(id string) (*proxy, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p := a.proxies[id]; p != nil {
		return p, nil // a restarted worker keeps its proxy
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("loadtest: proxy for %s: %w", id, err)
	}
	p := &proxy{a: a, id: id, ln: ln, before: make(map[uint64]struct{}), afterWake: make(map[uint64]uint8)}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	a.proxies[id] = p
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		// Serve returns ErrServerClosed on close; any other error means the
		// worker's sends fail, which Herald counts and the run reports.
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, woken := r.Header.Get("Idempotency-Key"), false
	if key != "" {
		woken = p.count()
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+p.a.target+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.ContentLength = r.ContentLength
	for _, h := range []string{"Content-Type", "Idempotency-Key"} {
		if v := r.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	resp, err := p.a.tr.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	// Keys count as sent once the endpoint took them (200, or 409 for a
	// duplicate): a refused attempt (429, 5xx) delivers nothing, and its
	// retry is not a second send.
	if key != "" && (resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusConflict) {
		p.record(xxhash.Sum64String(key), woken)
	}
	for _, h := range []string{"Content-Type", "Retry-After"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// count counts a request as it arrives and reports whether the worker
// had been woken by then.
func (p *proxy) count() (woken bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	if p.woken && !p.rejoined {
		p.beforeRejoin++
	}
	return p.woken
}

// record notes key hash h as sent, before or after the wake.
func (p *proxy) record(h uint64, woken bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !woken {
		p.before[h] = struct{}{}
		return
	}
	if n := p.afterWake[h]; n < 255 {
		p.afterWake[h] = n + 1
	}
}

// sent reports whether p forwarded key hash h at any time.
func (p *proxy) sent(h uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.before[h]
	if !ok {
		_, ok = p.afterWake[h]
	}
	return ok
}

// markWoken starts recording what worker id sends after its SIGCONT.
func (a *attribution) markWoken(id string) {
	if p, _ := a.proxy(id); p != nil {
		p.mu.Lock()
		p.woken = true
		p.mu.Unlock()
	}
}

// markRejoined records that worker id holds a new lease.
func (a *attribution) markRejoined(id string) {
	if p, _ := a.proxy(id); p != nil {
		p.mu.Lock()
		p.rejoined = true
		p.mu.Unlock()
	}
}

// zombieReport is what a worker woken after losing its lease sent, told
// apart by its proxy from what every other worker sent.
type zombieReport struct {
	Worker string `json:"worker"`
	// SentBeforeNewLease counts its requests between SIGCONT and the
	// moment its new member record was seen (an etcd watch): any is a
	// send for work it no longer owned. Must be 0.
	SentBeforeNewLease int64 `json:"sent_before_new_lease"`
	// SentAfterWake counts the distinct keys it sent after SIGCONT: its
	// new share, once rejoined.
	SentAfterWake int `json:"sent_after_wake"`
	// AlsoSentByOthers counts those keys another worker sent too (before
	// or after): work it lost to the survivors and sent anyway. Must be 0.
	AlsoSentByOthers int `json:"also_sent_by_others"`
	// SentTwiceAfterWake counts keys it sent more than once after waking
	// (a lost record sent as a zombie, then again under a new claim).
	// Must be 0. The key counts above and below are of keys the endpoint
	// took; a refused attempt and its retry are one send.
	SentTwiceAfterWake int `json:"sent_twice_after_wake"`
	// ResentByOthers counts keys it sent before the stop that another
	// worker sent again: the failover's re-sends from its last checkpoint,
	// which the checkpoint window bounds.
	ResentByOthers int `json:"resent_by_others"`
	// ResentByItself counts keys it sent before the stop and again after
	// rejoining: its own window handed back to it.
	ResentByItself int `json:"resent_by_itself"`
	// RequestsByWorker is every worker's request count through its proxy.
	RequestsByWorker map[string]int64 `json:"requests_by_worker"`
}

// zombie compares what worker id sent before its stop and after waking
// with what every other worker sent. Call it once the broadcast is over.
func (a *attribution) zombie(id string) zombieReport {
	a.mu.Lock()
	defer a.mu.Unlock()
	rep := zombieReport{Worker: id, RequestsByWorker: make(map[string]int64)}
	var others []*proxy
	for wid, p := range a.proxies {
		p.mu.Lock()
		rep.RequestsByWorker[wid] = p.requests
		p.mu.Unlock()
		if wid != id {
			others = append(others, p)
		}
	}
	z := a.proxies[id]
	if z == nil {
		return rep
	}
	byOthers := func(h uint64) bool {
		for _, p := range others {
			if p.sent(h) {
				return true
			}
		}
		return false
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	rep.SentBeforeNewLease, rep.SentAfterWake = z.beforeRejoin, len(z.afterWake)
	for h, n := range z.afterWake {
		if n > 1 {
			rep.SentTwiceAfterWake++
		}
		if byOthers(h) {
			rep.AlsoSentByOthers++
		}
		if _, ok := z.before[h]; ok {
			rep.ResentByItself++
		}
	}
	for h := range z.before {
		if byOthers(h) {
			rep.ResentByOthers++
		}
	}
	return rep
}

// close stops every proxy.
func (a *attribution) close() {
	a.mu.Lock()
	ps := make([]*proxy, 0, len(a.proxies))
	for _, p := range a.proxies {
		ps = append(ps, p)
	}
	a.mu.Unlock()
	for _, p := range ps {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = p.srv.Shutdown(ctx)
		cancel()
	}
	a.wg.Wait()
	a.tr.CloseIdleConnections()
}
