package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/coordinator"
)

// Console serves the web console. It is an http.Handler; Run keeps its
// views current and must run for the pages to show anything.
type Console struct {
	cfg     Config
	reg     *coordinator.Registry
	watcher clientv3.Watcher
	produce Producer // nil: no trigger form
	log     *slog.Logger
	out     *fanout
	mux     http.Handler
	session []byte        // the cookie value a login sets; nil without a token
	guesses chan struct{} // one wrong token answered at a time
}

// New builds a console over the etcd client cli. produce sends triggers;
// nil leaves the trigger form out. A nil log discards.
func New(cfg Config, cli *clientv3.Client, produce Producer, log *slog.Logger) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cli == nil {
		return nil, errors.New("console: no etcd client")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	c := &Console{cfg: cfg, reg: coordinator.NewRegistry(cli, cfg.Prefix), watcher: cli.Watcher, produce: produce,
		log: log, out: newFanout(cfg.ClientBuffer, cfg.MaxClients), guesses: make(chan struct{}, 1)}
	if cfg.Token != "" {
		c.session = sessionValue(cfg.Token)
	}
	c.mux = c.routes()
	return c, nil
}

// relistEvery is how often Run reads every broadcast again, to drop those
// whose summaries the retention swept (the archive is not watched).
const relistEvery = 5 * time.Minute

// pingEvery keeps idle event streams open through proxies.
const pingEvery = 15 * time.Second

// Run watches the broadcasts until ctx ends, then closes every event
// stream. It is one loop: the watch's events mark broadcasts dirty, and
// each tick reads the dirty ones' status again and publishes their views.
func (c *Console) Run(ctx context.Context) error {
	defer c.out.close()
	from, end := c.reg.StatusRange()
	tracked := map[string]*entry{}
	dirty := map[string]bool{}
	relist := true
	var events clientv3.WatchChan
	var watchCancel context.CancelFunc = func() {}
	defer func() { watchCancel() }()
	tick := time.NewTicker(c.cfg.Interval)
	defer tick.Stop()
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	lastList := time.Time{}
	for {
		if events == nil {
			// The watch starts before the list, so no change falls between.
			events, watchCancel = c.watch(ctx, from, end)
			relist = true
		}
		if relist || time.Since(lastList) > relistEvery {
			if err := c.list(ctx, tracked); err != nil {
				c.log.Warn("console: list broadcasts", "err", err)
			} else {
				relist, lastList = false, time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case resp, ok := <-events:
			if !ok || resp.Err() != nil {
				if ctx.Err() != nil {
					return nil
				}
				c.log.Warn("console: watch ended; watching again", "err", resp.Err())
				watchCancel()
				events = nil
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Second):
				}
				continue
			}
			for _, ev := range resp.Events {
				id, all := c.reg.StatusOf(string(ev.Kv.Key))
				switch {
				case all:
					for k, t := range tracked {
						if !t.status.State.Terminal() {
							dirty[k] = true
						}
					}
				case id != "":
					dirty[id] = true
				}
			}
		case now := <-tick.C:
			c.refresh(ctx, tracked, dirty, now)
		case <-ping.C:
			c.out.ping()
		}
	}
}

// watch watches [from, end) until ctx ends or the returned cancel is
// called. Without a leader the watch ends, and Run starts another.
func (c *Console) watch(ctx context.Context, from, end string) (clientv3.WatchChan, context.CancelFunc) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	return c.watcher.Watch(wctx, from, clientv3.WithRange(end)), cancel
}

// list reads every broadcast, live and archived, and publishes them;
// those no longer there are removed.
func (c *Console) list(ctx context.Context, tracked map[string]*entry) error {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	all, err := c.reg.List(rctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	now := time.Now()
	for _, st := range all {
		seen[st.ID] = true
		t := tracked[st.ID]
		if t == nil {
			t = &entry{}
			tracked[st.ID] = t
		}
		c.readSpec(rctx, st.ID, t, st)
		t.observe(st, now, c.cfg.Interval)
		c.out.publish(t.view(true))
	}
	for id := range tracked {
		if !seen[id] {
			delete(tracked, id)
			c.out.remove(id)
		}
	}
	return nil
}

// refresh reads the status of the dirty broadcasts, advances the rates
// of the running ones, and publishes what changed.
func (c *Console) refresh(ctx context.Context, tracked map[string]*entry, dirty map[string]bool, now time.Time) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for id := range dirty {
		st, err := c.reg.Status(rctx, id)
		if errors.Is(err, coordinator.ErrNotFound) {
			delete(dirty, id)
			if tracked[id] != nil {
				delete(tracked, id)
				c.out.remove(id)
			}
			continue
		}
		if err != nil {
			c.log.Warn("console: read status", "broadcast", id, "err", err)
			return // kept dirty: read again at the next tick
		}
		delete(dirty, id)
		t := tracked[id]
		if t == nil {
			t = &entry{}
			tracked[id] = t
		}
		c.readSpec(rctx, id, t, st)
		t.observe(st, now, c.cfg.Interval)
		c.out.publish(t.view(true))
	}
	// A running broadcast whose keys did not change is sending nothing:
	// its rates fall without a read, and pages hear of it until they
	// reach zero or a chart point is due.
	for _, t := range tracked {
		if t.lastAt.Equal(now) || t.status.State != coordinator.StateRunning {
			continue
		}
		before := t.status.RatePerSec + t.msgsRate
		t.observe(t.status, now, c.cfg.Interval)
		if t.newPoint != nil || before >= 1 {
			c.out.publish(t.view(true))
		}
	}
}

// readSpec reads what pages show of a broadcast's spec, once per
// registration (an id may be used again once its summary is swept).
func (c *Console) readSpec(ctx context.Context, id string, t *entry, st coordinator.Status) {
	if !st.CreatedAt.Equal(t.status.CreatedAt) {
		t.specRead = false
	}
	if t.specRead {
		return
	}
	raw, err := c.reg.Spec(ctx, id)
	if err != nil {
		return // archived: the summary keeps no spec
	}
	t.spec, t.meter.Total = summarize(raw)
	t.specRead = true
}

// ServeHTTP serves the pages, the API and the event streams.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

// Serve runs the console on ln until ctx ends: Run, and an HTTP server
// with timeouts. Event streams end with Run, so the shutdown waits only
// for requests in progress.
func (c *Console) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(c.log.Handler(), slog.LevelWarn)}
	runDone := make(chan error, 1)
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	go func() { runDone <- c.Run(runCtx) }()
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-serveDone:
		serveDone = nil
	case err = <-runDone:
		runDone = nil
	}
	stopRun()
	if runDone != nil {
		err = errors.Join(err, <-runDone)
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shutCtx); serr != nil {
		err = errors.Join(err, fmt.Errorf("console: shutdown: %w", serr))
	}
	if serveDone != nil {
		if serr := <-serveDone; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
	}
	return err
}
