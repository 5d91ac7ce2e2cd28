package audience

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/cespare/xxhash/v2"
	"github.com/herald-dev/herald/sharding"
)

// A synthetic audience is a pure function of (seed, index): record i has id
// "s<seed>-<i>" and fields drawn from one 64-bit mix of seed and i, so any
// worker can start anywhere in O(1) and every worker sees the same records.
// The value tables are boxed once so that filling a map does not allocate
// for them.

var (
	syntheticNames = boxed("Ann", "Björn", "Zoë", "José", "Chloé", "Łukasz", "Søren", "Ingrid",
		"Aiko", "李雷", "王芳", "Иван", "Νίκος", "محمد", "Đức", "Siobhán", "Amara", "Mateo")
	// en appears twice: most audiences lean to one language.
	syntheticLocales = []string{"en", "en", "en-GB", "zh", "zh-TW", "es", "ar", "fr"}
	syntheticCities  = boxed("Lisbon", "München", "São Paulo", "Kraków", "Zürich", "北京",
		"Reykjavík", "Cairo", "Austin", "Montréal")
	syntheticPlans = boxed("free", "plus", "pro", "team")
	boxedLocales   = boxed(syntheticLocales...)
)

const codeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

func boxed(vals ...string) []any {
	out := make([]any, len(vals))
	for i, v := range vals {
		out[i] = v
	}
	return out
}

// mix is SplitMix64's finaliser: cheap, and every bit of the input moves
// every bit of the output, so fields drawn from different bits look
// independent.
func mix(seed int64, i uint64) uint64 {
	z := uint64(seed)*0x9e3779b97f4a7c15 + i + 0x632be59bd9b4e019
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func syntheticLocale(draw uint64) string {
	return syntheticLocales[(draw>>8)%uint64(len(syntheticLocales))]
}

// About one record in ten is unreachable.
func syntheticReachable(draw uint64) bool { return (draw>>32)%10 != 0 }

// fillSynthetic writes the record's fields into m with four allocations
// whatever the record: one string holding the id, the code and the points
// digits, and the boxing of those three. Points is a json.Number, as a
// number read from a file audience is.
func fillSynthetic(m map[string]any, id []byte, draw uint64) {
	var b [MaxIDBytes + 6 + 20]byte
	n := copy(b[:], id)
	for k := range 6 {
		b[n+k] = codeAlphabet[(draw>>(34+5*k))&31]
	}
	all := strconv.AppendUint(b[:n+6], draw>>44%100_000, 10)
	s := string(all)
	m["id"] = s[:n]
	m["code"] = s[n : n+6]
	m["points"] = json.Number(s[n+6:])
	m["name"] = syntheticNames[draw%uint64(len(syntheticNames))]
	m["locale"] = boxedLocales[(draw>>8)%uint64(len(boxedLocales))]
	m["reachable"] = syntheticReachable(draw)
	m["city"] = syntheticCities[(draw>>16)%uint64(len(syntheticCities))]
	m["plan"] = syntheticPlans[(draw>>24)%uint64(len(syntheticPlans))]
}

type syntheticSource struct {
	seed  int64
	count uint64
	i     uint64
	idBuf []byte
}

func openSynthetic(spec Spec, from sharding.Cursor) (*syntheticSource, error) {
	if from.Offset != 0 || from.Seq > uint64(spec.Count) {
		return nil, fmt.Errorf("%w: cursor %d/%d in a synthetic audience of %d", ErrCursor, from.Seq, from.Offset, spec.Count)
	}
	return &syntheticSource{seed: spec.Seed, count: uint64(spec.Count), i: from.Seq, idBuf: make([]byte, 0, 48)}, nil
}

func (s *syntheticSource) next(r *Record) (bool, error) {
	if s.i >= s.count {
		return false, nil
	}
	i := s.i
	s.i++
	b := append(s.idBuf[:0], 's')
	b = strconv.AppendInt(b, s.seed, 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, i, 10)
	s.idBuf = b
	*r = Record{
		Seq:       i,
		Line:      int64(i) + 1,
		ID:        b,
		pos:       xxhash.Sum64(b),
		synthetic: true,
		draw:      mix(s.seed, i),
	}
	return true, nil
}

func (s *syntheticSource) after(r *Record) sharding.Cursor { return sharding.Cursor{Seq: r.Seq + 1} }

func (s *syntheticSource) end() sharding.Cursor { return sharding.Cursor{Seq: s.count} }

func (s *syntheticSource) close() error { return nil }

// WriteSyntheticFile writes the synthetic audience of count subscribers
// and seed to path as JSON Lines: the same records, attributes and ids the
// synthetic source yields, so the file and prepared sources can be tried
// and measured on them. path is created or truncated.
func WriteSyntheticFile(path string, count, seed int64) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("audience: synthetic file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("audience: synthetic file: %w", cerr)
		}
	}()
	s, err := Open(Spec{Source: SourceSynthetic, Count: count, Seed: seed}, sharding.Cursor{}, Limits{})
	if err != nil {
		return err
	}
	defer s.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	m := map[string]any{}
	enc := json.NewEncoder(w)
	for s.Next() {
		clear(m)
		if err := s.Record().Decode(m); err != nil {
			return fmt.Errorf("audience: synthetic file: %w", err)
		}
		if err := enc.Encode(m); err != nil {
			return fmt.Errorf("audience: synthetic file: %w", err)
		}
	}
	if err := s.Err(); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("audience: synthetic file: %w", err)
	}
	return nil
}
