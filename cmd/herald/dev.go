package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/console"
	"github.com/herald-dev/herald/internal/connect"
	"github.com/herald-dev/herald/internal/devstack"
	"github.com/herald-dev/herald/sink"
)

func devCommand() command {
	return command{
		name:    "dev",
		summary: "Run an embedded etcd, Kafka broker and sink on loopback until interrupted.",
		usage:   "herald dev [flags]",
		example: "herald dev\n" +
			"herald dev --postgres\n" +
			"herald dev --etcd-listen 127.0.0.1:12379 --kafka-listen 127.0.0.1:19092 --sink-listen 127.0.0.1:18080",
		details: `Starts a single-node etcd server (compacting its history every minute),
a single-broker Kafka-protocol broker with the topics herald.broadcasts,
herald.deadletters and herald.reports, the reference sink and the web
console (herald console), prints their addresses and how to reach them with
etcdctl, kcat and curl, and runs until SIGINT or SIGTERM. The console's
access token is --console-token, or a random one printed at the start. Kafka data lives in memory and etcd data in a temporary
directory; both are gone when it stops. On the default addresses the other
herald commands need no flags. Port 0 picks a free port.

It also runs a fake APNs, FCM and Web Push service on free loopback ports
(docs/PROVIDERS.md; herald sink --mode runs one on a port of your choice),
writes the secrets their triggers name and their certificate to a temporary
directory, and prints the worker flags, trigger endpoint and audience line
that reach each, and the topic herald.invalid-tokens that dead tokens go to.

With --postgres it also starts a throw-away PostgreSQL cluster (initdb and
postgres from Debian's postgresql package, run as the user nobody when
herald runs as root) with a database "herald" holding a table
"subscribers" of 10,000 sample subscribers prepared for range reads, and
prints its URL and the audience spec that reads it (docs/AUDIENCES.md).
The cluster is removed when dev stops.`,
		setup: func(fs *flag.FlagSet, c *common) runFunc {
			etcdAddr := fs.String("etcd-listen", "127.0.0.1:2379", "`address` etcd serves clients on")
			kafkaAddr := fs.String("kafka-listen", defaultKafka, "`address` of the Kafka broker")
			sinkAddr := fs.String("sink-listen", defaultSinkListen, "`address` of the sink")
			consoleAddr := fs.String("console-listen", console.DefaultListen, "`address` of the web console (\"\": none)")
			token := fs.String("console-token", "", "the console's access `token` (default: a random one, printed)")
			pg := fs.Bool("postgres", false, "also start a throw-away PostgreSQL cluster with a sample audience table (needs PostgreSQL installed)")
			pgAddr := fs.String("postgres-listen", defaultDevPostgres, "`address` of the PostgreSQL server started by --postgres")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return fmt.Errorf("%w: unexpected argument %q", errUsage, args[0])
				}
				tok := *token
				if tok == "" {
					tok = randomToken()
				}
				if !*pg {
					*pgAddr = ""
				}
				return runDev(ctx, c, *etcdAddr, *kafkaAddr, *sinkAddr, *consoleAddr, tok, *pgAddr)
			}
		},
	}
}

// defaultDevPostgres is where `herald dev --postgres` listens: not 5432,
// where Debian's postgresql package starts its own cluster.
const defaultDevPostgres = "127.0.0.1:55432"

// Where `herald dev --postgres` puts its sample audience.
const (
	devPostgresDB    = "herald"
	devPostgresTable = "subscribers"
	devPostgresRows  = 10000
)

func runDev(ctx context.Context, c *common, etcdAddr, kafkaAddr, sinkAddr, consoleAddr, token, pgAddr string) (err error) {
	var fakes []*pushFake
	// The sink's port is taken first: it is the quickest to fail and
	// nothing needs undoing if it does.
	ln, err := net.Listen("tcp", sinkAddr)
	if err != nil {
		return fmt.Errorf("sink listen: %w", err)
	}
	snk, err := sink.New(sink.Config{Logger: c.log})
	if err != nil {
		ln.Close()
		return err
	}
	stack, err := devstack.Start(ctx, devstack.Config{EtcdAddr: etcdAddr, KafkaAddr: kafkaAddr})
	if err != nil {
		ln.Close()
		return err
	}
	defer func() {
		if cerr := stack.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		c.log.Info("dev stack stopped")
	}()
	var pgURL string
	if pgAddr != "" {
		pg, err := devstack.StartPostgres(ctx, devstack.PostgresConfig{Addr: pgAddr})
		if err != nil {
			ln.Close()
			return err
		}
		defer func() {
			if cerr := pg.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}()
		if pgURL, err = pg.SampleAudience(ctx, devPostgresDB, devPostgresTable, devPostgresRows); err != nil {
			ln.Close()
			return err
		}
	}
	consoleURL, stopConsole, err := devConsole(ctx, c, stack, consoleAddr, token)
	if err != nil {
		ln.Close()
		return err
	}
	defer func() { err = errors.Join(err, stopConsole()) }()
	pushDir, err := os.MkdirTemp("", "herald-dev-push-")
	if err != nil {
		ln.Close()
		return err
	}
	defer os.RemoveAll(pushDir)
	for _, mode := range []string{modeAPNs, modeFCM, modeWebPush} {
		f, err := startPushFake(mode, nil, pushDir)
		if err != nil {
			ln.Close()
			return err
		}
		defer f.Close()
		fakes = append(fakes, f)
	}
	printDev(c.stdout, stack.EtcdEndpoint(), strings.Join(stack.KafkaBrokers(), ","), "http://"+ln.Addr().String(), consoleURL, token, fakes, pushDir)
	if pgURL != "" {
		printDevPostgres(c.stdout, pgURL)
	}
	fmt.Fprint(c.stdout, "Ready. Press Ctrl-C to stop.\n")
	c.log.Info("dev stack ready", "etcd", stack.EtcdEndpoint(), "kafka", stack.KafkaBrokers(), "sink", ln.Addr().String(), "console", consoleURL)
	if err := snk.Run(ctx, ln); err != nil {
		return err
	}
	logStats(c, snk.Stats())
	return nil
}

