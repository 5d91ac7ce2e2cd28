package console

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/herald-dev/herald/coordinator"
)

// childEnv, when set to an etcd endpoint, makes the test binary run a
// console alone, in a process of its own, for TestCostOfFiftyBrowsers
// to measure.
const childEnv = "HERALD_CONSOLE_CHILD_ETCD"

// childCounts is what the console process reports of its etcd traffic.
type childCounts struct {
	Requests      int64 `json:"requests"`       // unary calls: reads, transactions
	Streams       int64 `json:"streams"`        // streams opened: watches
	WatchMessages int64 `json:"watch_messages"` // messages received on them
}

// runChild serves a console on a free loopback port over the etcd at
// endpoint, prints "listening ADDR", prints its etcd counts as a JSON
// line for every line read from stdin, and stops at stdin's end.
func runChild(endpoint string) int {
	var n childCounts
	unary := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		atomic.AddInt64(&n.Requests, 1)
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	stream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		atomic.AddInt64(&n.Streams, 1)
		s, err := streamer(ctx, desc, cc, method, opts...)
		return countingStream{s, &n.WatchMessages}, err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(unary), grpc.WithChainStreamInterceptor(stream)}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cli.Close()
	c, err := New(Config{}, cli, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx, ln) }()
	fmt.Println("listening", ln.Addr())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		b, _ := json.Marshal(childCounts{atomic.LoadInt64(&n.Requests), atomic.LoadInt64(&n.Streams), atomic.LoadInt64(&n.WatchMessages)})
		fmt.Println(string(b))
	}
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type countingStream struct {
	grpc.ClientStream
	n *int64
}

func (s countingStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil {
		atomic.AddInt64(s.n, 1)
	}
	return err
}

// consoleProcess is the console under measure, run by runChild.
type consoleProcess struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	addr string
}

func startConsoleProcess(t *testing.T, etcd string) *consoleProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+etcd)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &consoleProcess{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	if !p.out.Scan() || !strings.HasPrefix(p.out.Text(), "listening ") {
		t.Fatalf("console process: %q", p.out.Text())
	}
	p.addr = strings.TrimPrefix(p.out.Text(), "listening ")
	t.Cleanup(func() {
		p.in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("console process: %v", err)
		}
	})
	return p
}

func (p *consoleProcess) counts(t *testing.T) childCounts {
	t.Helper()
	fmt.Fprintln(p.in)
	if !p.out.Scan() {
		t.Fatal("console process: no counts")
	}
	var c childCounts
	if err := json.Unmarshal(p.out.Bytes(), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// cpu is the process's user and system CPU time so far, from /proc.
func (p *consoleProcess) cpu(t *testing.T) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}

// TestCostOfFiftyBrowsers measures what a console costs with no page open
// and with 50 open on a running broadcast: CPU of its process and its etcd
// requests, printed, not asserted (docs/PERFORMANCE.md). It takes about
// 40 s, so it runs only when HERALD_CONSOLE_COST is set:
//
//	HERALD_CONSOLE_COST=1 go test -count=1 -run TestCostOfFiftyBrowsers -v ./console
func TestCostOfFiftyBrowsers(t *testing.T) {
	if os.Getenv("HERALD_CONSOLE_COST") == "" {
		t.Skip("set HERALD_CONSOLE_COST=1 to measure the console's cost (about 40 s)")
	}
	const browsers, window = 50, 12 * time.Second
	s := newStack(t)
	s.startWorker("w1", true)
	s.startWorker("w2", false)
	p := startConsoleProcess(t, s.etcd)
	// About 45 s of sending at 3,000/s: it runs through both windows.
	if _, err := s.producer().Produce(context.Background(), []byte(s.synthetic("cost", 135_000, 3000))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the broadcast running", func() bool {
		st, err := s.reg.Status(context.Background(), "cost")
		return err == nil && st.State == coordinator.StateRunning && st.Counters.Delivered > 0
	})
	time.Sleep(2 * time.Second) // past the start's burst of claims

	measure := func(name string, clients int) {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var events, bytes atomic.Int64
		for range clients {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/events", nil)
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer resp.Body.Close()
				sc := bufio.NewScanner(resp.Body)
				sc.Buffer(make([]byte, 64<<10), 1<<20)
				for sc.Scan() {
					bytes.Add(int64(len(sc.Bytes()) + 1))
					if strings.HasPrefix(sc.Text(), "event: ") {
						events.Add(1)
					}
				}
			}()
		}
		time.Sleep(time.Second) // the snapshots
		cpu0, n0, at0 := p.cpu(t), p.counts(t), time.Now()
		ev0, by0 := events.Load(), bytes.Load()
		time.Sleep(window)
		cpu1, n1, at1 := p.cpu(t), p.counts(t), time.Now()
		ev1, by1 := events.Load(), bytes.Load()
		cancel()
		wg.Wait()
		secs := at1.Sub(at0).Seconds()
		st, _ := s.reg.Status(context.Background(), "cost")
		t.Logf("%-12s %2d pages: console CPU %.3f s in %.1f s (%.2f%% of a core); etcd %d requests (%.1f/s), %d watch messages, %d streams opened; "+
			"pages got %d events (%.1f/s each), %d KB; broadcast %s at %s delivered",
			name, clients, (cpu1 - cpu0).Seconds(), secs, 100*(cpu1-cpu0).Seconds()/secs,
			n1.Requests-n0.Requests, float64(n1.Requests-n0.Requests)/secs, n1.WatchMessages-n0.WatchMessages, n1.Streams-n0.Streams,
			ev1-ev0, float64(ev1-ev0)/secs/float64(max(clients, 1)), (by1-by0)>>10, st.State, fmt.Sprint(st.Counters.Delivered))
	}
	measure("no page", 0)
	measure("50 browsers", browsers)
	if err := s.reg.SetState(context.Background(), "cost", coordinator.Cancel); err != nil {
		t.Fatal(err)
	}
}
