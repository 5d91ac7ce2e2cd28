package audience

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/herald-dev/herald/sharding"
)

// ErrNotRegular is returned by Open for a file audience whose path is not a
// regular file (a directory, a device).
var ErrNotRegular = errors.New("audience: not a regular file")

// fileSource reads JSON Lines. Every line, blank or not, takes one Seq, so
// a record's line number is always Seq+1 and a cursor's Seq and Offset
// describe the same place however the stream was reached. Blank lines
// (nothing but spaces, tabs and a line ending) are not returned.
type fileSource struct {
	LineReader
	path    string
	f       *os.File
	tooLong string // the reason given for over-long lines

	seq      uint64 // Seq of the next line
	off      int64  // offset of the next line
	afterOff int64  // offset after the last line returned

	idBuf []byte // unescaped ids
}

// LineReader reads JSON Lines as the file source does: lines of at most
// a limit, longer ones cut to it and flagged. The prepared source reads
// its segments with it.
type LineReader struct {
	br      *bufio.Reader
	max     int
	longBuf []byte // the kept prefix of an over-long line
}

// NewLineReader reads r with lines of at most lim's MaxLineBytes.
func NewLineReader(r io.Reader, lim Limits) *LineReader {
	lr := newLineReader(r, lim.maxLine())
	return &lr
}

func newLineReader(r io.Reader, max int) LineReader {
	// Two bytes beyond the limit hold a line of exactly the limit and
	// its "\r\n", so ReadSlice fills the buffer only for longer lines.
	return LineReader{br: bufio.NewReaderSize(r, max+2), max: max}
}

// ReadLine returns the next line without its line ending, the bytes it
// took in the input (0 at the end), and whether it was longer than the
// limit (then only its first MaxLineBytes are returned). The line is
// valid until the next call.
func (s *LineReader) ReadLine() (line []byte, n int64, long bool, err error) { return s.readLine() }

// TooLong is the Invalid reason of an over-long line.
func (s *LineReader) TooLong() string { return fmt.Sprintf("line longer than %d bytes", s.max) }

func openFile(path string, from sharding.Cursor, lim Limits) (*fileSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audience: open: %w", err)
	}
	src, err := newFileSource(f, path, from, lim)
	if err != nil {
		f.Close()
		return nil, err
	}
	return src, nil
}

func newFileSource(f *os.File, path string, from sharding.Cursor, lim Limits) (*fileSource, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audience: open: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s", ErrNotRegular, path)
	}
	if err := checkFileCursor(f, fi.Size(), from); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCursor, path, err)
	}
	if _, err := f.Seek(from.Offset, io.SeekStart); err != nil {
		return nil, fmt.Errorf("audience: seek %s: %w", path, err)
	}
	maxLine := lim.maxLine()
	return &fileSource{
		LineReader: newLineReader(f, maxLine),
		path:       path,
		f:          f,
		tooLong:    fmt.Sprintf("line longer than %d bytes", maxLine),
		seq:        from.Seq,
		off:        from.Offset,
		afterOff:   from.Offset,
	}, nil
}

// checkFileCursor refuses a cursor that cannot have come from reading this
// file: every line ends in '\n' except perhaps the last, so a cursor past
// the first line must follow a '\n' or sit at the very end. This catches
// stale or foreign cursors without reading the file up to them.
func checkFileCursor(f *os.File, size int64, c sharding.Cursor) error {
	switch {
	case c.Offset < 0 || c.Offset > size:
		return fmt.Errorf("offset %d outside a file of %d bytes", c.Offset, size)
	case (c.Seq == 0) != (c.Offset == 0):
		return fmt.Errorf("seq %d does not match offset %d", c.Seq, c.Offset)
	case c.Offset == 0 || c.Offset == size:
		return nil
	}
	var b [1]byte
	if _, err := f.ReadAt(b[:], c.Offset-1); err != nil {
		return fmt.Errorf("read before offset %d: %w", c.Offset, err)
	}
	if b[0] != '\n' {
		return fmt.Errorf("offset %d is not at the start of a line", c.Offset)
	}
	return nil
}

func (s *fileSource) next(r *Record) (bool, error) {
	for {
		line, n, long, err := s.readLine()
		if err != nil {
			return false, fmt.Errorf("audience: read %s at offset %d: %w", s.path, s.off, err)
		}
		if n == 0 {
			return false, nil
		}
		seq, off := s.seq, s.off
		s.seq++
		s.off += n
		if !long && blank(line) {
			continue
		}
		s.afterOff = s.off
		*r = Record{Seq: seq, Offset: off, Line: int64(seq) + 1}
		tooLong := ""
		if long {
			tooLong = s.tooLong
		}
		s.idBuf = r.SetLine(line, tooLong, s.idBuf)
		return true, nil
	}
}

// readLine returns the next line without its line ending and the number of
// bytes it took in the file (0 at the end). A line longer than the limit is
// consumed in buffer-sized pieces; only its first max bytes are kept.
func (s *LineReader) readLine() (line []byte, n int64, long bool, err error) {
	b, err := s.br.ReadSlice('\n')
	n = int64(len(b))
	if errors.Is(err, bufio.ErrBufferFull) {
		s.longBuf = append(s.longBuf[:0], b[:s.max]...)
		for errors.Is(err, bufio.ErrBufferFull) {
			b, err = s.br.ReadSlice('\n')
			n += int64(len(b))
		}
		if err != nil && err != io.EOF {
			return nil, 0, false, err
		}
		return s.longBuf, n, true, nil
	}
	if err != nil && err != io.EOF {
		return nil, 0, false, err
	}
	line = b
	if len(line) > 0 && line[len(line)-1] == '\n' {
		line = line[:len(line)-1]
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
	}
	if len(line) > s.max {
		return line[:s.max], n, true, nil
	}
	return line, n, false, nil
}

func blank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

func (s *fileSource) after(r *Record) sharding.Cursor {
	return sharding.Cursor{Seq: r.Seq + 1, Offset: s.afterOff}
}

func (s *fileSource) end() sharding.Cursor { return sharding.Cursor{Seq: s.seq, Offset: s.off} }

func (s *fileSource) close() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("audience: close %s: %w", s.path, err)
	}
	return nil
}