// devConsole serves the web console over the dev stack, with token, until
// ctx ends or stop is called; it returns the console's URL, "" when addr
// is "" (no console).
func devConsole(ctx context.Context, c *common, stack *devstack.Stack, addr, token string) (url string, stop func() error, err error) {
	if addr == "" {
		return "", func() error { return nil }, nil
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{stack.EtcdEndpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return "", nil, fmt.Errorf("console: etcd client: %w", err)
	}
	con, ln, err := listenConsole(console.Config{Token: token}, addr, cli,
		consoleProducer(stack.KafkaBrokers(), devstack.BroadcastsTopic, connect.Kafka{}, nil), c.log)
	if err != nil {
		cli.Close()
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- con.Serve(ctx, ln) }()
	return "http://" + ln.Addr().String() + "/", func() error {
		cancel()
		err := <-done
		cli.Close()
		return err
	}, nil
}

// printDev tells the user where everything is and how to poke at it. The
// address lines start with a fixed word so scripts can read them.
func printDev(w io.Writer, etcd, kafka, sinkURL, consoleURL, token string, fakes []*pushFake, pushDir string) {
	consoleLine, consoleNote := "", ""
	if consoleURL != "" {
		consoleLine = "  console " + consoleURL + "\n"
		consoleNote = "The console (open it in a browser) shows every broadcast live; to pause,\n" +
			"resume, cancel and trigger from it, sign in with the access token\n  " + token + "\n\n"
	}
	fmt.Fprintf(w, `Herald dev stack
  etcd   %[1]s
  kafka  %[2]s
  sink   %[3]s
%[7]s
Topics: %[4]s (triggers), %[5]s (failed deliveries),
        %[6]s (summaries of finished broadcasts).

Try:
  etcdctl --endpoints %[1]s put /herald/hello world
  etcdctl --endpoints %[1]s watch --prefix /herald/
  echo 'spring-sale:{}' | kcat -P -b %[2]s -t %[4]s -K:
  kcat -C -b %[2]s -t %[4]s -e -f '%%k %%s\n'
  kcat -C -b %[2]s -t %[6]s -e -f '%%k %%s\n'
  curl -s -X POST -H 'Idempotency-Key: k1' -d '{"broadcast_id":"b"}' %[3]s/push
  curl -s %[3]s/stats

Other herald commands reach etcd and Kafka with --etcd %[1]s --kafka %[2]s
(their defaults when dev listens on its default addresses). Workers and
trigger send only to allowed endpoints; for this sink:
  export HERALD_ALLOW_ENDPOINT='http://127.0.0.1:*'

`, etcd, kafka, sinkURL, devstack.BroadcastsTopic, devstack.DeadLettersTopic, devstack.ReportsTopic, consoleLine)
	fmt.Fprintf(w, "Push providers (fakes checking what the real ones check; dead tokens go to %s):\n", devstack.InvalidTokensTopic)
	for _, f := range fakes {
		fmt.Fprint(w, f.howTo(pushDir))
	}
	fmt.Fprintf(w, `Workers reach them with:
  herald worker %s

%s`, pushWorkerFlags(pushDir), consoleNote)
}

// printDevPostgres tells the user about the PostgreSQL server and its
// sample audience; its first line starts with a fixed word too.
func printDevPostgres(w io.Writer, url string) {
	fmt.Fprintf(w, `  postgres %[1]s

Sample audience: table %[2]s, %[3]d subscribers, prepared for range reads.
  psql '%[1]s' -c 'SELECT * FROM %[2]s LIMIT 3'
Workers reach it through a secret, never a URL in the trigger:
  export HERALD_SECRET_AUDIENCE_DB='%[1]s'
and a spec names it:
  "audience": {"source": "postgres", "connection": "audience-db", "table": "%[2]s",
               "locale_column": "locale", "reachable_column": "reachable", "attribute_columns": ["name"]}

`, url, devPostgresTable, devPostgresRows)
}
