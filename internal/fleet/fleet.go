// Package fleet runs real `herald worker` processes on this machine for the
// demo and the load tests: started, killed with SIGKILL, paused with
// SIGSTOP, resumed and terminated like a real fleet's members, each with
// its own HTTP port for /metrics and /readyz.
//
// It does not start etcd, Kafka or an endpoint; the caller passes their
// addresses.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Config describes the workers to run.
type Config struct {
	// Binary is the herald executable; "" means this process's own.
	Binary string
	// Etcd and Kafka are passed to every worker.
	Etcd  string
	Kafka string
	// Args are extra `herald worker` flags for every worker.
	Args []string
	// LogDir receives one log file per worker; "" discards their logs.
	LogDir string
	// ReadyTimeout bounds how long a worker may take to report ready
	// (0: 20s).
	ReadyTimeout time.Duration
	// Env, if set, returns extra environment variables (KEY=value) for
	// worker id, added to this process's environment: the load test uses
	// it to give each worker its own HTTP proxy, so it can tell who sent
	// what.
	Env func(id string) []string
}

// Fleet is a set of worker processes. It is safe for concurrent use.
type Fleet struct {
	cfg    Config
	client *http.Client

	mu    sync.Mutex
	procs map[string]*Proc
}

// New checks the configuration; it starts nothing.
func New(cfg Config) (*Fleet, error) {
	if cfg.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("fleet: find own executable: %w", err)
		}
		cfg.Binary = exe
	}
	if cfg.Etcd == "" || cfg.Kafka == "" {
		return nil, errors.New("fleet: etcd and kafka addresses are required")
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 20 * time.Second
	}
	return &Fleet{cfg: cfg, client: &http.Client{Timeout: time.Second}, procs: make(map[string]*Proc)}, nil
}

// Proc is one worker process.
type Proc struct {
	ID       string
	HTTPAddr string
	cmd      *exec.Cmd
	log      *os.File
	exited   chan struct{}
	err      error // set before exited closes
}

// Start launches worker id and waits until its /readyz answers.
func (f *Fleet) Start(ctx context.Context, id string) (*Proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := append([]string{"worker", "--id", id, "--etcd", f.cfg.Etcd, "--kafka", f.cfg.Kafka,
		"--http-addr", addr}, f.cfg.Args...)
	cmd := exec.Command(f.cfg.Binary, args...)
	if f.cfg.Env != nil {
		cmd.Env = append(os.Environ(), f.cfg.Env(id)...)
	}
	// If the process that runs the fleet dies, so do its workers.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &Proc{ID: id, HTTPAddr: addr, cmd: cmd, exited: make(chan struct{})}
	if f.cfg.LogDir != "" {
		lf, err := os.OpenFile(filepath.Join(f.cfg.LogDir, id+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("fleet: log file of %s: %w", id, err)
		}
		p.log, cmd.Stdout, cmd.Stderr = lf, lf, lf
	}
	if err := cmd.Start(); err != nil {
		p.closeLog()
		return nil, fmt.Errorf("fleet: start %s: %w", id, err)
	}
	go func() { // owned by p: Wait/Kill/Terminate all end in <-p.exited
		p.err = cmd.Wait()
		p.closeLog()
		close(p.exited)
	}()
	f.mu.Lock()
	f.procs[id] = p
	f.mu.Unlock()
	if err := f.waitReady(ctx, p); err != nil {
		p.signal(syscall.SIGKILL)
		<-p.exited
		return nil, err
	}
	return p, nil
}

func (f *Fleet) waitReady(ctx context.Context, p *Proc) error {
	deadline := time.Now().Add(f.cfg.ReadyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("fleet: worker %s exited while starting: %v", p.ID, p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := f.client.Get("http://" + p.HTTPAddr + "/readyz")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
	}
	return fmt.Errorf("fleet: worker %s not ready after %v", p.ID, f.cfg.ReadyTimeout)
}

// Kill ends the worker abruptly (SIGKILL): no hand-back, no lease revoke,
// no final checkpoint, like a machine that died.
func (p *Proc) Kill() error {
	p.signal(syscall.SIGKILL)
	<-p.exited
	return nil
}

// Terminate asks the worker to leave gracefully (SIGTERM) and waits up to
// timeout before killing it. It returns the exit error, if any.
func (p *Proc) Terminate(timeout time.Duration) error {
	p.signal(syscall.SIGTERM)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.exited:
		return p.err
	case <-t.C:
		p.signal(syscall.SIGKILL)
		<-p.exited
		return fmt.Errorf("fleet: worker %s did not exit within %v of SIGTERM", p.ID, timeout)
	}
}

// Stop freezes the worker (SIGSTOP); Cont resumes it.
func (p *Proc) Stop() { p.signal(syscall.SIGSTOP) }

// Cont resumes a stopped worker.
func (p *Proc) Cont() { p.signal(syscall.SIGCONT) }

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Pid is the worker's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

func (p *Proc) signal(s syscall.Signal) {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(s)
	}
}

func (p *Proc) closeLog() {
	if p.log != nil {
		p.log.Close()
	}
}

// Procs returns the workers started and not yet exited.
func (f *Fleet) Procs() []*Proc {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*Proc
	for _, p := range f.procs {
		select {
		case <-p.exited:
		default:
			out = append(out, p)
		}
	}
	return out
}

// Close terminates every worker still running, each with the given grace.
func (f *Fleet) Close(grace time.Duration) {
	var wg sync.WaitGroup
	for _, p := range f.Procs() {
		p.Cont() // a stopped process cannot act on SIGTERM
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.Terminate(grace)
		}()
	}
	wg.Wait()
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("fleet: find a free port: %w", err)
	}
	addr := l.Addr().String()
	return addr, l.Close()
}
