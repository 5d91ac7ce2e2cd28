package sharding

import (
	"fmt"
	"testing"
)

// BenchmarkOwner looks up the owner of a subscriber id: its hash, then the
// ring lookup. It is on the per-subscriber path of every worker.
func BenchmarkOwner(b *testing.B) {
	ids := subscriberIDs(1 << 12)
	for _, n := range []int{3, 10, 100, 200} {
		r := mustRing(b, memberList(workerIDs(n)...))
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_ = r.Owner(Position(ids[i&(len(ids)-1)]))
				i++
			}
		})
	}
}

// BenchmarkContains is the worker's other per-subscriber question: is this
// subscriber in my unit?
func BenchmarkContains(b *testing.B) {
	ids := subscriberIDs(1 << 12)
	r := mustRing(b, memberList(workerIDs(100)...))
	arcs := r.Arcs("worker-7")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = arcs.Contains(Position(ids[i&(len(ids)-1)]))
		i++
	}
	b.ReportMetric(float64(len(arcs)), "ranges")
}

func BenchmarkNewRing100(b *testing.B) {
	ms := memberList(workerIDs(100)...)
	var r *Ring
	b.ReportAllocs()
	for b.Loop() {
		r, _ = NewRing(ms)
	}
	b.ReportMetric(float64(len(r.points)), "vnodes")
	b.ReportMetric(float64(r.footprint())/(1<<20), "MiB-kept")
}

func BenchmarkArcs100(b *testing.B) {
	r := mustRing(b, memberList(workerIDs(100)...))
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Arcs("worker-42")
	}
}

// BenchmarkSplit100 splits a unit into 100: the whole space, and one
// member's unit of a 10-member ring with its thousands of ranges.
func BenchmarkSplit100(b *testing.B) {
	r := mustRing(b, memberList(workerIDs(10)...))
	units := []struct {
		name string
		unit Unit
	}{
		{"full", Unit{ID: "u0", Arcs: Full()}},
		{"member", Unit{ID: "u3", Arcs: r.Arcs("worker-3")}},
	}
	for _, u := range units {
		b.Run(u.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = u.unit.Split(100)
			}
			b.ReportMetric(float64(len(u.unit.Arcs)), "ranges")
		})
	}
}

func BenchmarkUnitEncoding(b *testing.B) {
	r := mustRing(b, memberList(workerIDs(100)...))
	u := Unit{ID: "u42.3", Arcs: r.Arcs("worker-42"), Cursor: Cursor{Seq: 123456, Offset: 9876543}}
	bin, err := u.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, len(bin))
		for b.Loop() {
			buf, _ = u.AppendBinary(buf[:0])
		}
		b.ReportMetric(float64(len(bin)), "bytes")
		b.ReportMetric(float64(len(u.Arcs)), "ranges")
	})
	b.Run("unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		var v Unit
		for b.Loop() {
			if err := v.UnmarshalBinary(bin); err != nil {
				b.Fatal(err)
			}
		}
	})
}
