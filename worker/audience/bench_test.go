package audience

import (
	"math"
	"runtime"
	"testing"

	"github.com/herald-dev/herald/sharding"
)

const benchRecords = 1_000_000

// BenchmarkScan reads a million-record audience as one unit holding a
// quarter of the hash space would: every record's id is found and hashed,
// the three quarters owned elsewhere are skipped, and with decode the
// owned quarter is fully parsed.
func BenchmarkScan(b *testing.B) {
	for _, src := range []string{SourceSynthetic, SourceFile} {
		for _, decode := range []bool{false, true} {
			name := src + "/skip-only"
			if decode {
				name = src + "/decode-owned"
			}
			b.Run(name, func(b *testing.B) {
				spec := synthSpec(benchRecords, 1)
				if src == SourceFile {
					spec = fileSpec(writeSyntheticFile(b, benchRecords))
				}
				scanBenchmark(b, spec, decode)
			})
		}
	}
}

func scanBenchmark(b *testing.B, spec Spec, decode bool) {
	const ownedBelow = math.MaxUint64 / 4
	m := make(map[string]any, 16)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	passes, owned := 0, 0
	for b.Loop() {
		s, err := Open(spec, sharding.Cursor{}, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for s.Next() {
			n++
			r := s.Record()
			if r.Position() > ownedBelow {
				continue
			}
			owned++
			if decode {
				if err := r.Decode(m); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := s.Err(); err != nil {
			b.Fatal(err)
		}
		s.Close()
		if n != benchRecords {
			b.Fatalf("read %d records, want %d", n, benchRecords)
		}
		passes++
	}
	runtime.ReadMemStats(&after)
	records := float64(passes * benchRecords)
	secs := b.Elapsed().Seconds()
	b.ReportMetric(records/secs, "records/s")
	b.ReportMetric(secs*1e9/records, "ns/record")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/records, "allocs/record")
	b.ReportMetric(float64(owned)/records, "owned-fraction")
}

// BenchmarkDecode is the full parse of one owned record, the cost a unit
// pays per subscriber it delivers to.
func BenchmarkDecode(b *testing.B) {
	for _, src := range []string{SourceSynthetic, SourceFile} {
		b.Run(src, func(b *testing.B) {
			spec := synthSpec(1, 1)
			if src == SourceFile {
				spec = fileSpec(writeSyntheticFile(b, 1))
			}
			s := mustOpen(b, spec, sharding.Cursor{}, Limits{})
			if !s.Next() {
				b.Fatal(s.Err())
			}
			r := s.Record()
			m := make(map[string]any, 16)
			b.ReportAllocs()
			for b.Loop() {
				if err := r.Decode(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkExtractID is the id scan alone on a typical line.
func BenchmarkExtractID(b *testing.B) {
	line := []byte(`{"city":"São Paulo","code":"K7Q2ZD","id":"s1-123456","locale":"zh-TW","name":"Zoë","plan":"pro","points":48211,"reachable":true}`)
	buf := make([]byte, 0, 64)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		var reason string
		_, buf, reason = extractID(line, buf)
		if reason != "" {
			b.Fatal(reason)
		}
	}
}
