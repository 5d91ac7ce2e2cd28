package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/connect"
	"github.com/herald-dev/herald/internal/headerlimit"
	"github.com/herald-dev/herald/worker"
	"github.com/herald-dev/herald/worker/delivery"
)

func workerCommand() command {
	return command{
		name:    "worker",
		summary: "Run a fleet member: take triggers from Kafka, claim work in etcd, deliver.",
		usage:   "herald worker [flags]",
		example: "herald worker --etcd http://127.0.0.1:2379 --kafka 127.0.0.1:9092 --id worker-1\n" +
			"HERALD_ETCD=http://etcd:2379 HERALD_KAFKA=kafka:9092 herald worker",
		details: `A worker joins the fleet with an etcd lease, reads the trigger topic in the
fleet's consumer group, and streams, renders and sends the work units it
claims. Metrics are served at /metrics, liveness at /healthz and readiness
(joined, lease alive) at /readyz on --http-addr.

On SIGTERM it stops taking work, hands every unit back at a checkpoint,
releases its claims, revokes its lease and exits 0. If it cannot reach etcd
for longer than its lease allows, it stops sending at its local deadline and
rejoins with a new lease when etcd is back.

Security (docs/SECURITY.md): a worker sends only to endpoint origins on its
allowlist (--allow-endpoint, --allow-endpoint-file); with none configured it
rejects every trigger. Secrets that triggers name (endpoint.signing_secret,
endpoint.auth_secret, and a push endpoint's endpoint.apns.key_secret,
endpoint.fcm.credentials_secret or endpoint.webpush.vapid_secret) are read
from --secrets-dir (a file per secret) or HERALD_SECRET_<NAME>. --audience-dir confines file audiences to one
directory. The --etcd-* and --kafka-* flags set TLS, client certificates
and authentication.

Push endpoints (docs/PROVIDERS.md): device tokens and push subscriptions
a provider declares dead are produced to --invalid-token-topic (key the
subscriber id) with their dead letters. Providers' certificates are
verified with the system's roots, or --push-ca-file's.

History: a finished broadcast (done, expired, cancelled, rejected) is
reduced to a summary in etcd a few seconds after it ends, and the summary is
produced to --report-topic (key the broadcast id) first; "herald status"
still answers from the summary. The summary is deleted --retention after the
broadcast finished, and its id may then be used again. With
--report-topic none nothing is produced. Run etcd with auto-compaction so the
space of deleted keys is reused (docs/OPERATIONS.md).`,
		cluster: true,
		setup: func(fs *flag.FlagSet, c *common) runFunc {
			var cc coordinator.Config
			fs.StringVar(&cc.MemberID, "id", "", "member `name`, unique in the fleet (default: host name plus a random suffix)")
			fs.DurationVar(&cc.LeaseTTL, "lease-ttl", 5*time.Second, "etcd lease `TTL`: how soon a dead worker's work is taken over")
			fs.Float64Var(&cc.Capacity, "capacity", 1, "this worker's `weight` in the assignment of slots, relative to others")
			httpAddr := fs.String("http-addr", ":9464", "`address` for /metrics, /healthz and /readyz")
			withPprof := fs.Bool("pprof", false, "also serve Go's profiler at /debug/pprof/ on --http-addr: it exposes the process's internals (stacks, command line), so use it only on a private address")
			group := fs.String("group", worker.DefaultGroupID, "Kafka consumer `group` of the fleet")
			deadTopic := fs.String("dead-letter-topic", delivery.DefaultDeadLetterTopic, "Kafka `topic` receiving failed deliveries")
			tokenTopic := fs.String("invalid-token-topic", delivery.DefaultInvalidTokenTopic, "Kafka `topic` receiving the device tokens and push subscriptions providers declared dead (key the subscriber id)")
			pushCA := fs.String("push-ca-file", "", "PEM `file` of the certificate authorities push providers (APNs, FCM, Web Push services) are verified with, instead of the system's (for herald dev's fakes)")
			reportTopic := fs.String("report-topic", worker.DefaultReportTopic, "Kafka `topic` receiving the summary of every finished broadcast (none: no reports)")
			fs.DurationVar(&cc.Retention, "retention", coordinator.DefaultRetention, "`time` etcd keeps a finished broadcast's summary, from its end; then its id is free again")
			noIntake := fs.Bool("no-intake", false, "do not consume triggers (leave intake to other workers)")
			allowPatterns, allowFile := allowFlags(fs)
			secretsDir := fs.String("secrets-dir", "", "`directory` of secrets triggers name, one file per secret (as Kubernetes mounts them)")
			audienceDir := fs.String("audience-dir", "", "only `directory` file audiences may be read from (default: any file the worker can read)")
			maxInFlight := fs.Int("max-in-flight", worker.DefaultWorkerMaxInFlight,
				"most `sends` in flight on this worker over all its broadcasts, shared fairly between them (each also within its endpoint's max_in_flight); it bounds the worker's sender goroutines and the connections it keeps open")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return fmt.Errorf("%w: unexpected argument %q", errUsage, args[0])
				}
				allow, err := endpointAllowlist(*allowPatterns, *allowFile)
				if err != nil {
					return err
				}
				kc, err := c.kafkaConfig()
				if err != nil {
					return err
				}
				dialer, err := kc.Dialer()
				if err != nil {
					return err
				}
				cc.Prefix, cc.Version = c.prefix, version
				pushTLS, err := pushTLSConfig(*pushCA)
				if err != nil {
					return err
				}
				return runWorker(ctx, c, cc, *tokenTopic, worker.Config{
					PushTLS: pushTLS,
					Brokers: c.kafkaBrokers(), Topic: c.topic, DeadLetterTopic: *deadTopic,
					GroupID: *group, NoIntake: *noIntake,
					Allow: allow, Secrets: connect.Secrets{Dir: *secretsDir, Getenv: c.getenv}, KafkaDialer: dialer,
					AudienceDir: *audienceDir, MaxInFlight: *maxInFlight,
				}, kc, *httpAddr, *reportTopic, *withPprof)
			}
		},
	}
}

