package audience

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/cespare/xxhash/v2"
	"github.com/herald-dev/herald/sharding"
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

// PreparedFormat names the layout above in index.json.
const PreparedFormat = "herald-prepared-1"

const (
	preparedIndexName = "index.json"
	checkpointSize    = 16
	// maxIndexBytes bounds index.json: a segment takes about 150 bytes,
	// so this is a million segments.
	maxIndexBytes = 256 << 20
)

// ErrPrepared marks a prepared audience that cannot be read: no index
// (never imported, or the import did not finish), or an index or
// checkpoint file that is not what Import writes.
var ErrPrepared = errors.New("audience: prepared audience unreadable")

type preparedIndex struct {
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

// Prepared is an opened prepared audience.
type Prepared struct {
	store Store
	idx   preparedIndex
	lim   Limits
}

// OpenPrepared reads the index of the prepared audience in store. lim's
// MaxLineBytes, when unset, is the one the import used.
func OpenPrepared(ctx context.Context, store Store, lim Limits) (*Prepared, error) {
	rc, err := store.ReadRange(ctx, preparedIndexName, 0, -1)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: no %s (not imported, or the import did not finish): %w", ErrPrepared, preparedIndexName, err)
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxIndexBytes+1))
	if err != nil {
		return nil, fmt.Errorf("audience: prepared: read %s: %w", preparedIndexName, err)
	}
	if len(data) > maxIndexBytes {
		return nil, fmt.Errorf("%w: %s larger than %d bytes", ErrPrepared, preparedIndexName, maxIndexBytes)
	}
	p := &Prepared{store: store, lim: lim}
	if err := json.Unmarshal(data, &p.idx); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrPrepared, preparedIndexName, err)
	}
	if p.idx.Format != PreparedFormat {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrPrepared, p.idx.Format, PreparedFormat)
	}
	for i, s := range p.idx.Segments {
		if s.First > s.Last || (i > 0 && s.First < p.idx.Segments[i-1].Last) || s.Bytes < 0 {
			return nil, fmt.Errorf("%w: segment %d (%s) out of order", ErrPrepared, i, s.Name)
		}
	}
	if p.lim.MaxLineBytes <= 0 {
		p.lim.MaxLineBytes = p.idx.MaxLineBytes
	}
	return p, nil
}

// Records is the number of records in the audience, invalid ones
// included.
func (p *Prepared) Records() int64 { return p.idx.Records }

// Segments is the number of segments.
func (p *Prepared) Segments() int { return len(p.idx.Segments) }

// PreparedCursor is a place in a prepared audience: the byte offset of a
// line in a segment. A range read resumes at it; the zero value is the
// start of the audience. It fits in a sharding.Cursor for storage as
// {Seq: Segment, Offset: Offset}.
type PreparedCursor struct {
	Segment int
	Offset  int64
}

// PreparedRange reads the records whose positions lie in one range, in
// position order. It is not safe for concurrent use.
type PreparedRange struct {
	p   *Prepared
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
	lines     lineReader
	opened    bool

	cur   PreparedCursor
	rec   Record
	idBuf []byte
	read  int64
	bytes int64
	err   error
	done  bool
}

// Range starts a read of the records whose positions lie in r, from
// cursor from on (a cursor before r's first record means from r's first
// record). Nothing is read until Next.
func (p *Prepared) Range(ctx context.Context, r sharding.Range, from PreparedCursor) *PreparedRange {
	pr := &PreparedRange{p: p, ctx: ctx, r: r, seg: from.Segment, off: from.Offset, cur: from}
	if from.Segment < 0 || from.Offset < 0 || from.Segment > len(p.idx.Segments) ||
		(from.Segment < len(p.idx.Segments) && from.Offset > p.idx.Segments[from.Segment].Bytes) {
		pr.err = fmt.Errorf("%w: prepared cursor %d@%d outside the audience's %d segments", ErrCursor, from.Segment, from.Offset, len(p.idx.Segments))
		pr.done = true
	}
	return pr
}

