package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/herald-dev/herald/signature"
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
	fs.Uint64Var(&cfg.Retry.OneIn, "retry-one-in", 0, "answer 503 with Retry-After to the first deliveries of one key in `n`, picked by the key's hash (0: none)")
	fs.IntVar(&cfg.Retry.Times, "retry-times", 1, "how many `times` --retry-one-in refuses a picked key before accepting it")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "`seed` of the random choice of injected failures")
	fs.BoolVar(&cfg.Strict, "strict", false, "reject bodies that are not JSON and keys that are not printable ASCII")
	fs.DurationVar(&cfg.OutageAfter, "outage-after", 0, "start the outage this `duration` after the first delivery request (see --outage-for)")
	fs.DurationVar(&cfg.OutageFor, "outage-for", 0, "answer every delivery --outage-status for this `duration`, from --outage-after (0: no outage)")
	fs.IntVar(&cfg.OutageStatus, "outage-status", 503, "`status` answered during the outage: 429 or 5xx")
	fs.Float64Var(&cfg.Refuse400, "refuse-400", 0, "`fraction` of idempotency keys always refused with 400, chosen by the key's hash")
}

func sinkCommand() command {
	return command{
		name:    "sink",
		summary: "Run the reference receiving endpoint that counts deliveries and duplicates.",
		usage:   "herald sink [--mode webhook|apns|fcm|webpush] [flags]",
		example: "herald sink --listen 127.0.0.1:8080 --rate-429 0.05 --latency 20ms\n" +
			"curl -s http://127.0.0.1:8080/stats\n" +
			"herald sink --mode apns --listen 127.0.0.1:8443 --dir /tmp/herald-apns",
		details: `Every POST (to any path but /reset) is a delivery: it needs an
Idempotency-Key header and is answered 200 for a new key, 409 for a key
already delivered. GET /stats serves the counts as JSON (requests, delivered,
duplicates, injected failures, per broadcast, per second); GET
/stats?reset=1 or POST /reset clears them. Injected failures never count a
key as delivered.

Deterministic faults, for exact tests: --outage-for takes the endpoint down
for that long, from --outage-after after the first delivery request (since
the start or the last reset): every delivery is answered --outage-status at
once (with Retry-After for 429 and 503) and counted as outage; /stats gives
the window as outage_from and outage_until. --refuse-400 refuses that
fraction of idempotency keys with 400 every time, the same keys on every run
(chosen by the key's hash), counted as refused overall and per broadcast.

With --verify-secret or --verify-secret-file it checks every delivery's
Herald-Signature against the key(s), one per line (two while a key is
rotated), and answers 401 to a missing, stale or forged signature, counted
as unauthorized. Give the key through HERALD_VERIFY_SECRET or a file rather
than on the command line, which other users of the machine can read.

--mode apns, fcm or webpush runs a fake of that push provider instead
(docs/PROVIDERS.md), over HTTPS with HTTP/2, checking what the real service
checks. It writes the secret a trigger names to --dir/secrets and its
certificate to --dir/push-ca.pem, and prints the worker flags and the
trigger's endpoint that reach it; GET /stats serves its counts (accepted,
distinct, refused by reason). The fault flags are the webhook's only.`,
		setup: func(fs *flag.FlagSet, c *common) runFunc {
			var cfg sink.Config
			listen := fs.String("listen", defaultSinkListen, "`address` to listen on")
			mode := fs.String("mode", modeWebhook, "what to be: `webhook` (the reference endpoint), or a fake apns, fcm or webpush provider")
			dir := fs.String("dir", "", "`directory` a fake provider writes its secret and certificate to (default: a new temporary one)")
			sinkFlags(fs, &cfg)
			secret := fs.String("verify-secret", "", "signing `keys` to verify deliveries with, one per line (prefer the environment twin or the file)")
			secretFile := fs.String("verify-secret-file", "", "`file` holding the signing keys to verify deliveries with, one per line")
			fs.DurationVar(&cfg.VerifyTolerance, "verify-tolerance", signature.DefaultTolerance, "how far a signature's time may be from this clock")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return fmt.Errorf("%w: unexpected argument %q", errUsage, args[0])
				}
				if *mode != modeWebhook {
					return runPushSink(ctx, c, *mode, *listen, *dir)
				}
				keys, err := verifyKeys(*secret, *secretFile)
				if err != nil {
					return err
				}
				cfg.VerifyKeys = keys
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
					"jitter", cfg.Jitter, "rate_429", cfg.Rate429, "rate_5xx", cfg.Rate5xx, "strict", cfg.Strict,
					"verify_signatures", len(cfg.VerifyKeys))
				if err := s.Run(ctx, ln); err != nil {
					return err
				}
				logStats(c, s.Stats())
				return nil
			}
		},
	}
}

// verifyKeys reads the sink's signing keys from --verify-secret or
// --verify-secret-file; neither means no verification.
func verifyKeys(secret, file string) ([][]byte, error) {
	switch {
	case secret != "" && file != "":
		return nil, fmt.Errorf("%w: give --verify-secret or --verify-secret-file, not both", errUsage)
	case file != "":
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read verify secret: %w", err)
		}
		secret = string(raw)
	case secret == "":
		return nil, nil
	}
	keys, err := signature.ParseKeys([]byte(secret))
	if err != nil {
		return nil, fmt.Errorf("%w: verify secret: %w", errUsage, err)
	}
	return keys, nil
}

// logStats logs the final counts when a sink stops.
func logStats(c *common, st sink.Stats) {
	c.log.Info("sink stopped", "requests", st.Requests, "delivered", st.Delivered,
		"duplicates", st.Duplicates, "bad_requests", st.BadRequests, "unauthorized", st.Unauthorized,
		"injected_429", st.Injected429, "injected_5xx", st.Injected500+st.Injected503)
}

// runPushSink runs a fake push provider on listen until ctx ends.
func runPushSink(ctx context.Context, c *common, mode, listen, dir string) error {
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "herald-"+mode+"-"); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	f, err := startPushFake(mode, ln, dir)
	if err != nil {
		ln.Close()
		return err
	}
	defer f.Close()
	fmt.Fprintf(c.stdout, "fake %s listening on %s\n%sWorkers reach it with: herald worker %s\n",
		mode, f.url, f.howTo(dir), pushWorkerFlags(dir))
	c.log.Info("push sink started", "mode", mode, "addr", ln.Addr().String(), "dir", dir)
	<-ctx.Done()
	return nil
}
