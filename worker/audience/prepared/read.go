package prepared

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/worker/audience"
)

// A prepared audience is a JSON Lines audience rewritten by Import in
// position order, so that a range of positions is a contiguous run of
// bytes. It is a set of objects in a Store:
//
//   - index.json, written last (an import that did not finish has none):
//     the format, the counts and the list of segments, each with the
//     first and last position it holds;
//   - segment-NNNNNN.jsonl: the audience's lines (blank lines dropped),
//     ascending by (position, line bytes), each ending in '\n';
//   - segment-NNNNNN.idx: the segment's checkpoints, 16 bytes each, big
//     endian: the position of every CheckpointEvery-th record and the byte
//     offset of its line.
//
// A range read opens only the segments whose positions meet the range,
// and in each reads only the bytes from the last checkpoint below the
// range to the first checkpoint above it: at most CheckpointEvery records
// outside the range at either end. Memory is the segment list, one
// segment's checkpoints and one line.

// Format names the layout above in index.json.
const Format = "herald-prepared-1"

const (
	indexName      = "index.json"
	checkpointSize = 16
	// maxIndexBytes bounds index.json: a segment takes about 150 bytes,
	// so this is a million segments.
	maxIndexBytes = 256 << 20
)

// ErrUnreadable marks a prepared audience that cannot be read: no index
// (never imported, or the import did not finish), or an index or
// checkpoint file that is not what Import writes.
var ErrUnreadable = errors.New("prepared: audience unreadable")

type index struct {
	Format       string        `json:"format"`
	Records      int64         `json:"records"`
	Invalid      int64         `json:"invalid"`
	MaxLineBytes int           `json:"max_line_bytes"`
	Segments     []segmentInfo `json:"segments"`
}

type segmentInfo struct {
	Name        string `json:"name"`
	Checkpoints string `json:"checkpoints"`
	Records     int64  `json:"records"`
	Bytes       int64  `json:"bytes"`
	First       uint64 `json:"first"`
	Last        uint64 `json:"last"`
}

type checkpoint struct {
	pos uint64
	off int64
}

// Audience is an opened prepared audience.
type Audience struct {
	store Store
	idx   index
	lim   audience.Limits
}

// Open reads the index of the prepared audience in store. lim's
// MaxLineBytes, when unset, is the one the import used.
func Open(ctx context.Context, store Store, lim audience.Limits) (*Audience, error) {
	rc, err := store.ReadRange(ctx, indexName, 0, -1)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: no %s (not imported, or the import did not finish): %w", ErrUnreadable, indexName, err)
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxIndexBytes+1))
	if err != nil {
		return nil, fmt.Errorf("prepared: read %s: %w", indexName, err)
	}
	if len(data) > maxIndexBytes {
		return nil, fmt.Errorf("%w: %s larger than %d bytes", ErrUnreadable, indexName, maxIndexBytes)
	}
	p := &Audience{store: store, lim: lim}
	if err := json.Unmarshal(data, &p.idx); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnreadable, indexName, err)
	}
	if p.idx.Format != Format {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrUnreadable, p.idx.Format, Format)
	}
	for i, s := range p.idx.Segments {
		if s.First > s.Last || (i > 0 && s.First < p.idx.Segments[i-1].Last) || s.Bytes < 0 {
			return nil, fmt.Errorf("%w: segment %d (%s) out of order", ErrUnreadable, i, s.Name)
		}
	}
	if p.lim.MaxLineBytes <= 0 {
		p.lim.MaxLineBytes = p.idx.MaxLineBytes
	}
	return p, nil
}

// Records is the number of records in the audience, invalid ones
// included.
func (p *Audience) Records() int64 { return p.idx.Records }

// Segments is the number of segments.
func (p *Audience) Segments() int { return len(p.idx.Segments) }

// Cursor is a place in a prepared audience: the byte offset of a
// line in a segment. A range read resumes at it; the zero value is the
// start of the audience. It fits in a sharding.Cursor for storage as
// {Seq: Segment, Offset: Offset}.
type Cursor struct {
	Segment int
	Offset  int64
}

