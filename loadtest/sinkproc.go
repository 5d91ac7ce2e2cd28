package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/herald-dev/herald/sink"
)

// sinkProc is a `herald sink` process: the endpoint every sender of a run
// posts to, in its own process so that its counting competes for the CPU
// like a real endpoint's would, and so that its counts are independent of
// the senders.
type sinkProc struct {
	addr   string // host:port
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	err    error // set before exited closes
	client *http.Client
}

// startSink runs `herald sink` with extra flags on a free loopback port and
// waits until /stats answers.
func startSink(ctx context.Context, binary string, flags []string, logPath string) (*sinkProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("loadtest: sink log: %w", err)
	}
	cmd := exec.Command(binary, append([]string{"sink", "--listen", addr}, flags...)...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("loadtest: start sink: %w", err)
	}
	s := &sinkProc{addr: addr, cmd: cmd, log: lf, exited: make(chan struct{}), client: &http.Client{Timeout: 10 * time.Second}}
	go func() { // owned by s: close ends in <-s.exited
		s.err = cmd.Wait()
		lf.Close()
		close(s.exited)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := s.stats(ctx); err == nil {
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("loadtest: sink exited while starting: %v (log %s)", s.err, logPath)
		case <-ctx.Done():
			s.close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.close()
			return nil, fmt.Errorf("loadtest: sink not answering after 15s (log %s)", logPath)
		}
	}
}

// url is the delivery URL at path.
func (s *sinkProc) url(path string) string { return "http://" + s.addr + path }

func (s *sinkProc) stats(ctx context.Context) (sink.Stats, error) {
	var st sink.Stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url("/stats"), nil)
	if err != nil {
		return st, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return st, fmt.Errorf("loadtest: sink stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("loadtest: sink stats: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("loadtest: sink stats: %w", err)
	}
	return st, nil
}

// reset clears the sink's counters, key set and per-second series, so a
// scenario's chart holds its own deliveries only.
func (s *sinkProc) reset(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url("/reset"), nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("loadtest: sink reset: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("loadtest: sink reset: %s", resp.Status)
	}
	return nil
}

// close stops the sink with SIGTERM, or SIGKILL after 10 s.
func (s *sinkProc) close() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.client.CloseIdleConnections()
}

// errNoFreePort is only returned if the kernel refuses a loopback listener.
var errNoFreePort = errors.New("loadtest: no free loopback port")

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("%w: %w", errNoFreePort, err)
	}
	addr := l.Addr().String()
	return addr, l.Close()
}
