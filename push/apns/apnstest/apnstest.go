// Package apnstest is a fake Apple Push Notification service for tests,
// `herald dev` and `herald demo`, in the manner of net/http/httptest: an
// HTTP/2 server over TLS on loopback that checks every request as Apple
// would (the ES256 provider token against the key's public half, its key
// id and team, the headers, the payload) and answers as Apple does, real
// error bodies included, for the tokens a test declares dead or for
// whatever Reply returns.
package apnstest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/herald-dev/herald/push/internal/ledger"
)

// Notification is one notification the server accepted.
type Notification struct {
	Token   string
	Header  http.Header
	Payload []byte
	At      time.Time
}

// Reply is an answer the server gives instead of accepting: Apple's status
// and reason, and a Retry-After when set.
type Reply struct {
	Status     int
	Reason     string
	RetryAfter string
}

// Apple's answers a test may inject.
var (
	Unregistered       = Reply{Status: http.StatusGone, Reason: "Unregistered"}
	BadDeviceToken     = Reply{Status: http.StatusBadRequest, Reason: "BadDeviceToken"}
	TooManyRequests    = Reply{Status: http.StatusTooManyRequests, Reason: "TooManyRequests"}
	ServiceUnavailable = Reply{Status: http.StatusServiceUnavailable, Reason: "ServiceUnavailable", RetryAfter: "1"}
)

// Key is a .p8 signing key made for a test: the PEM a worker is given as
// its secret, and the public half the server checks tokens with.
type Key struct {
	ID, TeamID string
	P8         []byte
	Public     *ecdsa.PublicKey
}

// NewKey makes a P-256 key as Apple would hand it out.
func NewKey(id, teamID string) (Key, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("apnstest: key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return Key{}, fmt.Errorf("apnstest: key: %w", err)
	}
	p8 := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return Key{ID: id, TeamID: teamID, P8: p8, Public: &k.PublicKey}, nil
}

// Server is a running fake APNs.
type Server struct {
	*httptest.Server
	key   Key
	topic string

	// Reply, when set, is asked about every well-formed request before it
	// is accepted; a non-nil Reply is sent instead. It runs on the
	// server's goroutines and must be safe for concurrent use.
	Reply func(n Notification) *Reply

	// ledger keeps the dead tokens, the notifications accepted (keyed by
	// apns-id) and the refusals by Apple's reason; its Kill, Accepted and
	// KeepAccepted are the Server's.
	ledger.Ledger[Notification, Reply]

	mu      sync.Mutex
	protos  map[string]int
	bearers map[string]int64 // provider tokens verified, to their iat
	conns   int              // connections accepted
	open    int              // connections open now
}

// NewServer starts a fake APNs that accepts notifications for topic signed
// with key, on a free loopback port. The caller must Close it. Client()
// returns an HTTP/2 client that trusts it. GET /stats serves Stats as
// JSON.
func NewServer(key Key, topic string) *Server { return NewServerOn(nil, key, topic) }

// NewServerOn is NewServer on ln (nil: a free loopback port), for
// `herald sink --mode apns`.
func NewServerOn(ln net.Listener, key Key, topic string) *Server {
	s := &Server{key: key, topic: topic, protos: map[string]int{}, bearers: map[string]int64{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/", s.serve)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, s.Stats()) })
	s.Server = httptest.NewUnstartedServer(mux)
	if ln != nil {
		s.Server.Listener.Close()
		s.Server.Listener = ln
	}
	s.Server.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		s.mu.Lock()
		switch st {
		case http.StateNew:
			s.conns++
			s.open++
		case http.StateClosed, http.StateHijacked:
			s.open--
		}
		s.mu.Unlock()
	}
	s.Server.EnableHTTP2 = true
	s.Server.StartTLS()
	return s
}

// Stats are counts of what the server saw.
type Stats struct {
	Accepted int `json:"accepted"`
	// Distinct counts distinct apns-ids accepted; Accepted - Distinct are
	// re-sends.
	Distinct int            `json:"distinct"`
	Refused  map[string]int `json:"refused"`
	// Protocols counts requests by protocol: every one must be HTTP/2.0.
	Protocols map[string]int `json:"protocols"`
	// Tokens counts the distinct provider tokens seen.
	Tokens int `json:"provider_tokens"`
	// Conns counts the connections accepted, Open those open now: HTTP/2
	// needs few.
	Conns int `json:"connections"`
	Open  int `json:"connections_open"`
}

// Stats returns counts of what the server saw.
func (s *Server) Stats() Stats {
	accepted, distinct, refused := s.Counts()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Accepted: accepted, Distinct: distinct, Refused: refused, Protocols: map[string]int{}, Tokens: len(s.bearers), Conns: s.conns, Open: s.open}
	for k, v := range s.protos {
		st.Protocols[k] = v
	}
	return st
}

