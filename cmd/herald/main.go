// Command herald is Herald's one binary: it runs fleet members, triggers
// and watches broadcasts, and runs the local services needed to try Herald
// out. It only parses flags, builds components and runs them; the work is
// done in Herald's packages.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := (&cli{commands: commands(), stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}).run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// commands is herald's command table, in the order `herald --help` lists
// them.
func commands() []command {
	return []command{
		devCommand(),
		sinkCommand(),
	}
}