// Next advances to the next record of the range and reports whether there
// is one; false at the end of the range or on an error (see Err). Invalid
// records are returned too, with Record().Invalid set.
func (pr *PreparedRange) Next() bool {
	for !pr.done {
		if !pr.opened {
			if err := pr.openSegment(); err != nil {
				pr.err, pr.done = err, true
			}
			continue
		}
		line, n, long, err := pr.lines.readLine()
		if err != nil {
			pr.fail(fmt.Errorf("audience: prepared: read %s at offset %d: %w", pr.segName(), pr.off, err))
			continue
		}
		if n == 0 {
			if pr.off != pr.end {
				pr.fail(fmt.Errorf("%w: %s ended at offset %d, want %d", ErrPrepared, pr.segName(), pr.off, pr.end))
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
		rec := Record{Seq: uint64(pr.read - 1), Offset: at, Line: 0, Raw: line}
		if long {
			rec.Invalid = fmt.Sprintf("line longer than %d bytes", pr.lines.max)
		} else {
			rec.ID, pr.idBuf, rec.Invalid = extractID(line, pr.idBuf)
		}
		if rec.Invalid != "" {
			rec.pos = xxhash.Sum64(line)
		} else {
			rec.pos = xxhash.Sum64(rec.ID)
		}
		if pr.checkNext {
			pr.checkNext = false
			if rec.pos != pr.expect {
				pr.fail(fmt.Errorf("%w: %s at offset %d: a record at position %#x where the checkpoints say %#x",
					ErrPrepared, pr.segName(), at, rec.pos, pr.expect))
				continue
			}
		}
		switch {
		case rec.pos < pr.r.Lo:
			continue // between the checkpoint and the range
		case rec.pos > pr.r.Hi:
			// Segments are in position order: nothing further is in range.
			pr.closeSegment()
			pr.done = true
			return false
		}
		pr.rec = rec
		pr.cur = PreparedCursor{Segment: pr.seg, Offset: pr.off}
		return true
	}
	return false
}

func (pr *PreparedRange) segName() string { return pr.p.idx.Segments[pr.seg].Name }

func (pr *PreparedRange) fail(err error) {
	pr.closeSegment()
	pr.err, pr.done = err, true
}

// openSegment opens the byte range of segment pr.seg that can hold the
// range, skipping segments that cannot; it sets done past the last.
func (pr *PreparedRange) openSegment() error {
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
		pr.lines = newLineReader(rc, pr.p.lim.maxLine())
		return nil
	}
	pr.done = true
	return nil
}

func (pr *PreparedRange) closeSegment() {
	if pr.rc != nil {
		pr.rc.Close()
		pr.rc = nil
	}
	pr.opened = false
}

// checkpoints reads a segment's checkpoint file.
func (p *Prepared) checkpoints(ctx context.Context, s segmentInfo) ([]checkpoint, error) {
	rc, err := p.store.ReadRange(ctx, s.Checkpoints, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// A checkpoint per record at most: the segment's record count bounds
	// the file.
	data, err := io.ReadAll(io.LimitReader(rc, (s.Records+1)*checkpointSize+1))
	if err != nil {
		return nil, fmt.Errorf("audience: prepared: read %s: %w", s.Checkpoints, err)
	}
	if len(data)%checkpointSize != 0 || int64(len(data)) > (s.Records+1)*checkpointSize {
		return nil, fmt.Errorf("%w: %s: %d bytes is not a checkpoint file of %d records", ErrPrepared, s.Checkpoints, len(data), s.Records)
	}
	cps := make([]checkpoint, len(data)/checkpointSize)
	for i := range cps {
		b := data[i*checkpointSize:]
		cps[i] = checkpoint{pos: binary.BigEndian.Uint64(b), off: int64(binary.BigEndian.Uint64(b[8:]))}
		if cps[i].off < 0 || cps[i].off > s.Bytes || (i > 0 && (cps[i].pos < cps[i-1].pos || cps[i].off <= cps[i-1].off)) {
			return nil, fmt.Errorf("%w: %s: checkpoint %d out of order", ErrPrepared, s.Checkpoints, i)
		}
	}
	return cps, nil
}

// Record is the current record, valid until the next call of Next. Its
// Offset is the line's offset in its segment; Line is 0.
func (pr *PreparedRange) Record() *Record { return &pr.rec }

// Cursor is the place right after the last record Next returned (the
// cursor the read started from before the first): Range(ctx, r, cursor)
// continues with the next record.
func (pr *PreparedRange) Cursor() PreparedCursor { return pr.cur }

// Read is how many records the read has scanned so far, those just
// outside the range at its ends included; BytesRead their bytes.
func (pr *PreparedRange) Read() int64 { return pr.read }

// BytesRead is how many bytes of segments the read has scanned so far.
func (pr *PreparedRange) BytesRead() int64 { return pr.bytes }

// Err is the error that ended the read, nil at a clean end.
func (pr *PreparedRange) Err() error { return pr.err }

// Close releases the segment being read. It is safe to call more than
// once.
func (pr *PreparedRange) Close() error {
	pr.closeSegment()
	pr.done = true
	return nil
}
