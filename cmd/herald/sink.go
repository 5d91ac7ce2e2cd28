package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/herald-dev/herald/sink"
)

const defaultSinkListen = "127.0.0.1:8080"

// sinkFlags declares the sink's fault-injection flags on fs, shared by
// `herald sink` and `herald dev`.
func sinkFlags(fs *flag.FlagSet, cfg *sink.Config) {
	fs.DurationVar(&cfg.Latency, "latency", 0, "delay every answer by this `duration`")
	fs.DurationVar(&cfg.Jitter, "jitter", 0, "add a random delay up to this `duration`")
	fs.Float64Var(&cfg.Rate429, "rate-429", 0, "`fraction` of deliveries answered 429 with Retry-After")
	fs.Float64Var(&cfg.Rate5xx, "rate-5xx", 0, "`fraction` of deliveries answered 500 or 503")
	fs.DurationVar(&cfg.RetryAfter, "retry-after", time.Second, "`delay` announced in Retry-After with 429 and 503, rounded up to whole seconds")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "`seed` of the random choice of injected failures")
	fs.BoolVar(&cfg.Strict, "strict", false, "reject bodies that are not JSON and keys that are not printable ASCII")
}

func sinkCommand() command {
	return command{
		name:    "sink",
		summary: "Run the reference receiving endpoint that counts deliveries and duplicates.",
		usage:   "herald sink [flags]",
		example: "herald sink --listen 127.0.0.1:8080 --rate-429 0.05 --latency 20ms\n" +
			"curl -s http://127.0.0.1:8080/stats",
		details: `Every POST (to any path but /reset) is a delivery: it needs an
Idempotency-Key header and is answered 200 for a new key, 409 for a key
already delivered. GET /stats serves the counts as JSON (requests, delivered,
duplicates, injected failures, per broadcast, per second); GET
/stats?reset=1 or POST /reset clears them. Injected failures never count a
key as delivered.`,
		setup: func(fs *flag.FlagSet, c *common) runFunc {
			var cfg sink.Config
			listen := fs.String("listen", defaultSinkListen, "`address` to listen on")
			sinkFlags(fs, &cfg)
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return fmt.Errorf("%w: unexpected argument %q", errUsage, args[0])
				}
				cfg.Logger = c.log
				s, err := sink.New(cfg)
				if err != nil {
					return err
				}
				ln, err := net.Listen("tcp", *listen)
				if err != nil {
					return fmt.Errorf("listen: %w", err)
				}
				url := "http://" + ln.Addr().String()
				fmt.Fprintf(c.stdout, "sink listening on %s (stats at %s/stats)\n", url, url)
				c.log.Info("sink started", "addr", ln.Addr().String(), "latency", cfg.Latency,
					"jitter", cfg.Jitter, "rate_429", cfg.Rate429, "rate_5xx", cfg.Rate5xx, "strict", cfg.Strict)
				if err := s.Run(ctx, ln); err != nil {
					return err
				}
				logStats(c, s.Stats())
				return nil
			}
		},
	}
}

// logStats logs the final counts when a sink stops.
func logStats(c *common, st sink.Stats) {
	c.log.Info("sink stopped", "requests", st.Requests, "delivered", st.Delivered,
		"duplicates", st.Duplicates, "bad_requests", st.BadRequests,
		"injected_429", st.Injected429, "injected_5xx", st.Injected500+st.Injected503)
}
