package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/pgtest"
	"github.com/herald-dev/herald/trigger"
)

// The PostgreSQL cluster the audience prepare test starts is stopped
// before goleak looks.
func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Wrap(m)) }

// syncBuffer is a bytes.Buffer that a command may write while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// probe is a command that records what it was given.
type probe struct {
	args  []string
	watch bool
	n     int
	c     *common
	err   error // returned by run
}

func (p *probe) command() command {
	return command{
		name:    "probe",
		summary: "Record flags for a test.",
		usage:   "herald probe [ID] [flags]",
		example: "herald probe spring-sale --watch",
		cluster: true,
		setup: func(fs *flag.FlagSet, c *common) runFunc {
			fs.BoolVar(&p.watch, "watch", false, "keep watching")
			fs.IntVar(&p.n, "n", 1, "how many `times`")
			return func(_ context.Context, args []string) error {
				p.args, p.c = args, c
				c.log.Info("probe ran")
				return p.err
			}
		},
	}
}

func runCLI(env map[string]string, cmds []command, args ...string) (code int, stdout, stderr string) {
	var out, errOut syncBuffer
	a := &cli{commands: cmds, stdout: &out, stderr: &errOut, getenv: func(k string) string { return env[k] }}
	code = a.run(context.Background(), args)
	return code, out.String(), errOut.String()
}

