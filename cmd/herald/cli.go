package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/connect"
	"github.com/herald-dev/herald/trigger"
)

// errUsage marks an error in how a command was called; it exits with
// status 2 and a pointer to the command's help.
var errUsage = errors.New("usage")

// envPrefix starts every flag's environment twin: --log-level is
// HERALD_LOG_LEVEL.
const envPrefix = "HERALD_"

// Defaults shared by every command, matching what `herald dev` listens on.
// The etcd prefix and the trigger topic default to coordinator.DefaultPrefix
// and trigger.DefaultTopic, the components' own defaults.
const (
	defaultEtcd  = "http://127.0.0.1:2379"
	defaultKafka = "127.0.0.1:9092"
)

// command is one `herald <name>` subcommand.
type command struct {
	name    string // as typed after herald
	summary string // one line for `herald --help`
	usage   string // synopsis, such as "herald status [ID] [flags]"
	example string // one or more example command lines
	details string // optional paragraphs for `herald <name> --help`
	// cluster gives the command --etcd, --kafka, --prefix and --topic.
	cluster bool
	// setup declares the command's own flags on fs and returns what runs
	// once they are parsed. c carries the shared flags' values, and its
	// logger is ready when run is called.
	setup func(fs *flag.FlagSet, c *common) runFunc
}

// runFunc runs a command with its positional arguments. ctx ends on
// SIGINT or SIGTERM; returning nil exits 0.
type runFunc func(ctx context.Context, args []string) error

// common holds what every command shares: flag values, output and logger.
type common struct {
	etcd, kafka, prefix, topic string // set only for cluster commands
	// How to authenticate to etcd and Kafka; set only for cluster
	// commands (see clusterSecurityFlags).
	etcdTLS                connect.TLSFiles
	etcdUser, etcdPassword string
	kafkaSec               connect.Kafka
	getenv                 func(string) string

	logLevel  slog.Level
	logFormat string
	log       *slog.Logger // built after the flags are parsed

	stdout, stderr io.Writer
}

// etcdEndpoints splits --etcd's comma-separated URLs.
func (c *common) etcdEndpoints() []string { return splitList(c.etcd) }

// kafkaBrokers splits --kafka's comma-separated host:port list.
func (c *common) kafkaBrokers() []string { return splitList(c.kafka) }

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// cli dispatches herald's command line to a table of commands.
type cli struct {
	commands       []command
	stdout, stderr io.Writer
	getenv         func(string) string
}

// run executes args (without the program name) and returns the exit
// status.
func (a *cli) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		a.printCommands(a.stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			return a.run(ctx, []string{args[1], "--help"})
		}
		a.printCommands(a.stdout)
		return 0
	}
	cmd, ok := a.find(args[0])
	if !ok && len(args) > 1 {
		// A command of two words, such as "audience prepare".
		if cmd, ok = a.find(args[0] + " " + args[1]); ok {
			args = args[1:]
		}
	}
	if !ok {
		if group := a.group(args[0]); len(group) > 0 {
			w, code := a.stderr, 2
			if len(args) > 1 && (args[1] == "-h" || args[1] == "-help" || args[1] == "--help") {
				w, code = a.stdout, 0
			}
			fmt.Fprintf(w, "Usage: herald %s <command> [arguments] [flags]\n\nCommands:\n", args[0])
			a.printTable(w, group)
			fmt.Fprintf(w, "\nRun 'herald %s <command> --help' for a command's flags.\n", args[0])
			return code
		}
		fmt.Fprintf(a.stderr, "herald: unknown command %q\nRun 'herald --help' for the list.\n", args[0])
		return 2
	}
	c := &common{stdout: a.stdout, stderr: a.stderr, getenv: a.getenv}
	fs := a.flagSet(cmd, c)
	run := cmd.setup(fs, c)
	pos, err := a.parse(fs, args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
		a.printHelp(a.stdout, cmd, fs)
		return 0
	case err != nil:
		return a.usageError(cmd, err)
	}
	if c.log, err = newLogger(a.stderr, c.logLevel, c.logFormat); err != nil {
		return a.usageError(cmd, err)
	}
	if err := run(ctx, pos); err != nil {
		if errors.Is(err, errUsage) {
			return a.usageError(cmd, err)
		}
		fmt.Fprintf(a.stderr, "herald %s: %v\n", cmd.name, err)
		return 1
	}
	return 0
}

