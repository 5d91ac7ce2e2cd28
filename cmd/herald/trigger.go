package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/herald-dev/herald/allowlist"
	"github.com/herald-dev/herald/trigger"
)

func triggerCommand() command {
	return command{
		name:    "trigger",
		summary: "Validate a broadcast spec and produce it to the trigger topic.",
		usage:   "herald trigger SPEC.json | -",
		example: "herald trigger spring-sale.json\nherald trigger spring-sale.json --allow-endpoint 'https://*.push.example.com'\n" +
			`echo '{"id":"hello","audience":{"source":"synthetic","count":1000},"template":{"default_locale":"en","locales":{"en":{"title":"Hi {{.name}}"}}},"endpoint":{"url":"http://127.0.0.1:8080/push"}}' | herald trigger - --allow-endpoint 'http://127.0.0.1:*'`,
		details: `The spec (the trigger section of docs/CONTRACTS.md) is checked
here first: strict JSON, the id, the audience, every template, the endpoint.
A spec that fails is refused with the field and the reason, and nothing is
produced. A valid one is produced with the broadcast id as the key; the
fleet registers it once, so triggering the same spec again is harmless.

With --allow-endpoint or --allow-endpoint-file, the endpoint is also checked
against that list, which should be the workers' own: a spec the fleet would
reject for its endpoint is then refused here first. Without them the
workers alone decide (theirs refuse every endpoint unless configured).`,
		cluster: true,
		setup: func(fs *flag.FlagSet, c *common) runFunc {
			allowPatterns, allowFile := allowFlags(fs)
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 {
					return fmt.Errorf("%w: want one spec file, or - for standard input", errUsage)
				}
				// No list given: the workers' list decides, not an empty one here.
				var allow *allowlist.List
				if *allowPatterns != "" || *allowFile != "" {
					var err error
					if allow, err = endpointAllowlist(*allowPatterns, *allowFile); err != nil {
						return err
					}
				}
				kc, err := c.kafkaConfig()
				if err != nil {
					return err
				}
				tr, err := kc.Transport()
				if err != nil {
					return err
				}
				raw, err := readSpec(args[0])
				if err != nil {
					return err
				}
				s, err := trigger.Produce(ctx, trigger.Config{
					Brokers: c.kafkaBrokers(), Topic: c.topic, Transport: tr, Allow: allow,
				}, raw)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "triggered %s on %s; follow it with: herald status %s --watch\n", s.ID, c.topic, s.ID)
				return nil
			}
		},
	}
}

// maxSpecFile bounds what trigger reads; the spec itself is limited to
// 1 MiB, so a larger input is refused by validation without being read whole.
const maxSpecFile = 4 << 20

func readSpec(name string) ([]byte, error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	raw, err := io.ReadAll(io.LimitReader(r, maxSpecFile+1))
	if err != nil {
		return nil, fmt.Errorf("read spec %s: %w", name, err)
	}
	return raw, nil
}
