package sink

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// benchKeys is how many distinct keys the benchmarks cycle through: after
// the first pass every request is a duplicate, as in a re-send.
const benchKeys = 1 << 18

type benchDelivery struct {
	key    string
	body   []byte
	header http.Header
}

func benchDeliveries() []benchDelivery {
	ds := make([]benchDelivery, benchKeys)
	for i := range ds {
		key := fmt.Sprintf("spring-sale-2026:u%d", i)
		ds[i] = benchDelivery{
			key:    key,
			body:   deliveryBody("spring-sale-2026", fmt.Sprintf("u%d", i), key),
			header: http.Header{"Idempotency-Key": {key}},
		}
	}
	return ds
}

// rewindBody is a request body that can be replayed without allocating.
type rewindBody struct{ bytes.Reader }

func (*rewindBody) Close() error { return nil }

// nopWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the handler rather than a recorder.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header       { return w.h }
func (*nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (*nopWriter) WriteHeader(int)             {}

// BenchmarkServeHTTP is the handler alone: read the body, find the
// broadcast, hash and record the key.
func BenchmarkServeHTTP(b *testing.B) {
	for _, strict := range []bool{false, true} {
		b.Run(fmt.Sprintf("strict=%v", strict), func(b *testing.B) {
			s := newSink(b, Config{Strict: strict})
			ds := benchDeliveries()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				r := httptest.NewRequest(http.MethodPost, "/push", nil)
				body := new(rewindBody)
				r.Body = body
				w := &nopWriter{h: http.Header{}}
				i := 0
				for pb.Next() {
					d := ds[i%benchKeys]
					i++
					body.Reset(d.body)
					r.Header = d.header
					s.ServeHTTP(w, r)
				}
			})
		})
	}
}

// BenchmarkHTTP is the sink behind a real loopback HTTP server with 64
// keep-alive connections, client included, and reports requests per
// second. Client and server share the machine's cores.
func BenchmarkHTTP(b *testing.B) {
	s := newSink(b, Config{})
	srv := httptest.NewServer(s)
	defer srv.Close()
	cl := httpClient(b, 64)
	ds := benchDeliveries()
	var next atomic.Int64
	b.ResetTimer()
	b.SetParallelism(32) // with GOMAXPROCS=2, 64 client goroutines
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d := ds[int(next.Add(1))%benchKeys]
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/push", bytes.NewReader(d.body))
			req.Header.Set("Idempotency-Key", d.key)
			resp, err := cl.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// BenchmarkKeySetAdd inserts b.N distinct keys and reports the heap the
// set holds per key, the sink's only memory that grows with a broadcast.
func BenchmarkKeySetAdd(b *testing.B) {
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = fmt.Sprintf("spring-sale-2026:u%d", i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	set := new(keySet)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		set.add(hashKey(keys[i]))
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(b.N), "heap-B/key")
	runtime.KeepAlive(set)
	runtime.KeepAlive(keys)
}