func TestFlagsAnywhereAndEnvTwins(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		pos   []string
		watch bool
		n     int
		etcd  string
		kafka string
	}{
		{name: "flag after positional", args: []string{"spring-sale", "--watch"}, pos: []string{"spring-sale"}, watch: true, n: 1},
		{name: "flag before positional", args: []string{"--watch", "spring-sale"}, pos: []string{"spring-sale"}, watch: true, n: 1},
		{name: "flags between", args: []string{"a", "-n", "3", "b", "--n=4"}, pos: []string{"a", "b"}, n: 4},
		{name: "double dash ends flags", args: []string{"a", "--", "--watch", "-n"}, pos: []string{"a", "--watch", "-n"}, n: 1},
		{name: "dash is positional", args: []string{"-", "--watch"}, pos: []string{"-"}, watch: true, n: 1},
		{name: "defaults", etcd: defaultEtcd, kafka: defaultKafka, n: 1},
		{
			name: "env twins", env: map[string]string{"HERALD_ETCD": "http://e1:2379,http://e2:2379", "HERALD_WATCH": "true", "HERALD_N": "7"},
			etcd: "http://e1:2379,http://e2:2379", watch: true, n: 7,
		},
		{
			name: "flag wins over env", env: map[string]string{"HERALD_KAFKA": "env:9092", "HERALD_N": "7"},
			args: []string{"--kafka", "flag:9092", "-n", "2"}, kafka: "flag:9092", n: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &probe{}
			code, _, stderr := runCLI(tt.env, []command{p.command()}, append([]string{"probe"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if fmt.Sprint(p.args) != fmt.Sprint(tt.pos) || p.watch != tt.watch || p.n != tt.n {
				t.Errorf("got args %q watch %v n %d, want %q %v %d", p.args, p.watch, p.n, tt.pos, tt.watch, tt.n)
			}
			if tt.etcd != "" && p.c.etcd != tt.etcd {
				t.Errorf("etcd %q, want %q", p.c.etcd, tt.etcd)
			}
			if tt.kafka != "" && p.c.kafka != tt.kafka {
				t.Errorf("kafka %q, want %q", p.c.kafka, tt.kafka)
			}
			if p.c.prefix != coordinator.DefaultPrefix || p.c.topic != trigger.DefaultTopic {
				t.Errorf("prefix %q topic %q", p.c.prefix, p.c.topic)
			}
		})
	}
}

func TestListFlagsSplit(t *testing.T) {
	c := &common{etcd: " http://a:1, http://b:2 ,", kafka: "k:9092"}
	if got := c.etcdEndpoints(); fmt.Sprint(got) != "[http://a:1 http://b:2]" {
		t.Errorf("etcd endpoints %q", got)
	}
	if got := c.kafkaBrokers(); fmt.Sprint(got) != "[k:9092]" {
		t.Errorf("kafka brokers %q", got)
	}
}

func TestExitStatusesAndHelp(t *testing.T) {
	tests := []struct {
		name       string
		env        map[string]string
		runErr     error
		args       []string
		code       int
		stdoutHas  []string
		stderrHas  []string
		stdoutNone bool
	}{
		{name: "no command", args: nil, code: 2, stderrHas: []string{"Commands:", "probe", "Record flags"}},
		{name: "herald --help", args: []string{"--help"}, code: 0, stdoutHas: []string{"Commands:", "probe  Record flags for a test.", "HERALD_LOG_LEVEL"}},
		{name: "herald help probe", args: []string{"help", "probe"}, code: 0, stdoutHas: []string{"Usage: herald probe [ID] [flags]"}},
		{name: "unknown command", args: []string{"nope"}, code: 2, stderrHas: []string{`unknown command "nope"`}},
		{
			name: "command help", args: []string{"probe", "--help"}, code: 0,
			stdoutHas: []string{
				"Record flags for a test.", "Usage: herald probe [ID] [flags]", "Example:\n  herald probe spring-sale --watch",
				"--etcd URLs", "$HERALD_ETCD", "(default http://127.0.0.1:2379)", "--kafka brokers", "$HERALD_KAFKA",
				"--prefix prefix", "$HERALD_PREFIX", "--topic topic", "$HERALD_TOPIC", "--log-level level", "$HERALD_LOG_LEVEL",
				"--log-format format", "$HERALD_LOG_FORMAT", "--n times", "$HERALD_N", "--watch", "$HERALD_WATCH",
			},
		},
		{name: "short help after positional", args: []string{"probe", "x", "-h"}, code: 0, stdoutHas: []string{"Usage: herald probe"}},
		{name: "unknown flag", args: []string{"probe", "--nope"}, code: 2, stderrHas: []string{"-nope", "herald probe --help"}, stdoutNone: true},
		{name: "bad env value", env: map[string]string{"HERALD_N": "many"}, args: []string{"probe"}, code: 2, stderrHas: []string{`HERALD_N="many"`}},
		{name: "bad log format", args: []string{"probe", "--log-format", "xml"}, code: 2, stderrHas: []string{`"xml"`}},
		{name: "usage error from run", runErr: fmt.Errorf("%w: needs an ID", errUsage), args: []string{"probe"}, code: 2, stderrHas: []string{"needs an ID", "--help"}},
		{name: "failure from run", runErr: errors.New("etcd unreachable"), args: []string{"probe"}, code: 1, stderrHas: []string{"herald probe: etcd unreachable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &probe{err: tt.runErr}
			code, stdout, stderr := runCLI(tt.env, []command{p.command()}, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			for _, s := range tt.stdoutHas {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tt.stderrHas {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			if tt.stdoutNone && stdout != "" {
				t.Errorf("unexpected stdout: %s", stdout)
			}
		})
	}
}

func TestLogLevelAndFormat(t *testing.T) {
	p := &probe{}
	code, _, stderr := runCLI(map[string]string{"HERALD_LOG_FORMAT": "json"}, []command{p.command()}, "probe")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(stderr)), &rec); err != nil || rec["msg"] != "probe ran" {
		t.Fatalf("stderr %q is not one JSON log record: %v", stderr, err)
	}
	code, _, stderr = runCLI(nil, []command{p.command()}, "probe", "--log-level", "warn")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q: an info record got through at warn", code, stderr)
	}
}

// The real table must hold commands whose names are unique and whose help
// renders.
func TestCommandTable(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range commands() {
		if seen[c.name] {
			t.Errorf("command %q listed twice", c.name)
		}
		seen[c.name] = true
		code, stdout, stderr := runCLI(nil, commands(), c.name, "--help")
		if code != 0 || !strings.Contains(stdout, "Usage: "+c.usage) || !strings.Contains(stdout, "Example:") {
			t.Errorf("%s --help: exit %d\n%s%s", c.name, code, stdout, stderr)
		}
	}
}