func (a *cli) find(name string) (command, bool) {
	for _, c := range a.commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// group is the commands whose first word is word, for commands of two
// words.
func (a *cli) group(word string) []command {
	var out []command
	for _, c := range a.commands {
		if strings.HasPrefix(c.name, word+" ") {
			out = append(out, c)
		}
	}
	return out
}

func (a *cli) usageError(cmd command, err error) int {
	fmt.Fprintf(a.stderr, "herald %s: %v\nRun 'herald %s --help' for usage.\n", cmd.name, err, cmd.name)
	return 2
}

// flagSet makes cmd's flag set with the shared flags declared.
func (a *cli) flagSet(cmd command, c *common) *flag.FlagSet {
	fs := flag.NewFlagSet("herald "+cmd.name, flag.ContinueOnError)
	// Errors and help are printed by run, in one place and format.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if cmd.cluster {
		fs.StringVar(&c.etcd, "etcd", defaultEtcd, "etcd client `URLs`, comma-separated")
		fs.StringVar(&c.kafka, "kafka", defaultKafka, "Kafka bootstrap `brokers`, comma-separated host:port")
		fs.StringVar(&c.prefix, "prefix", coordinator.DefaultPrefix, "etcd key `prefix` under which Herald keeps its state")
		fs.StringVar(&c.topic, "topic", trigger.DefaultTopic, "Kafka `topic` carrying broadcast triggers")
		clusterSecurityFlags(fs, c)
	}
	fs.TextVar(&c.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "log `format` on stderr: text or json")
	return fs
}

// parse fills fs from the environment twins, then from args, so a flag on
// the command line wins. Flags may come before, between or after the
// positional arguments, which it returns; "--" ends the flags.
func (a *cli) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v := a.getenv(name); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := args[:len(args)-len(rest)]; len(used) > 0 && used[len(used)-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// envName is the environment twin of a flag.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func newLogger(w io.Writer, level slog.Level, format string) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("%w: log format %q is not text or json", errUsage, format)
}

func (a *cli) printCommands(w io.Writer) {
	fmt.Fprint(w, "Herald delivers one broadcast to millions of subscribers from a fleet of workers.\n\n")
	fmt.Fprint(w, "Usage: herald <command> [arguments] [flags]\n\nCommands:\n")
	a.printTable(w, a.commands)
	fmt.Fprint(w, "\nRun 'herald <command> --help' for a command's flags. Every flag can also be\n"+
		"set through its environment twin: --log-level is "+envName("log-level")+".\n")
}

func (a *cli) printTable(w io.Writer, cmds []command) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range cmds {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
}

func (a *cli) printHelp(w io.Writer, cmd command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "%s\n\nUsage: %s\n", cmd.summary, cmd.usage)
	if cmd.details != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.details))
	}
	if cmd.example != "" {
		fmt.Fprint(w, "\nExample:\n")
		for _, l := range strings.Split(strings.TrimSpace(cmd.example), "\n") {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	fmt.Fprint(w, "\nFlags (each also read from the environment variable shown):\n")
	var flags []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f) })
	sort.Slice(flags, func(i, j int) bool { return flags[i].Name < flags[j].Name })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, f := range flags {
		kind, usage := flag.UnquoteUsage(f)
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(tw, "  --%s %s\t$%s\t%s%s\n", f.Name, kind, envName(f.Name), usage, def)
	}
	tw.Flush()
}
