package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/allowlist"
	"github.com/herald-dev/herald/console"
	"github.com/herald-dev/herald/internal/connect"
	"github.com/herald-dev/herald/spec"
	"github.com/herald-dev/herald/trigger"
)

func consoleCommand() command {
	return command{
		name:    "console",
		summary: "Serve the web console: every broadcast live in a browser, with pause, resume, cancel and trigger.",
		usage:   "herald console [--listen ADDR] [--access-token-file FILE] [flags]",
		example: "herald console\n" +
			"HERALD_ACCESS_TOKEN=$(openssl rand -hex 16) herald console --allow-endpoint 'https://*.push.example.com'\n" +
			"herald console --listen 0.0.0.0:8070 --allow-host console.example.com --access-token-file /run/secrets/console-token",
		details: `Serves a web page listing the broadcasts (live and recently finished) and a
page per broadcast, updated live from one etcd watch whatever the number of
open pages. Open the printed URL in a browser.

Without an access token the console is read-only. With one (--access-token,
better its environment twin HERALD_ACCESS_TOKEN, or --access-token-file),
whoever signs in with it, or sends it as "Authorization: Bearer TOKEN", may
pause, resume and cancel broadcasts and trigger new ones; every action is
logged. Triggers are checked as herald trigger checks them (with
--allow-endpoint, against that list too) and produced to --topic.

It listens on loopback by default. To serve others, put it behind a proxy
that terminates TLS (add --secure-cookie) or at least listen on a private
address, give it a token, and name the host browsers use with --allow-host:
requests for any other host name are refused (DNS rebinding).`,
		cluster: true,
		setup: func(fs *flag.FlagSet, c *common) runFunc {
			listen := fs.String("listen", console.DefaultListen, "`address` to serve the console on")
			token := fs.String("access-token", "", "access `token` that enables actions (prefer the environment twin or --access-token-file; at least 16 characters)")
			tokenFile := fs.String("access-token-file", "", "`file` holding the access token (surrounding white space ignored)")
			hosts := fs.String("allow-host", "", "host `names` browsers reach the console by, comma-separated, besides IP addresses and localhost (* for any)")
			secure := fs.Bool("secure-cookie", false, "mark the session cookie Secure (browsers reach the console over HTTPS)")
			interval := fs.Duration("interval", console.DefaultInterval, "shortest `time` between two reads of one broadcast's status")
			allowPatterns, allowFile := allowFlags(fs)
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return fmt.Errorf("%w: unexpected argument %q", errUsage, args[0])
				}
				tok, err := accessToken(*token, *tokenFile)
				if err != nil {
					return err
				}
				var allow *allowlist.List
				if *allowPatterns != "" || *allowFile != "" {
					if allow, err = endpointAllowlist(*allowPatterns, *allowFile); err != nil {
						return err
					}
				}
				kc, err := c.kafkaConfig()
				if err != nil {
					return err
				}
				cli, err := etcdClient(c)
				if err != nil {
					return err
				}
				defer cli.Close()
				cfg := console.Config{Prefix: c.prefix, Token: tok, Interval: *interval, Hosts: splitList(*hosts), Secure: *secure}
				return runConsole(ctx, c.stdout, c.log, cfg, *listen, cli, consoleProducer(c.kafkaBrokers(), c.topic, kc, allow))
			}
		},
	}
}

// accessToken is the token from the flag (or its environment twin) or
// from a file; both given is an error.
func accessToken(flagValue, file string) (string, error) {
	if file == "" {
		return flagValue, nil
	}
	if flagValue != "" {
		return "", fmt.Errorf("%w: give the access token once: --access-token or --access-token-file", errUsage)
	}
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("access token: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, connect.MaxSecretBytes+1))
	if err != nil {
		return "", fmt.Errorf("access token %s: %w", file, err)
	}
	if len(b) > connect.MaxSecretBytes {
		return "", fmt.Errorf("access token %s: more than %d bytes", file, connect.MaxSecretBytes)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("access token %s: the file is empty", file)
	}
	return tok, nil
}

// randomToken makes an access token for a console that dev or demo runs.
func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// consoleProducer produces the console's triggers as herald trigger does,
// each over a Kafka transport of its own (Produce closes it).
func consoleProducer(brokers []string, topic string, kc connect.Kafka, allow *allowlist.List) console.Producer {
	return console.ProducerFunc(func(ctx context.Context, raw []byte) (spec.Spec, error) {
		tr, err := kc.Transport()
		if err != nil {
			return spec.Spec{}, err
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return trigger.Produce(ctx, trigger.Config{Brokers: brokers, Topic: topic, Transport: tr, Allow: allow}, raw)
	})
}

// runConsole serves a console on listen until ctx ends, after printing
// its URL.
func runConsole(ctx context.Context, out io.Writer, log *slog.Logger, cfg console.Config, listen string,
	cli *clientv3.Client, produce console.Producer) error {
	con, ln, err := listenConsole(cfg, listen, cli, produce, log)
	if err != nil {
		return err
	}
	mode := "read-only (no access token)"
	if cfg.Token != "" {
		mode = "actions enabled for the access token"
	}
	fmt.Fprintf(out, "console http://%s/  %s\n", ln.Addr(), mode)
	log.Info("console ready", "addr", ln.Addr().String(), "actions", cfg.Token != "")
	if err := con.Serve(ctx, ln); err != nil {
		return err
	}
	log.Info("console stopped")
	return nil
}

// listenConsole builds a console and takes its port. Serving beyond
// loopback is allowed but warned about.
func listenConsole(cfg console.Config, listen string, cli *clientv3.Client, produce console.Producer, log *slog.Logger) (*console.Console, net.Listener, error) {
	con, err := console.New(cfg, cli, produce, log.With("component", "console"))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, nil, fmt.Errorf("console listen: %w", err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		if cfg.Token == "" {
			log.Warn("the console listens beyond loopback: whoever reaches it sees every broadcast", "addr", tcp.String())
		} else if !cfg.Secure {
			log.Warn("the console listens beyond loopback over plain HTTP: the access token and session travel in the clear; put it behind TLS", "addr", tcp.String())
		}
	}
	return con, ln, nil
}
