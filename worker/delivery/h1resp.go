package delivery

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"strings"
)

// readResponse reads an answer from br for req. The usual answer of an
// endpoint, with its whole head already buffered, is parsed here: HTTP/1.1,
// a final status, ordinary header lines, its body framed by one
// Content-Length or absent (204, 304). Anything else (the answer to a
// HEAD, another version, 1xx, chunked or unframed bodies, Connection or
// Trailer headers, header lines that are not plain ASCII, a head not yet
// all in the buffer) goes to http.ReadResponse, which then finds br as it
// was: nothing is
// consumed before the head is known to be the usual kind. The answer is
// the one http.ReadResponse would return (FuzzReadResponse holds it to
// that); it costs a fraction of the allocations, which were a tenth of an
// unbatched worker's CPU.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodHead {
		return http.ReadResponse(br, req) // no body whatever the head says
	}
	if br.Buffered() == 0 {
		if _, err := br.Peek(1); err != nil {
			return http.ReadResponse(br, req)
		}
	}
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return http.ReadResponse(br, req)
	}
	resp, ok := parseHead(buf[:end+2])
	if !ok {
		return http.ReadResponse(br, req)
	}
	resp.Request = req
	if _, err := br.Discard(end + 4); err != nil {
		return nil, err // cannot happen: the bytes are buffered
	}
	if resp.ContentLength > 0 {
		resp.Body = &lengthBody{r: br, n: resp.ContentLength}
	} else {
		resp.Body = http.NoBody
	}
	return resp, nil
}

// parseHead parses a response's status line and header lines, each ending
// in CRLF, and says whether they are the usual kind readResponse takes.
func parseHead(head []byte) (*http.Response, bool) {
	const proto = "HTTP/1.1 "
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	if len(line) < len(proto)+4 || string(line[:len(proto)]) != proto || line[len(proto)+3] != ' ' {
		return nil, false
	}
	code := line[len(proto) : len(proto)+3]
	status := 0
	for _, c := range code {
		if c < '0' || c > '9' {
			return nil, false
		}
		status = status*10 + int(c-'0')
	}
	if status < 200 || status > 999 || !plainASCII(line[len(proto)+4:], false) {
		return nil, false
	}
	// One string for the whole head; the status, keys and values are
	// pieces of it.
	s := string(head)
	statusLine := len(line)
	off := statusLine + 2
	lines := bytes.Count(rest, []byte("\r\n"))
	h := make(http.Header, lines)
	values := make([]string, lines)
	contentLength := int64(-1)
	for i := 0; len(rest) > 0; i++ {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		k, v, found := bytes.Cut(line, []byte(":"))
		if !found || len(k) == 0 || !tokenBytes(k) || !plainASCII(v, true) {
			return nil, false
		}
		key := s[off : off+len(k)]
		if !canonical(k) {
			key = textproto.CanonicalMIMEHeaderKey(key)
		}
		vstart := off + len(k) + 1
		value := strings.Trim(s[vstart:vstart+len(v)], " \t")
		off += len(line) + 2
		switch key {
		case "Connection", "Transfer-Encoding", "Trailer":
			return nil, false
		case "Content-Length":
			if contentLength >= 0 {
				return nil, false
			}
			n, ok := parseLength(value)
			if !ok {
				return nil, false
			}
			contentLength = n
		}
		values[i] = value
		if vs, ok := h[key]; ok {
			h[key] = append(vs, value)
		} else {
			h[key] = values[i : i+1 : i+1]
		}
	}
	if status == http.StatusNoContent || status == http.StatusNotModified {
		contentLength = 0
	} else if contentLength < 0 {
		return nil, false // a body up to the connection's close
	}
	return &http.Response{
		Status:        s[len(proto):statusLine],
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		ContentLength: contentLength,
	}, true
}

// plainASCII reports whether b holds printable ASCII only, and tabs where
// tab says so.
func plainASCII(b []byte, tab bool) bool {
	for _, c := range b {
		if (c < ' ' || c > '~') && (!tab || c != '\t') {
			return false
		}
	}
	return true
}

// tokenBytes reports whether b is an RFC 9110 token of letters, digits and
// hyphens: the header names readResponse takes.
func tokenBytes(b []byte) bool {
	for _, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// canonical reports whether the header name k (letters, digits and
// hyphens) is already in canonical form: upper case at the start and after
// each hyphen, lower case elsewhere.
func canonical(k []byte) bool {
	upper := true
	for _, c := range k {
		switch {
		case upper && 'a' <= c && c <= 'z', !upper && 'A' <= c && c <= 'Z':
			return false
		}
		upper = c == '-'
	}
	return true
}

// parseLength reads a Content-Length value: decimal digits, at most 18.
func parseLength(v string) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// lengthBody is an answer's body of a known length: io.EOF with its last
// byte, io.ErrUnexpectedEOF if the connection ends before.
type lengthBody struct {
	r *bufio.Reader
	n int64
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	k, err := b.r.Read(p)
	b.n -= int64(k)
	switch {
	case b.n == 0:
		err = io.EOF
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
	}
	return k, err
}

func (b *lengthBody) Close() error { return nil }
