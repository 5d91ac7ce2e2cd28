package prepared

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/worker/audience"
)

// Defaults of ImportConfig.
const (
	DefaultSegmentBytes    = 64 << 20
	DefaultCheckpointEvery = 64
	DefaultSortBytes       = 64 << 20
)

// ImportConfig tunes Import. The zero value uses the defaults.
type ImportConfig struct {
	// SegmentBytes is the size a segment is closed at (a segment ends on
	// a line, so it may pass it by one line). Zero means
	// DefaultSegmentBytes.
	SegmentBytes int64
	// CheckpointEvery is how many records lie between two checkpoints: a
	// range read scans up to this many records outside its range at each
	// end. Zero means DefaultCheckpointEvery.
	CheckpointEvery int
	// SortBytes bounds the lines held in memory while sorting; more input
	// is sorted in runs written to TempDir and merged. Zero means
	// DefaultSortBytes.
	SortBytes int64
	// TempDir holds the sort's runs and the segment being written; ""
	// means os.TempDir(). Everything Import puts there it removes.
	TempDir string
	// Limits are the file source's: a line longer than MaxLineBytes is an
	// invalid record, kept (cut to the limit) so that one slot counts it.
	Limits audience.Limits
	// Progress, when set, is called after each segment is stored.
	Progress func(ImportStats)
	// Replace lets Import write over a prepared audience already in the
	// store. Broadcasts reading it meanwhile would see segments of the new
	// one under the old index: import each version to a new place instead
	// and name it in the triggers that follow.
	Replace bool
}

// ErrExists is returned by Import for a store that already holds a
// prepared audience, unless ImportConfig.Replace is set.
var ErrExists = errors.New("prepared: import: a prepared audience is already there")

// ImportStats says what Import did.
type ImportStats struct {
	Records  int64 // records written, invalid ones included
	Invalid  int64 // records the id scan refused
	Segments int   // segments stored so far
	Runs     int   // sorted runs written to TempDir (0: sorted in memory)
	Bytes    int64 // bytes of segments stored
}

// Import reads the JSON Lines audience at path once, with the file
// source's parsing and limits, and stores it in dst as a prepared
// audience: segments sorted by position, their checkpoints, then the
// index, last, so that a store without an index is an import that did not
// finish. Memory is bounded by cfg.SortBytes and one line, never by the
// audience's size.
func Import(ctx context.Context, path string, dst Store, cfg ImportConfig) (ImportStats, error) {
	if !cfg.Replace {
		rc, err := dst.ReadRange(ctx, indexName, 0, 1)
		switch {
		case err == nil:
			rc.Close()
			return ImportStats{}, ErrExists
		case !errors.Is(err, ErrNotFound):
			return ImportStats{}, err
		}
	}
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = DefaultSegmentBytes
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = DefaultCheckpointEvery
	}
	if cfg.SortBytes <= 0 {
		cfg.SortBytes = DefaultSortBytes
	}
	src, err := audience.Open(audience.Spec{Source: audience.SourceFile, Path: path}, sharding.Cursor{}, cfg.Limits)
	if err != nil {
		return ImportStats{}, err
	}
	defer src.Close()
	tmp, err := os.MkdirTemp(cfg.TempDir, "herald-import-")
	if err != nil {
		return ImportStats{}, fmt.Errorf("prepared: import: %w", err)
	}
	defer os.RemoveAll(tmp)

	var st ImportStats
	s := &sorter{dir: tmp, limit: cfg.SortBytes}
	for src.Next() {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		rec := src.Record()
		st.Records++
		if rec.Invalid != "" {
			st.Invalid++
		}
		if err := s.add(rec.Position(), rec.Raw); err != nil {
			return st, err
		}
	}
	if err := src.Err(); err != nil {
		return st, err
	}
	st.Runs = len(s.runs)
	merged, err := s.merge()
	if err != nil {
		return st, err
	}
	defer merged.close()

	w := &segmentWriter{ctx: ctx, dst: dst, dir: tmp, cfg: cfg, stats: &st}
	for {
		pos, line, ok, err := merged.next()
		if err != nil {
			return st, err
		}
		if !ok {
			break
		}
		if err := w.add(pos, line); err != nil {
			return st, err
		}
	}
	if err := w.finish(); err != nil {
		return st, err
	}
	idx := index{Format: Format, Records: st.Records, Invalid: st.Invalid,
		MaxLineBytes: maxLine(cfg.Limits), Segments: w.segments}
	if idx.Segments == nil {
		idx.Segments = []segmentInfo{}
	}
	data, err := json.MarshalIndent(idx, "", "\t")
	if err != nil {
		return st, fmt.Errorf("prepared: import: %w", err)
	}
	if err := dst.Put(ctx, indexName, bytes.NewReader(data), int64(len(data))); err != nil {
		return st, err
	}
	return st, nil
}