var (
	tokenRE = regexp.MustCompile(`^[0-9a-fA-F]{16,200}$`)
	uuidRE  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// maxPayload is Apple's limit for a regular notification.
const maxPayload = 4096

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.protos[r.Proto]++
	s.mu.Unlock()
	fail := func(rep Reply) {
		s.Refuse(rep.Reason)
		w.Header().Set("Content-Type", "application/json")
		if rep.RetryAfter != "" {
			w.Header().Set("Retry-After", rep.RetryAfter)
		}
		if id := r.Header.Get("apns-id"); id != "" {
			w.Header().Set("apns-id", id)
		}
		w.WriteHeader(rep.Status)
		body := map[string]any{"reason": rep.Reason}
		if rep.Status == http.StatusGone {
			body["timestamp"] = time.Now().UnixMilli()
		}
		json.NewEncoder(w).Encode(body)
	}
	bad := func(reason string) { fail(Reply{Status: http.StatusBadRequest, Reason: reason}) }
	if r.ProtoMajor != 2 {
		// Apple speaks HTTP/2 only; an HTTP/1.1 request never gets here
		// in reality.
		bad("BadRequest: HTTP/2 required")
		return
	}
	if r.Method != http.MethodPost {
		fail(Reply{Status: http.StatusMethodNotAllowed, Reason: "MethodNotAllowed"})
		return
	}
	token, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
	if !ok || token == "" {
		bad("MissingDeviceToken")
		return
	}
	if rep := s.checkBearer(r.Header.Get("Authorization")); rep != nil {
		fail(*rep)
		return
	}
	switch {
	case r.Header.Get("apns-topic") != s.topic:
		bad("TopicDisallowed")
		return
	case r.Header.Get("apns-push-type") == "":
		bad("InvalidPushType")
		return
	case r.Header.Get("apns-id") != "" && !uuidRE.MatchString(r.Header.Get("apns-id")):
		bad("BadMessageId")
		return
	case len(r.Header.Get("apns-collapse-id")) > 64:
		bad("BadCollapseId")
		return
	}
	if p := r.Header.Get("apns-priority"); p != "" && p != "10" && p != "5" && p != "1" {
		bad("BadPriority")
		return
	}
	if e := r.Header.Get("apns-expiration"); e != "" {
		if _, err := strconv.ParseInt(e, 10, 64); err != nil {
			bad("BadExpirationDate")
			return
		}
	}
	payload, err := io.ReadAll(io.LimitReader(r.Body, maxPayload+1))
	switch {
	case err != nil:
		bad("BadRequest")
		return
	case len(payload) == 0:
		bad("PayloadEmpty")
		return
	case len(payload) > maxPayload:
		fail(Reply{Status: http.StatusRequestEntityTooLarge, Reason: "PayloadTooLarge"})
		return
	}
	var body struct {
		APS json.RawMessage `json:"aps"`
	}
	if json.Unmarshal(payload, &body) != nil || len(body.APS) == 0 {
		bad("BadRequest: payload must be a JSON object with aps")
		return
	}
	if !tokenRE.MatchString(token) {
		bad("BadDeviceToken")
		return
	}
	n := Notification{Token: token, Header: r.Header.Clone(), Payload: payload, At: time.Now()}
	if rep, dead := s.Dead(token); dead {
		fail(rep)
		return
	}
	if s.Reply != nil {
		if rep := s.Reply(n); rep != nil {
			fail(*rep)
			return
		}
	}
	id := r.Header.Get("apns-id")
	if id == "" {
		id = fmt.Sprintf("%08x-0000-4000-8000-000000000000", time.Now().UnixNano()&0xffffffff)
	}
	s.Accept(n, id)
	w.Header().Set("apns-id", id)
	w.WriteHeader(http.StatusOK)
}

// checkBearer verifies the provider token as Apple does: an ES256 JWT
// whose kid is the key's id and whose iss is the team, signed by the key,
// issued within the last hour.
func (s *Server) checkBearer(auth string) *Reply {
	forbidden := func(reason string) *Reply { return &Reply{Status: http.StatusForbidden, Reason: reason} }
	raw, ok := strings.CutPrefix(auth, "bearer ")
	if !ok {
		return forbidden("MissingProviderToken")
	}
	// As Apple does, a token verified once is trusted until it is too old;
	// its age is still checked on every request.
	s.mu.Lock()
	iat, seen := s.bearers[raw]
	s.mu.Unlock()
	if seen {
		if time.Since(time.Unix(iat, 0)) > time.Hour {
			return forbidden("ExpiredProviderToken")
		}
		return nil
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return forbidden("InvalidProviderToken")
	}
	var head struct{ Alg, Kid string }
	var claims struct {
		Iss string
		Iat int64
	}
	if decodeJSON(parts[0], &head) != nil || decodeJSON(parts[1], &claims) != nil {
		return forbidden("InvalidProviderToken")
	}
	if head.Alg != "ES256" || head.Kid != s.key.ID || claims.Iss != s.key.TeamID {
		return forbidden("InvalidProviderToken")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return forbidden("InvalidProviderToken")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, ss := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(s.key.Public, digest[:], r, ss) {
		return forbidden("InvalidProviderToken")
	}
	if age := time.Since(time.Unix(claims.Iat, 0)); age > time.Hour || age < -time.Minute {
		return forbidden("ExpiredProviderToken")
	}
	s.mu.Lock()
	s.bearers[raw] = claims.Iat
	s.mu.Unlock()
	return nil
}

func decodeJSON(part string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		return err
	}
	return json.NewDecoder(bytes.NewReader(b)).Decode(v)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
