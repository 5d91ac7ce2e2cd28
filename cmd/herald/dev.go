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

	"github.com/herald-dev/herald/internal/devstack"
	"github.com/herald-dev/herald/sink"
)

func devCommand() command {
	return command{
		name:    "dev",
		summary: "Run an embedded etcd, Kafka broker and sink on loopback until interrupted.",
		usage:   "herald dev [flags]",
		example: "herald dev\n" +
			"herald dev --etcd-listen 127.0.0.1:12379 --kafka-listen 127.0.0.1:19092 --sink-listen 127.0.0.1:18080",
		details: `Starts a single-node etcd server (compacting its history every minute),
a single-broker Kafka-protocol broker with the topics herald.broadcasts,
herald.deadletters and herald.reports, and the reference sink, prints their
addresses and how to reach them with etcdctl, kcat and curl, and runs until
SIGINT or SIGTERM. Kafka data lives in memory and etcd data in a temporary
directory; both are gone when it stops. On the default addresses the other
herald commands need no flags. Port 0 picks a free port.

It also runs a fake APNs, FCM and Web Push service on free loopback ports
(docs/PROVIDERS.md; herald sink --mode runs one on a port of your choice),
writes the secrets their triggers name and their certificate to a temporary
directory, and prints the worker flags, trigger endpoint and audience line
that reach each, and the topic herald.invalid-tokens that dead tokens go to.`,
		setup: func(fs *flag.FlagSet, c *common) runFunc {
			etcdAddr := fs.String("etcd-listen", "127.0.0.1:2379", "`address` etcd serves clients on")
			kafkaAddr := fs.String("kafka-listen", defaultKafka, "`address` of the Kafka broker")
			sinkAddr := fs.String("sink-listen", defaultSinkListen, "`address` of the sink")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return fmt.Errorf("%w: unexpected argument %q", errUsage, args[0])
				}
				return runDev(ctx, c, *etcdAddr, *kafkaAddr, *sinkAddr)
			}
		},
	}
}

func runDev(ctx context.Context, c *common, etcdAddr, kafkaAddr, sinkAddr string) (err error) {
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
	pushDir, err := os.MkdirTemp("", "herald-dev-push-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(pushDir)
	for _, mode := range []string{modeAPNs, modeFCM, modeWebPush} {
		f, err := startPushFake(mode, nil, pushDir)
		if err != nil {
			return err
		}
		defer f.Close()
		fakes = append(fakes, f)
	}
	printDev(c.stdout, stack.EtcdEndpoint(), strings.Join(stack.KafkaBrokers(), ","), "http://"+ln.Addr().String(), fakes, pushDir)
	c.log.Info("dev stack ready", "etcd", stack.EtcdEndpoint(), "kafka", stack.KafkaBrokers(), "sink", ln.Addr().String())
	if err := snk.Run(ctx, ln); err != nil {
		return err
	}
	logStats(c, snk.Stats())
	return nil
}

// printDev tells the user where everything is and how to poke at it. The
// three address lines start with a fixed word so scripts can read them.
func printDev(w io.Writer, etcd, kafka, sinkURL string, fakes []*pushFake, pushDir string) {
	fmt.Fprintf(w, `Herald dev stack
  etcd   %[1]s
  kafka  %[2]s
  sink   %[3]s

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

`, etcd, kafka, sinkURL, devstack.BroadcastsTopic, devstack.DeadLettersTopic, devstack.ReportsTopic)
	fmt.Fprintf(w, "Push providers (fakes checking what the real ones check; dead tokens go to %s):\n", devstack.InvalidTokensTopic)
	for _, f := range fakes {
		fmt.Fprint(w, f.howTo(pushDir))
	}
	fmt.Fprintf(w, `Workers reach them with:
  herald worker %s

Ready. Press Ctrl-C to stop.
`, pushWorkerFlags(pushDir))
}
