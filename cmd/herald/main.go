// Command herald is Herald's one binary: it runs fleet members, triggers
// and watches broadcasts, and runs the local services needed to try Herald
// out. It only parses flags, builds components and runs them; the work is
// done in Herald's packages.
package main

import (
	"context"

	"github.com/herald-dev/herald/coordinator"
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
		demoCommand(),
		workerCommand(),
		triggerCommand(),
		statusCommand(),
		stateCommand(coordinator.Pause, "Pause a broadcast: workers stop sending within a second, keeping their place.",
			"Workers stop reading new subscribers within a second; messages already in flight finish. The broadcast keeps its claims and checkpoints; resume continues where it stopped."),
		stateCommand(coordinator.Resume, "Resume a paused broadcast.", "Workers continue from where they paused."),
		stateCommand(coordinator.Cancel, "Cancel a broadcast for good: nothing more is sent.",
			"Cancelling is final: workers stop within a second and the broadcast stays cancelled with the counts it reached."),
		consoleCommand(),
		audiencePrepareCommand(),
		audienceImportCommand(),
		devCommand(),
		sinkCommand(),
	}
}
