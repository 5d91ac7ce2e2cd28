package delivery

import "strconv"

// scanAnswer reads the usual shape of a batch answer without reflection:
//
//	{"results":[{"idempotency_key":"K","status":200},...]}
//
// whitespace anywhere JSON allows it, each result's fields in any order,
// "retry_after" (a number) and "error" (a string) where present. It
// answers for the open items (indexes into items) and returns ok only
// when the answer is exactly that, one result per open item, each for the
// right key with a status in 100..599: then the results are what
// encoding/json would have made of it (FuzzScanAnswer holds it to that).
// Anything else (escapes or non-ASCII in a string, null, other or repeated
// fields, another key's result) is left to readAnswer's encoding/json,
// which also says what was wrong. Decoding the answer with encoding/json
// was the largest single cost of a batched worker: about 0.4 µs an item.
func scanAnswer(answer []byte, items []Item, open []int) ([]itemAnswer, bool) {
	s := answerScanner{b: answer}
	if !s.lit('{') || !s.str("results") || !s.lit(':') || !s.lit('[') {
		return nil, false
	}
	out := make([]itemAnswer, 0, len(open))
	if !s.peek(']') {
		for {
			if len(out) == len(open) {
				return nil, false
			}
			a, ok := s.result(items[open[len(out)]].Key)
			if !ok {
				return nil, false
			}
			out = append(out, a)
			if s.lit(',') {
				continue
			}
			break
		}
	}
	if !s.lit(']') || !s.lit('}') || s.ws() != len(s.b) || len(out) != len(open) {
		return nil, false
	}
	return out, true
}

// answerScanner walks a batch answer; b[i:] is what is left.
type answerScanner struct {
	b []byte
	i int
}

// ws skips JSON whitespace and returns the position after it.
func (s *answerScanner) ws() int {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return s.i
		}
	}
	return s.i
}

// peek reports whether c comes next, after whitespace, without taking it.
func (s *answerScanner) peek(c byte) bool {
	return s.ws() < len(s.b) && s.b[s.i] == c
}

// lit takes c, after whitespace, if it comes next.
func (s *answerScanner) lit(c byte) bool {
	if s.peek(c) {
		s.i++
		return true
	}
	return false
}

// plain takes a string of printable ASCII without escapes and returns its
// contents; ok is false for any other string or none.
func (s *answerScanner) plain() (v []byte, ok bool) {
	if !s.lit('"') {
		return nil, false
	}
	start := s.i
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			v = s.b[start:s.i]
			s.i++
			return v, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

// str takes the string want, and nothing else.
func (s *answerScanner) str(want string) bool {
	v, ok := s.plain()
	return ok && string(v) == want
}

// result takes one result object, which must be for key.
func (s *answerScanner) result(key string) (itemAnswer, bool) {
	var (
		a                          itemAnswer
		haveKey, haveStatus        bool
		haveRetry, haveError, more bool
	)
	if !s.lit('{') {
		return a, false
	}
	for more = !s.lit('}'); more; more = s.lit(',') {
		name, ok := s.plain()
		if !ok || !s.lit(':') {
			return a, false
		}
		switch string(name) {
		case "idempotency_key":
			v, ok := s.plain()
			if haveKey || !ok || string(v) != key {
				return a, false
			}
			a.Key, haveKey = key, true
		case "status":
			v, ok := s.number()
			if haveStatus || !ok || len(v) != 3 || v[0] < '1' || v[0] > '5' || v[1] < '0' || v[1] > '9' || v[2] < '0' || v[2] > '9' {
				return a, false // also refuses fractions and exponents, as encoding/json does for an int
			}
			a.Status, haveStatus = int(v[0]-'0')*100+int(v[1]-'0')*10+int(v[2]-'0'), true
		case "retry_after":
			v, ok := s.number()
			if haveRetry || !ok {
				return a, false
			}
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil {
				return a, false
			}
			a.RetryAfter, haveRetry = &f, true
		case "error":
			v, ok := s.plain()
			if haveError || !ok {
				return a, false
			}
			a.Error, haveError = string(v), true
		default:
			return a, false
		}
	}
	return a, haveKey && haveStatus && s.lit('}')
}

// number takes a JSON number (RFC 8259's grammar, which is narrower than
// strconv's) and returns its text.
func (s *answerScanner) number() ([]byte, bool) {
	s.ws()
	start := s.i
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
	} else if digits() == 0 {
		return nil, false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return nil, false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	return s.b[start:s.i], true
}