func runWorker(ctx context.Context, c *common, cc coordinator.Config, tokenTopic string, wc worker.Config, kc connect.Kafka, httpAddr, reportTopic string, withPprof bool) error {
	deadTransport, err := kc.Transport()
	if err != nil {
		return err
	}
	tokenTransport, err := kc.Transport()
	if err != nil {
		return err
	}
	reportTransport, err := kc.Transport()
	if err != nil {
		return err
	}
	if reportTopic != "" && reportTopic != "none" {
		reports := worker.NewReportWriter(c.kafkaBrokers(), reportTopic, reportTransport, c.log.With("component", "reports"))
		// Closed after the coordinator's Run, which reports, has returned.
		defer reports.Close()
		cc.Reporter = reports
	}
	cli, err := etcdClient(c)
	if err != nil {
		return err
	}
	defer cli.Close()
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", httpAddr, err)
	}
	cc.Address = ln.Addr().String()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	co, err := coordinator.New(cc, cli, c.log.With("component", "coordinator"), reg)
	if err != nil {
		ln.Close()
		return err
	}
	dead := delivery.NewDeadLetterWriter(c.kafkaBrokers(), wc.DeadLetterTopic, deadTransport, c.log.With("component", "deadletters"))
	defer dead.Close()
	tokens := delivery.NewInvalidTokenWriter(c.kafkaBrokers(), tokenTopic, tokenTransport, c.log.With("component", "invalid-tokens"))
	defer tokens.Close()
	wc.InvalidTokens = tokens
	w, err := worker.New(wc, co, dead, c.log, reg)
	if err != nil {
		ln.Close()
		return err
	}
	handler := w.Handler()
	if withPprof {
		handler = pprofHandler(handler)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: headerlimit.DefaultMaxBytes}
	c.log.Info("worker starting", "id", cc.MemberID, "etcd", c.etcd, "kafka", c.kafka, "http", ln.Addr().String(),
		"allow_endpoints", wc.Allow.String(), "kafka_tls", kc.UsesTLS(), "kafka_sasl", kc.SASL, "pprof", withPprof)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := w.Run(gctx)
		// /healthz answers until the worker has handed its work back and left.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return errors.Join(err, srv.Shutdown(sctx))
	})
	g.Go(func() error {
		// Headers past MaxHeaderBytes are refused by net/http itself;
		// the listener counts them with the worker's other limits.
		counted := headerlimit.CountRefusals(ln, func() { w.LimitHit(worker.LimitRequestHeaders) })
		if err := srv.Serve(counted); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	err = g.Wait()
	c.log.Info("worker stopped", "err", err)
	return err
}

// pprofHandler serves Go's profiler under /debug/pprof/ and everything
// else from h. The handlers are registered on a mux of its own: the
// default mux, which importing net/http/pprof also fills, is never served.
func pprofHandler(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// pushTLSConfig trusts the certificate authorities in the PEM file at
// path for push providers; "" means the system's roots (nil).
func pushTLSConfig(path string) (*tls.Config, error) {
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("push CA file: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("push CA file %s: no PEM certificate in it", path)
	}
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, nil
}