// Range reads the records whose positions lie in one range, in
// position order. It is not safe for concurrent use.
type Range struct {
	p   *Audience
	ctx context.Context
	r   sharding.Range

	seg int   // the segment being read, or the next to open
	off int64 // offset of the next line in seg
	end int64 // where the byte range read of seg ends
	// The position the first line read must have, when the range starts
	// at a checkpoint: a segment that does not match its checkpoints (a
	// damaged or replaced object) is an error, not a silent short read.
	expect    uint64
	checkNext bool
	rc        io.ReadCloser
	lines     *audience.LineReader
	opened    bool

	cur   Cursor
	rec   audience.Record
	idBuf []byte
	read  int64
	bytes int64
	err   error
	done  bool
}

// Range starts a read of the records whose positions lie in r, from
// cursor from on (a cursor before r's first record means from r's first
// record). Nothing is read until Next.
func (p *Audience) Range(ctx context.Context, r sharding.Range, from Cursor) *Range {
	pr := &Range{p: p, ctx: ctx, r: r, seg: from.Segment, off: from.Offset, cur: from}
	if from.Segment < 0 || from.Offset < 0 || from.Segment > len(p.idx.Segments) ||
		(from.Segment < len(p.idx.Segments) && from.Offset > p.idx.Segments[from.Segment].Bytes) {
		pr.err = fmt.Errorf("%w: prepared cursor %d@%d outside the audience's %d segments", audience.ErrCursor, from.Segment, from.Offset, len(p.idx.Segments))
		pr.done = true
	}
	return pr
}

// Next advances to the next record of the range and reports whether there
// is one; false at the end of the range or on an error (see Err). Invalid
// records are returned too, with Record().Invalid set.
func (pr *Range) Next() bool {
	for !pr.done {
		if !pr.opened {
			if err := pr.openSegment(); err != nil {
				pr.err, pr.done = err, true
			}
			continue
		}
		line, n, long, err := pr.lines.ReadLine()
		if err != nil {
			pr.fail(fmt.Errorf("prepared: read %s at offset %d: %w", pr.segName(), pr.off, err))
			continue
		}
		if n == 0 {
			if pr.off != pr.end {
				pr.fail(fmt.Errorf("%w: %s ended at offset %d, want %d", ErrUnreadable, pr.segName(), pr.off, pr.end))
				continue
			}
			pr.closeSegment()
			pr.seg, pr.off = pr.seg+1, 0
			continue
		}
		at := pr.off
		pr.off += n
		pr.read++
		pr.bytes += n
		rec := audience.Record{Seq: uint64(pr.read - 1), Offset: at}
		tooLong := ""
		if long {
			tooLong = pr.lines.TooLong()
		}
		pr.idBuf = rec.SetLine(line, tooLong, pr.idBuf)
		pos := rec.Position()
		if pr.checkNext {
			pr.checkNext = false
			if pos != pr.expect {
				pr.fail(fmt.Errorf("%w: %s at offset %d: a record at position %#x where the checkpoints say %#x",
					ErrUnreadable, pr.segName(), at, pos, pr.expect))
				continue
			}
		}
		switch {
		case pos < pr.r.Lo:
			continue // between the checkpoint and the range
		case pos > pr.r.Hi:
			// Segments are in position order: nothing further is in range.
			pr.closeSegment()
			pr.done = true
			return false
		}
		pr.rec = rec
		pr.cur = Cursor{Segment: pr.seg, Offset: pr.off}
		return true
	}
	return false
}

func (pr *Range) segName() string { return pr.p.idx.Segments[pr.seg].Name }

func (pr *Range) fail(err error) {
	pr.closeSegment()
	pr.err, pr.done = err, true
}

