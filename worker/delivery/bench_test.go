//go:build unix

// The benchmarks read the process's CPU time with getrusage, which only
// Unix systems have.

package delivery

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// benchInFlight is the worker's default max_in_flight.
const benchInFlight = DefaultMaxInFlight

// benchRig is one loopback endpoint answering 200, a Sender, and the plain
// client Herald measures the Sender against: an http.Client with the same
// per-host pool size and attempt timeout, putting the same bytes on the
// wire (same body and headers, no Accept-Encoding), without retries or
// metrics. So the ratio is the cost of the Sender's own code.
type benchRig struct {
	srv    *httptest.Server
	url    string
	body   []byte
	sender *Sender
	plain  *http.Client
}

func newBenchRig(b *testing.B) *benchRig {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	s, err := New(Config{MaxInFlight: benchInFlight}, nil, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	pool := &http.Transport{MaxIdleConnsPerHost: benchInFlight, DisableCompression: true}
	r := &benchRig{
		srv:    srv,
		url:    srv.URL + "/push",
		body:   []byte(testBody),
		sender: s,
		plain:  &http.Client{Transport: pool, Timeout: DefaultTimeout},
	}
	b.Cleanup(func() {
		s.Close()
		pool.CloseIdleConnections()
		srv.Close()
	})
	return r
}

func (r *benchRig) sendSender() error {
	if res := r.sender.Send(context.Background(), r.url, testKey, r.body); res.Outcome != Delivered {
		return fmt.Errorf("sender: %+v", res)
	}
	return nil
}

func (r *benchRig) sendPlain() error {
	req, err := http.NewRequest(http.MethodPost, r.url, bytes.NewReader(r.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", testKey)
	resp, err := r.plain.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("plain: status %d", resp.StatusCode)
	}
	return nil
}

// cpuTime is the CPU time this process has used, user and system. On a
// machine shared with other work it measures cost far more steadily than
// the wall clock does.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cost is what sending some messages took.
type cost struct{ wall, cpu time.Duration }

func (c *cost) add(d cost) { c.wall += d.wall; c.cpu += d.cpu }

// spread sends n messages from benchInFlight goroutines, as the worker's
// pool does, and returns what that took. The CPU time includes the
// endpoint's, which is the same work for every client.
func spread(b *testing.B, n int, send func() error) cost {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, benchInFlight)
	start, startCPU := time.Now(), cpuTime(b)
	for range benchInFlight {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := send(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	took := cost{wall: time.Since(start), cpu: cpuTime(b) - startCPU}
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return took
}

// BenchmarkSendVsPlain sends b.N messages through the Sender and b.N
// through the plain client, alternating in short rounds so that other load
// on a shared machine hits both alike. It reports both rates and their
// ratio (Herald's target: sender/plain ≥ 0.85), and the CPU time per
// message of each with their ratio, the steadier figure when the machine
// is busy.
func BenchmarkSendVsPlain(b *testing.B) {
	r := newBenchRig(b)
	// Warm both pools so neither pays for dialing inside the timing.
	spread(b, 4*benchInFlight, r.sendPlain)
	spread(b, 4*benchInFlight, r.sendSender)

	const rounds = 16
	per := max(b.N/rounds, 1)
	var plain, sender cost
	b.ResetTimer()
	for i := range rounds {
		if i%2 == 0 {
			plain.add(spread(b, per, r.sendPlain))
			sender.add(spread(b, per, r.sendSender))
		} else {
			sender.add(spread(b, per, r.sendSender))
			plain.add(spread(b, per, r.sendPlain))
		}
	}
	b.StopTimer()
	msgs := float64(per * rounds)
	plainRate, senderRate := msgs/plain.wall.Seconds(), msgs/sender.wall.Seconds()
	b.ReportMetric(plainRate, "plain_msgs/s")
	b.ReportMetric(senderRate, "sender_msgs/s")
	b.ReportMetric(senderRate/plainRate, "ratio")
	plainCPU, senderCPU := plain.cpu.Seconds()*1e6/msgs, sender.cpu.Seconds()*1e6/msgs
	b.ReportMetric(plainCPU, "plain_cpu_µs/msg")
	b.ReportMetric(senderCPU, "sender_cpu_µs/msg")
	b.ReportMetric(plainCPU/senderCPU, "cpu_ratio")
}

// BenchmarkSendOne sends one message at a time, to compare what each
// message costs the two clients in time and allocations.
func BenchmarkSendOne(b *testing.B) {
	r := newBenchRig(b)
	for _, c := range []struct {
		name string
		send func() error
	}{{"sender", r.sendSender}, {"plain", r.sendPlain}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.send(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