// sorter is an external sort of (position, line) pairs: pairs gather in
// memory up to a limit, then are sorted and written as a run; merge
// yields every pair in order.
type sorter struct {
	dir   string
	limit int64
	arena []byte
	ents  []sortEntry
	runs  []string
}

type sortEntry struct {
	pos        uint64
	start, end int
}

func (s *sorter) add(pos uint64, line []byte) error {
	if int64(len(s.arena)+len(line)) > s.limit && len(s.ents) > 0 {
		if err := s.spill(); err != nil {
			return err
		}
	}
	start := len(s.arena)
	s.arena = append(s.arena, line...)
	s.ents = append(s.ents, sortEntry{pos: pos, start: start, end: len(s.arena)})
	return nil
}

func (s *sorter) sort() {
	slices.SortFunc(s.ents, func(a, b sortEntry) int {
		if a.pos != b.pos {
			if a.pos < b.pos {
				return -1
			}
			return 1
		}
		return bytes.Compare(s.arena[a.start:a.end], s.arena[b.start:b.end])
	})
}

// spill writes the pairs in memory as a sorted run: per pair the position
// (8 bytes), the line's length (4 bytes) and the line.
func (s *sorter) spill() error {
	s.sort()
	f, err := os.CreateTemp(s.dir, "run-")
	if err != nil {
		return fmt.Errorf("prepared: import: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	var hdr [12]byte
	for _, e := range s.ents {
		binary.BigEndian.PutUint64(hdr[:], e.pos)
		binary.BigEndian.PutUint32(hdr[8:], uint32(e.end-e.start))
		bw.Write(hdr[:])
		bw.Write(s.arena[e.start:e.end])
	}
	err = bw.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("prepared: import: write run: %w", err)
	}
	s.runs = append(s.runs, f.Name())
	s.arena, s.ents = s.arena[:0], s.ents[:0]
	return nil
}

// pairSource yields (position, line) pairs in order.
type pairSource interface {
	next() (pos uint64, line []byte, ok bool, err error)
	close()
}

// merge returns the pairs in order: from memory when they all fit, else
// merging the runs (the last one spilled too).
func (s *sorter) merge() (pairSource, error) {
	if len(s.runs) == 0 {
		s.sort()
		return &memRun{s: s}, nil
	}
	if len(s.ents) > 0 {
		if err := s.spill(); err != nil {
			return nil, err
		}
	}
	s.arena = nil
	m := &runMerger{}
	for _, name := range s.runs {
		f, err := os.Open(name)
		if err != nil {
			m.close()
			return nil, fmt.Errorf("prepared: import: %w", err)
		}
		r := &fileRun{f: f, br: bufio.NewReaderSize(f, 64<<10)}
		m.all = append(m.all, r)
		ok, err := r.advance()
		if err != nil {
			m.close()
			return nil, err
		}
		if ok {
			m.h = append(m.h, r)
		}
	}
	heap.Init(&m.h)
	return m, nil
}

type memRun struct {
	s *sorter
	i int
}

func (m *memRun) next() (uint64, []byte, bool, error) {
	if m.i >= len(m.s.ents) {
		return 0, nil, false, nil
	}
	e := m.s.ents[m.i]
	m.i++
	return e.pos, m.s.arena[e.start:e.end], true, nil
}

func (m *memRun) close() {}

// fileRun reads a run; pos and line are its current pair.
type fileRun struct {
	f    *os.File
	br   *bufio.Reader
	pos  uint64
	line []byte
}

func (r *fileRun) advance() (bool, error) {
	var hdr [12]byte
	if _, err := io.ReadFull(r.br, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		return false, fmt.Errorf("prepared: import: read run: %w", err)
	}
	r.pos = binary.BigEndian.Uint64(hdr[:])
	n := binary.BigEndian.Uint32(hdr[8:])
	r.line = slices.Grow(r.line[:0], int(n))[:n]
	if _, err := io.ReadFull(r.br, r.line); err != nil {
		return false, fmt.Errorf("prepared: import: read run: %w", err)
	}
	return true, nil
}

type runHeap []*fileRun

func (h runHeap) Len() int { return len(h) }
func (h runHeap) Less(i, j int) bool {
	if h[i].pos != h[j].pos {
		return h[i].pos < h[j].pos
	}
	return bytes.Compare(h[i].line, h[j].line) < 0
}
func (h runHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)   { *h = append(*h, x.(*fileRun)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// runMerger merges the runs with a heap of their current pairs. The line
// it returns is valid until the next call.
type runMerger struct {
	h    runHeap
	all  []*fileRun
	last *fileRun // the run whose pair was returned last, to advance
	buf  []byte
}

func (m *runMerger) next() (uint64, []byte, bool, error) {
	if m.last != nil {
		ok, err := m.last.advance()
		if err != nil {
			return 0, nil, false, err
		}
		if ok {
			heap.Fix(&m.h, 0)
		} else {
			heap.Pop(&m.h)
		}
		m.last = nil
	}
	if len(m.h) == 0 {
		return 0, nil, false, nil
	}
	r := m.h[0]
	m.last = r
	return r.pos, r.line, true, nil
}

func (m *runMerger) close() {
	for _, r := range m.all {
		r.f.Close()
	}
}

// segmentWriter cuts the sorted pairs into segments, writing each to a
// temporary file with its checkpoints and storing both once it is full.
type segmentWriter struct {
	ctx      context.Context
	dst      Store
	dir      string
	cfg      ImportConfig
	stats    *ImportStats
	segments []segmentInfo

	f    *os.File
	bw   *bufio.Writer
	cur  segmentInfo
	cps  []byte
	nrec int64
}

func (w *segmentWriter) add(pos uint64, line []byte) error {
	if w.f == nil {
		if err := w.start(); err != nil {
			return err
		}
		w.cur.First = pos
	}
	if w.nrec%int64(w.cfg.CheckpointEvery) == 0 {
		w.cps = binary.BigEndian.AppendUint64(w.cps, pos)
		w.cps = binary.BigEndian.AppendUint64(w.cps, uint64(w.cur.Bytes))
	}
	w.bw.Write(line)
	if err := w.bw.WriteByte('\n'); err != nil {
		return fmt.Errorf("prepared: import: write segment: %w", err)
	}
	w.nrec++
	w.cur.Records++
	w.cur.Last = pos
	w.cur.Bytes += int64(len(line)) + 1
	if w.cur.Bytes >= w.cfg.SegmentBytes {
		return w.store()
	}
	return nil
}

func (w *segmentWriter) start() error {
	f, err := os.CreateTemp(w.dir, "segment-")
	if err != nil {
		return fmt.Errorf("prepared: import: %w", err)
	}
	n := len(w.segments)
	w.f, w.bw = f, bufio.NewWriterSize(f, 1<<20)
	w.cur = segmentInfo{Name: fmt.Sprintf("segment-%06d.jsonl", n), Checkpoints: fmt.Sprintf("segment-%06d.idx", n)}
	w.cps, w.nrec = w.cps[:0], 0
	return nil
}

// store uploads the segment being written and its checkpoints.
func (w *segmentWriter) store() error {
	f := w.f
	w.f = nil
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("prepared: import: write segment: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("prepared: import: %w", err)
	}
	if err := w.dst.Put(w.ctx, w.cur.Name, f, w.cur.Bytes); err != nil {
		return err
	}
	if err := w.dst.Put(w.ctx, w.cur.Checkpoints, bytes.NewReader(w.cps), int64(len(w.cps))); err != nil {
		return err
	}
	w.segments = append(w.segments, w.cur)
	w.stats.Segments++
	w.stats.Bytes += w.cur.Bytes
	if w.cfg.Progress != nil {
		w.cfg.Progress(*w.stats)
	}
	return nil
}

func (w *segmentWriter) finish() error {
	if w.f == nil {
		return nil
	}
	return w.store()
}

// maxLine is lim's line limit with its default.
func maxLine(lim audience.Limits) int {
	if lim.MaxLineBytes <= 0 {
		return audience.DefaultMaxLineBytes
	}
	return lim.MaxLineBytes
}