// openSegment opens the byte range of segment pr.seg that can hold the
// range, skipping segments that cannot; it sets done past the last.
func (pr *Range) openSegment() error {
	segs := pr.p.idx.Segments
	for ; pr.seg < len(segs); pr.seg, pr.off = pr.seg+1, 0 {
		s := segs[pr.seg]
		if s.First > pr.r.Hi {
			break
		}
		if s.Last < pr.r.Lo {
			continue
		}
		cps, err := pr.p.checkpoints(pr.ctx, s)
		if err != nil {
			return err
		}
		// The last checkpoint strictly below Lo: every record before it
		// is below Lo too. The first checkpoint above Hi: it and every
		// record after it are above Hi.
		start, end := int64(0), s.Bytes
		expect := s.First
		i := sort.Search(len(cps), func(i int) bool { return cps[i].pos >= pr.r.Lo })
		if i > 0 {
			start, expect = cps[i-1].off, cps[i-1].pos
		}
		if j := sort.Search(len(cps), func(j int) bool { return cps[j].pos > pr.r.Hi }); j < len(cps) {
			end = cps[j].off
		}
		pr.checkNext = start >= pr.off
		start = max(start, pr.off)
		if start >= end {
			continue
		}
		rc, err := pr.p.store.ReadRange(pr.ctx, s.Name, start, end-start)
		if err != nil {
			return err
		}
		pr.rc, pr.off, pr.end, pr.expect, pr.opened = rc, start, end, expect, true
		pr.lines = audience.NewLineReader(rc, pr.p.lim)
		return nil
	}
	pr.done = true
	return nil
}

func (pr *Range) closeSegment() {
	if pr.rc != nil {
		pr.rc.Close()
		pr.rc = nil
	}
	pr.opened = false
}

// checkpoints reads a segment's checkpoint file.
func (p *Audience) checkpoints(ctx context.Context, s segmentInfo) ([]checkpoint, error) {
	rc, err := p.store.ReadRange(ctx, s.Checkpoints, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// A checkpoint per record at most: the segment's record count bounds
	// the file.
	data, err := io.ReadAll(io.LimitReader(rc, (s.Records+1)*checkpointSize+1))
	if err != nil {
		return nil, fmt.Errorf("prepared: read %s: %w", s.Checkpoints, err)
	}
	if len(data)%checkpointSize != 0 || int64(len(data)) > (s.Records+1)*checkpointSize {
		return nil, fmt.Errorf("%w: %s: %d bytes is not a checkpoint file of %d records", ErrUnreadable, s.Checkpoints, len(data), s.Records)
	}
	cps := make([]checkpoint, len(data)/checkpointSize)
	for i := range cps {
		b := data[i*checkpointSize:]
		cps[i] = checkpoint{pos: binary.BigEndian.Uint64(b), off: int64(binary.BigEndian.Uint64(b[8:]))}
		if cps[i].off < 0 || cps[i].off > s.Bytes || (i > 0 && (cps[i].pos < cps[i-1].pos || cps[i].off <= cps[i-1].off)) {
			return nil, fmt.Errorf("%w: %s: checkpoint %d out of order", ErrUnreadable, s.Checkpoints, i)
		}
	}
	return cps, nil
}

// Record is the current record, valid until the next call of Next. Its
// Offset is the line's offset in its segment; Line is 0.
func (pr *Range) Record() *audience.Record { return &pr.rec }

// Cursor is the place right after the last record Next returned (the
// cursor the read started from before the first): Range(ctx, r, cursor)
// continues with the next record.
func (pr *Range) Cursor() Cursor { return pr.cur }

// Read is how many records the read has scanned so far, those just
// outside the range at its ends included; BytesRead their bytes.
func (pr *Range) Read() int64 { return pr.read }

// BytesRead is how many bytes of segments the read has scanned so far.
func (pr *Range) BytesRead() int64 { return pr.bytes }

// Err is the error that ended the read, nil at a clean end.
func (pr *Range) Err() error { return pr.err }

// Close releases the segment being read. It is safe to call more than
// once.
func (pr *Range) Close() error {
	pr.closeSegment()
	pr.done = true
	return nil
}

// Checkpoint is c in a sharding.Cursor, the form checkpoints store:
// {Seq: segment, Offset: offset}.
func (c Cursor) Checkpoint() sharding.Cursor {
	return sharding.Cursor{Seq: uint64(c.Segment), Offset: c.Offset}
}

// CursorOf is the Cursor that c (from Checkpoint) holds.
func CursorOf(c sharding.Cursor) Cursor {
	return Cursor{Segment: int(min(c.Seq, uint64(maxSegments))), Offset: c.Offset}
}

// maxSegments bounds a segment number read from a stored cursor, so a
// damaged one cannot overflow int; Range refuses it as past the end.
const maxSegments = 1 << 30
