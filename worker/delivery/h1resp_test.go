package delivery

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// readBoth reads raw with readResponse's own parser (taken reports
// whether it took it) and with http.ReadResponse, bodies included.
func readBoth(t *testing.T, raw string) (taken bool, fast, std *http.Response, fastBody, stdBody []byte, stdErr error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://endpoint.test/push", nil)
	br := bufio.NewReaderSize(strings.NewReader(raw), h1BufSize)
	br.Peek(1)
	buf, _ := br.Peek(br.Buffered())
	if end := bytes.Index(buf, []byte("\r\n\r\n")); end >= 0 {
		_, taken = parseHead(buf[:end+2])
	}
	var err error
	if fast, err = readResponse(br, req); err == nil {
		fastBody, err = io.ReadAll(fast.Body)
		if err != nil {
			fastBody = append(fastBody, "<error: "+err.Error()+">"...)
		}
	}
	std, stdErr = http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), req)
	if stdErr == nil {
		var err error
		stdBody, err = io.ReadAll(std.Body)
		if err != nil {
			stdBody = append(stdBody, "<error: "+err.Error()+">"...)
		}
	}
	return taken, fast, std, fastBody, stdBody, stdErr
}

// sameResponse compares what the sender reads of an answer.
func sameResponse(a, b *http.Response) bool {
	return a.Status == b.Status && a.StatusCode == b.StatusCode && a.Proto == b.Proto &&
		a.ProtoMajor == b.ProtoMajor && a.ProtoMinor == b.ProtoMinor && reflect.DeepEqual(a.Header, b.Header) &&
		a.ContentLength == b.ContentLength && a.Close == b.Close && (a.Body == http.NoBody) == (b.Body == http.NoBody) &&
		reflect.DeepEqual(a.TransferEncoding, b.TransferEncoding) && reflect.DeepEqual(a.Trailer, b.Trailer)
}

func TestReadResponse(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		take bool // the parser of its own takes it; otherwise http.ReadResponse does
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: Mon, 30 Nov 2026 05:00:00 GMT\r\n\r\nok", true},
		{"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", true},
		{"HTTP/1.1 204 No Content\r\n\r\n", true},
		{"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1 \r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-A: 1\r\nx-a:\t2\r\n\r\ndown\n", true},
		{"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", true},
		// Left to net/http.
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false},
		{"HTTP/1.1 200 OK\r\n\r\nunframed", false},
		{"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false},
		{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", false},
		{"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nX-Caf\xc3\xa9: 1\r\nContent-Length: 0\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", true}, // the body ends early: an error either way
		{"HTTP/1.1 200 OK\r\nContent-Length: 0", false},              // the head is not all there
	} {
		taken, fast, std, fastBody, stdBody, stdErr := readBoth(t, tc.raw)
		if taken != tc.take {
			t.Errorf("%q: taken %v, want %v", tc.raw, taken, tc.take)
		}
		if stdErr != nil {
			if fast != nil && taken {
				t.Errorf("%q: read %+v; net/http: %v", tc.raw, fast, stdErr)
			}
			continue
		}
		if fast == nil || !sameResponse(fast, std) || !bytes.Equal(fastBody, stdBody) {
			t.Errorf("%q:\n read     %+v %q\n net/http %+v %q", tc.raw, fast, fastBody, std, stdBody)
		}
	}
}

// FuzzReadResponse holds readResponse to http.ReadResponse: whatever its
// own parser takes, net/http reads the same answer from.
func FuzzReadResponse(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	f.Add("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n")
	f.Add("HTTP/1.1 204 No Content\r\nx-request-id: abc\r\n\r\n")
	f.Add("HTTP/1.1 429 Too Many\r\nRetry-After:  2\t\r\nContent-Length: 4\r\n\r\nslow")
	f.Fuzz(func(t *testing.T, raw string) {
		taken, fast, std, fastBody, stdBody, stdErr := readBoth(t, raw)
		if !taken {
			return
		}
		if stdErr != nil {
			t.Fatalf("%q: taken, read %+v; net/http: %v", raw, fast, stdErr)
		}
		if !sameResponse(fast, std) || !bytes.Equal(fastBody, stdBody) {
			t.Fatalf("%q:\n read     %+v %q\n net/http %+v %q", raw, fast, fastBody, std, stdBody)
		}
	})
}

// TestReadResponseHead: the answer to a HEAD has no body whatever its
// Content-Length says; readResponse leaves it to net/http, and the
// connection's next answer is read whole.
func TestReadResponseHead(t *testing.T) {
	raw := "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
	br := bufio.NewReaderSize(strings.NewReader(raw), h1BufSize)
	head, _ := http.NewRequest(http.MethodHead, "http://endpoint.test/push", nil)
	resp, err := readResponse(br, head)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Body != http.NoBody || resp.ContentLength != 5 {
		t.Fatalf("HEAD: %+v, %v; want 200, no body, ContentLength 5", resp, err)
	}
	post, _ := http.NewRequest(http.MethodPost, "http://endpoint.test/push", nil)
	if resp, err = readResponse(br, post); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("next answer: %+v, %v; want 204", resp, err)
	}
}
