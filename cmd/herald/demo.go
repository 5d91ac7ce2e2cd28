package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/herald-dev/herald/internal/demo"
)

func demoCommand() command {
	return command{
		name:    "demo",
		summary: "Run a whole broadcast on this machine: etcd, Kafka, an endpoint and workers.",
		usage:   "herald demo [--channel webhook|apns|fcm|webpush] [--workers N] [--subscribers N] [--kill-after DUR] [--json]",
		example: "herald demo\nherald demo --subscribers 1000000 --workers 4 --kill-after 3s --json\nherald demo --channel apns --subscribers 50000 --kill-after 2s",
		details: `Starts an embedded etcd server, an embedded Kafka-protocol broker and a
reference endpoint on loopback, starts --workers real worker processes,
triggers a broadcast of --subscribers synthetic subscribers through Kafka,
shows its progress, and prints a summary counted at the endpoint. With
--kill-after, one worker holding work is killed with SIGKILL at that time (no
hand-back, no lease revoke) and the time until the survivors claimed its
remaining work is reported. --json makes the last line one JSON object.
While it runs, the web console (herald console) shows the broadcast at the
printed URL; sign in with the printed token to pause or resume it.
Exits 0 only if the broadcast finished with nothing lost.

--channel apns, fcm or webpush sends to devices through a fake of that
provider on loopback instead (docs/PROVIDERS.md): the fake checks what the
real service checks (APNs: the ES256 provider token and HTTP/2; FCM: the
OAuth2 assertion, the bearer token and the message; Web Push: the VAPID JWT,
and it decrypts every payload), and the audience is a file of --subscribers
devices. Counts are the fake's: distinct notifications received.`,
		setup: func(fs *flag.FlagSet, c *common) runFunc {
			var cfg demo.Config
			fs.StringVar(&cfg.Channel, "channel", "webhook", "where to deliver: `webhook` (the reference sink), apns, fcm or webpush (a fake of that provider)")
			fs.IntVar(&cfg.Workers, "workers", 3, "worker `processes` to run")
			fs.Int64Var(&cfg.Subscribers, "subscribers", 200_000, "synthetic `subscribers` in the audience")
			fs.DurationVar(&cfg.KillAfter, "kill-after", 0, "SIGKILL one worker after this `time` (0: none)")
			fs.DurationVar(&cfg.LeaseTTL, "lease-ttl", 5*time.Second, "workers' etcd lease `TTL`")
			fs.IntVar(&cfg.MaxInFlight, "max-in-flight", 64, "concurrent `requests` per worker")
			fs.DurationVar(&cfg.EndpointLatency, "endpoint-latency", 0, "delay every answer of the endpoint by this `time`")
			fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Minute, "give up after this `time`")
			fs.StringVar(&cfg.ConsoleListen, "console-listen", "127.0.0.1:0", "`address` of the web console while the demo runs (\"\": none)")
			token := fs.String("console-token", "", "the console's access `token` (default: a random one, printed)")
			asJSON := fs.Bool("json", false, "make the last line of output one JSON object")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return fmt.Errorf("%w: unexpected argument %q", errUsage, args[0])
				}
				cfg.Progress, cfg.Live, cfg.Log = c.stdout, isTerminal(c.stdout), c.log
				if cfg.ConsoleToken = *token; cfg.ConsoleToken == "" {
					cfg.ConsoleToken = randomToken()
				}
				sum, err := demo.Run(ctx, cfg)
				if err != nil {
					return err
				}
				if *asJSON {
					if err := json.NewEncoder(c.stdout).Encode(sum); err != nil {
						return err
					}
				}
				if !sum.OK() {
					return errors.New("the broadcast did not finish with nothing lost")
				}
				return nil
			}
		},
	}
}
