//go:build unix

package delivery

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkHTTP2VsHTTP1 sends b.N messages over HTTP/2 and b.N over
// HTTP/1.1 to one loopback TLS endpoint that offers both, from
// benchInFlight goroutines each (the worker's default max_in_flight), in
// alternating short rounds so that other load hits both alike. Both Senders
// share one pool of benchInFlight, as a worker's broadcasts do. It reports
// both rates, their ratio, the CPU time per message of each (endpoint
// included), and the connections each opened.
//
// In "instant" the endpoint answers at once, so the figures are the
// clients' and the server's own costs on a loopback; in "2ms" each answer
// takes 2 ms, as a real endpoint's would, and both are bound by latency
// and the number of sends in flight.
func BenchmarkHTTP2VsHTTP1(b *testing.B) {
	for _, delay := range []time.Duration{0, 2 * time.Millisecond} {
		name := "instant"
		if delay > 0 {
			name = delay.String()
		}
		b.Run(name, func(b *testing.B) { benchHTTP2VsHTTP1(b, delay) })
	}
}

func benchHTTP2VsHTTP1(b *testing.B, delay time.Duration) {
	e := newProtoEndpoint(b, tlsH2)
	e.mu.Lock()
	e.delay = delay
	e.mu.Unlock()
	pool := e.pool(b, benchInFlight)
	senders := map[string]*Sender{}
	for _, mode := range []string{HTTP2Off, HTTP2Auto} {
		s, err := New(Config{MaxInFlight: benchInFlight, Pool: pool, HTTP2: mode}, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		senders[mode] = s
	}
	body := []byte(testBody)
	send := func(mode string) func() error {
		s := senders[mode]
		return func() error {
			if r := s.Send(context.Background(), e.url, testKey, body); r.Outcome != Delivered {
				return fmt.Errorf("%s: %+v", mode, r)
			}
			return nil
		}
	}
	h1, h2 := send(HTTP2Off), send(HTTP2Auto)
	// Warm both so neither pays for dialing and handshakes inside the
	// timing; count the connections each opens.
	_, before := e.counts()
	spread(b, 4*benchInFlight, h2)
	_, afterH2 := e.counts()
	// Sends that start at once on a cold pool race to dial before any
	// connection has said it speaks HTTP/2; net/http closes the spare
	// ones as they finish their handshakes.
	time.Sleep(50 * time.Millisecond)
	openH2 := e.openNow()
	spread(b, 4*benchInFlight, h1)
	_, afterH1 := e.counts()
	openH1 := e.openNow() - openH2

	const rounds = 16
	per := max(b.N/rounds, 1)
	var c1, c2 cost
	b.ResetTimer()
	for i := range rounds {
		if i%2 == 0 {
			c1.add(spread(b, per, h1))
			c2.add(spread(b, per, h2))
		} else {
			c2.add(spread(b, per, h2))
			c1.add(spread(b, per, h1))
		}
	}
	b.StopTimer()
	msgs := float64(per * rounds)
	r1, r2 := msgs/c1.wall.Seconds(), msgs/c2.wall.Seconds()
	b.ReportMetric(r1, "h1_msgs/s")
	b.ReportMetric(r2, "h2_msgs/s")
	b.ReportMetric(r2/r1, "h2/h1")
	b.ReportMetric(c1.cpu.Seconds()*1e6/msgs, "h1_cpu_µs/msg")
	b.ReportMetric(c2.cpu.Seconds()*1e6/msgs, "h2_cpu_µs/msg")
	_, end := e.counts()
	b.ReportMetric(float64(afterH1-afterH2), "h1_conns_warm")
	b.ReportMetric(float64(afterH2-before), "h2_conns_warm")
	b.ReportMetric(float64(openH1), "h1_conns_open")
	b.ReportMetric(float64(openH2), "h2_conns_open")
	b.ReportMetric(float64(end-afterH1), "conns_during")
}
