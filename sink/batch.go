package sink

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/herald-dev/herald/internal/sleep"
)

// A batch is a POST whose body is a JSON array of deliveries, each with
// its own idempotency_key (docs/CONTRACTS.md, "A batch of deliveries").
// The sink answers 200 with a result per item, in order, and counts every
// item as it would count a delivery of its own; an answer that applies to
// the whole request (outage, injected 429 or 5xx, a bad signature) is
// counted once per item.

// maxBatchItems is the most items a batch may carry: Herald's largest
// endpoint.batch_size.
const maxBatchItems = 1000

var errBatch = errors.New("not a JSON array of delivery objects")

// isBatch reports whether body is a JSON array, by its first byte past
// white space.
func isBatch(body []byte) bool {
	b := skipSpace(body)
	return len(b) > 0 && b[0] == '['
}

// splitBatch returns the elements of the JSON array body, each an object,
// appending them to items. It checks the array's structure (nesting,
// strings and escapes) but not every value's grammar; strict mode checks
// that too.
func splitBatch(body []byte, items [][]byte) ([][]byte, error) {
	b := skipSpace(body)
	if len(b) == 0 || b[0] != '[' {
		return items, errBatch
	}
	b = skipSpace(b[1:])
	if len(b) > 0 && b[0] == ']' {
		if len(skipSpace(b[1:])) != 0 {
			return items, errBatch
		}
		return items, nil
	}
	for {
		if len(b) == 0 || b[0] != '{' {
			return items, errBatch
		}
		n, ok := valueEnd(b)
		if !ok {
			return items, errBatch
		}
		if len(items) == maxBatchItems {
			return items, errBatchTooLarge
		}
		items = append(items, b[:n])
		b = skipSpace(b[n:])
		switch {
		case len(b) == 0:
			return items, errBatch
		case b[0] == ',':
			b = skipSpace(b[1:])
		case b[0] == ']':
			if len(skipSpace(b[1:])) != 0 {
				return items, errBatch
			}
			return items, nil
		default:
			return items, errBatch
		}
	}
}

var errBatchTooLarge = errors.New("more than " + strconv.Itoa(maxBatchItems) + " items")

// valueEnd returns the length of the object or array at the start of b,
// following nesting and strings, and false if b ends first.
func valueEnd(b []byte) (int, bool) {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if i >= len(b) {
				return 0, false
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				return i + 1, true
			}
		}
	}
	return 0, false
}

var idempotencyKeyName = []byte(`"idempotency_key"`)

// itemKey returns the string value of the idempotency_key member of a
// delivery object, found as broadcastID finds the broadcast id: Herald's
// keys are printable ASCII without escapes. "" when there is none.
func itemKey(item []byte) string {
	i := bytes.Index(item, idempotencyKeyName)
	if i < 0 {
		return ""
	}
	rest := skipSpace(item[i+len(idempotencyKeyName):])
	if len(rest) == 0 || rest[0] != ':' {
		return ""
	}
	rest = skipSpace(rest[1:])
	if len(rest) == 0 || rest[0] != '"' {
		return ""
	}
	rest = rest[1:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 || end > 200 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return ""
	}
	return string(rest[:end])
}

// batchResult is one item's answer.
type batchResult struct {
	key    string
	status int
	err    string
}

// deliverBatch answers a batch whose body has been read (and verified,
// when the sink verifies signatures).
func (s *Sink) deliverBatch(w http.ResponseWriter, r *http.Request, c *counters, body []byte) {
	items, err := splitBatch(body, make([][]byte, 0, 128))
	if err != nil {
		c.requests.Add(1)
		c.badRequests.Add(1)
		http.Error(w, "batch: "+err.Error(), http.StatusBadRequest)
		return
	}
	n := int64(len(items))
	c.requests.Add(n)
	c.batches.Add(1)
	if s.cfg.Strict && !json.Valid(body) {
		c.invalidBodies.Add(n)
		http.Error(w, "strict: batch body is not JSON", http.StatusBadRequest)
		return
	}
	if s.outage(w, c, n) {
		return
	}
	delay, status := s.delay()
	if delay > 0 && !sleep.For(r.Context(), delay) {
		c.abandoned.Add(n)
		return
	}
	if s.injected(w, c, status, n) {
		return
	}
	results := make([]batchResult, len(items))
	now := time.Now()
	for i, item := range items {
		results[i] = s.deliverItem(c, item, now)
	}
	out := appendResults(make([]byte, 0, 16+len(items)*72), results, s.retryAfter)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// deliverItem counts one item of a batch and returns its answer.
func (s *Sink) deliverItem(c *counters, item []byte, now time.Time) batchResult {
	key := itemKey(item)
	if key == "" {
		c.badRequests.Add(1)
		return batchResult{status: http.StatusBadRequest, err: "no idempotency_key string without escapes of at most 200 bytes"}
	}
	if s.cfg.Strict && !validKey(key) {
		c.invalidBodies.Add(1)
		return batchResult{key: key, status: http.StatusBadRequest, err: "strict: key is not printable ASCII"}
	}
	b := c.broadcast(broadcastID(item))
	b.requests.Add(1)
	h := hashKey(key)
	if s.cfg.Retry.picks(h) && c.refusals.refuse(h, s.cfg.Retry.Times) {
		c.injected503.Add(1)
		return batchResult{key: key, status: http.StatusServiceUnavailable}
	}
	if s.refuses && s.refused(h) {
		c.refused.Add(1)
		b.refused.Add(1)
		return batchResult{key: key, status: http.StatusBadRequest, err: "refused: this sink refuses this key (--refuse-400)"}
	}
	if c.keys.add(h) {
		c.firstDelivery(now)
		b.delivered.Add(1)
		return batchResult{key: key, status: http.StatusOK}
	}
	c.duplicates.Add(1)
	b.duplicates.Add(1)
	return batchResult{key: key, status: http.StatusConflict}
}

// appendResults appends the answer to a batch: {"results":[...]} with one
// object per item, a retry_after of the sink's Retry-After for 503s.
func appendResults(b []byte, results []batchResult, retryAfter string) []byte {
	b = append(b, `{"results":[`...)
	for i, r := range results {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"idempotency_key":`...)
		b = appendJSONString(b, r.key)
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(r.status), 10)
		if r.status == http.StatusServiceUnavailable {
			b = append(b, `,"retry_after":`...)
			b = append(b, retryAfter...)
		}
		if r.err != "" {
			b = append(b, `,"error":`...)
			b = appendJSONString(b, r.err)
		}
		b = append(b, '}')
	}
	return append(b, "]}\n"...)
}

// appendJSONString appends s as a JSON string: as it is when it needs no
// escape (every key Herald sends), through encoding/json otherwise.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
