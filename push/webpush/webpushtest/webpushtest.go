// Package webpushtest is a fake Web Push service for tests, `herald dev`
// and `herald demo`, in the manner of net/http/httptest: an HTTP/2 TLS
// server on loopback that hands out subscriptions as a browser would
// (each with its own P-256 key pair and auth secret, the private half kept
// here), and for every push checks the VAPID JWT (RFC 8292) against the
// application server's key, then decrypts the aes128gcm payload (RFC 8291)
// with the subscription's private key and keeps the plaintext. A test can
// declare a subscription gone (404 or 410) or answer as Reply says.
package webpushtest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/herald-dev/herald/push/internal/ledger"
)

// Subscription is what a browser's PushSubscription.toJSON() gives: the
// push endpoint and the user agent's keys, base64url.
type Subscription struct {
	Endpoint string `json:"endpoint"`
	Keys     struct {
		P256dh string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
}

// Push is one push the service accepted, decrypted.
type Push struct {
	// ID is the subscription's id, the last segment of its endpoint.
	ID        string
	Plaintext []byte
	Header    http.Header
	At        time.Time
}

// Reply is an answer the service gives instead of accepting.
type Reply struct {
	Status     int
	RetryAfter string
}

// Answers a test may inject.
var (
	NotFound    = Reply{Status: http.StatusNotFound}
	Gone        = Reply{Status: http.StatusGone}
	TooMany     = Reply{Status: http.StatusTooManyRequests, RetryAfter: "1"}
	Unavailable = Reply{Status: http.StatusServiceUnavailable, RetryAfter: "1"}
)

type agent struct {
	key  *ecdh.PrivateKey
	auth []byte
}

// Server is a running fake push service.
type Server struct {
	*httptest.Server
	vapid    *ecdsa.PublicKey
	vapidRaw string

	// Reply, when set, is asked about every push that decrypted; a
	// non-nil Reply is sent instead. It must be safe for concurrent use.
	Reply func(p Push) *Reply

	// ledger keeps the dead subscriptions, the pushes accepted (keyed by
	// the idempotency_key of their plaintext) and the refusals by status;
	// its Kill, Accepted and KeepAccepted are the Server's.
	ledger.Ledger[Push, Reply]

	mu     sync.Mutex
	agents map[string]agent
}

// NewServer starts a push service that accepts pushes signed with the
// VAPID key whose public half is vapidPublic (base64url, as the sender's
// secret holds it), on a free loopback port. The caller must Close it.
// GET /stats serves Stats as JSON, and POST /subscribe/{id} makes a
// subscription (Subscribe) and answers it as JSON, for building an
// audience by hand.
func NewServer(vapidPublic string) (*Server, error) { return NewServerOn(nil, vapidPublic) }

// NewServerOn is NewServer on ln (nil: a free loopback port), for
// `herald sink --mode webpush`.
func NewServerOn(ln net.Listener, vapidPublic string) (*Server, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(vapidPublic, "="))
	if err != nil {
		return nil, fmt.Errorf("webpushtest: VAPID key: %w", err)
	}
	x, y := elliptic.Unmarshal(elliptic.P256(), raw)
	if x == nil {
		return nil, errors.New("webpushtest: VAPID key is not a P-256 point")
	}
	s := &Server{vapid: &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}, vapidRaw: base64.RawURLEncoding.EncodeToString(raw),
		agents: map[string]agent{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /push/{id}", s.push)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, s.Stats()) })
	mux.HandleFunc("POST /subscribe/{id}", func(w http.ResponseWriter, r *http.Request) {
		sub, err := s.Subscribe(r.PathValue("id"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, sub)
	})
	s.Server = httptest.NewUnstartedServer(mux)
	if ln != nil {
		s.Server.Listener.Close()
		s.Server.Listener = ln
	}
	s.Server.EnableHTTP2 = true
	s.Server.StartTLS()
	return s, nil
}

// Subscribe makes a subscription as a browser would, keeping its private
// key to decrypt what is pushed to it.
func (s *Server) Subscribe(id string) (Subscription, error) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return Subscription{}, err
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	s.mu.Lock()
	s.agents[id] = agent{key: k, auth: auth}
	s.mu.Unlock()
	var sub Subscription
	sub.Endpoint = s.URL + "/push/" + id
	sub.Keys.P256dh = base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes())
	sub.Keys.Auth = base64.RawURLEncoding.EncodeToString(auth)
	return sub, nil
}

// Stats are counts of what the service saw.
type Stats struct {
	Accepted int `json:"accepted"`
	// Distinct counts distinct idempotency keys among the plaintexts.
	Distinct int            `json:"distinct"`
	Refused  map[string]int `json:"refused"`
}

// Stats returns counts of what the service saw.
func (s *Server) Stats() Stats {
	accepted, distinct, refused := s.Counts()
	return Stats{Accepted: accepted, Distinct: distinct, Refused: refused}
}

func (s *Server) push(w http.ResponseWriter, r *http.Request) {
	fail := func(rep Reply, why string) {
		s.Refuse(strconv.Itoa(rep.Status))
		if rep.RetryAfter != "" {
			w.Header().Set("Retry-After", rep.RetryAfter)
		}
		http.Error(w, why, rep.Status)
	}
	id := r.PathValue("id")
	s.mu.Lock()
	ag, known := s.agents[id]
	s.mu.Unlock()
	rep, dead := s.Dead(id)
	if !known {
		fail(NotFound, "no such subscription")
		return
	}
	if err := s.checkVAPID(r); err != nil {
		fail(Reply{Status: http.StatusForbidden}, err.Error())
		return
	}
	if _, err := strconv.Atoi(r.Header.Get("TTL")); err != nil {
		fail(Reply{Status: http.StatusBadRequest}, "TTL header required (RFC 8030)")
		return
	}
	if t := r.Header.Get("Topic"); len(t) > 32 || strings.Trim(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		fail(Reply{Status: http.StatusBadRequest}, "Topic must be at most 32 base64url characters")
		return
	}
	switch r.Header.Get("Urgency") {
	case "", "very-low", "low", "normal", "high":
	default:
		fail(Reply{Status: http.StatusBadRequest}, "bad Urgency")
		return
	}
	if r.Header.Get("Content-Encoding") != "aes128gcm" {
		fail(Reply{Status: http.StatusUnsupportedMediaType}, "Content-Encoding must be aes128gcm")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4097))
	if err != nil || len(body) > 4096 {
		fail(Reply{Status: http.StatusRequestEntityTooLarge}, "payload over 4096 bytes")
		return
	}
	plain, err := decrypt(ag, body)
	if err != nil {
		fail(Reply{Status: http.StatusBadRequest}, "cannot decrypt: "+err.Error())
		return
	}
	if dead {
		fail(rep, http.StatusText(rep.Status))
		return
	}
	p := Push{ID: id, Plaintext: plain, Header: r.Header.Clone(), At: time.Now()}
	if s.Reply != nil {
		if rep := s.Reply(p); rep != nil {
			fail(*rep, http.StatusText(rep.Status))
			return
		}
	}
	var msg struct {
		Key string `json:"idempotency_key"`
	}
	json.Unmarshal(plain, &msg)
	s.Accept(p, msg.Key)
	w.Header().Set("Location", s.URL+"/message/"+strconv.FormatInt(time.Now().UnixNano(), 36))
	w.WriteHeader(http.StatusCreated)
}

// checkVAPID verifies "vapid t=<JWT>, k=<key>" (RFC 8292): the key is the
// server's, the JWT is ES256 signed by it, its aud is this origin, its exp
// within a day, its sub a mailto: or https: URL.
func (s *Server) checkVAPID(r *http.Request) error {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "vapid ")
	if !ok {
		return errors.New("vapid authorization required")
	}
	var t, k string
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if x, ok := strings.CutPrefix(part, "t="); ok {
			t = x
		} else if x, ok := strings.CutPrefix(part, "k="); ok {
			k = x
		}
	}
	if strings.TrimRight(k, "=") != s.vapidRaw {
		return errors.New("vapid key is not the application server's")
	}
	parts := strings.Split(t, ".")
	if len(parts) != 3 {
		return errors.New("vapid token is not a JWT")
	}
	var head struct{ Alg string }
	var claims struct {
		Aud, Sub string
		Exp      int64
	}
	if decode(parts[0], &head) != nil || decode(parts[1], &claims) != nil || head.Alg != "ES256" {
		return errors.New("vapid token unreadable or not ES256")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err != nil || len(sig) != 64 || !ecdsa.Verify(s.vapid, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return errors.New("vapid signature does not verify")
	}
	now := time.Now().Unix()
	switch {
	case claims.Aud != s.URL:
		return fmt.Errorf("vapid aud %q is not this push service", claims.Aud)
	case claims.Exp < now || claims.Exp > now+24*3600:
		return errors.New("vapid exp not within the next 24 hours")
	case !strings.HasPrefix(claims.Sub, "mailto:") && !strings.HasPrefix(claims.Sub, "https:"):
		return errors.New("vapid sub must be a mailto: or https: URL")
	}
	return nil
}

// decrypt opens an aes128gcm body (RFC 8188) encrypted for ag as RFC 8291
// says: one record, the sender's ephemeral key in the header.
func decrypt(ag agent, body []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("short header")
	}
	salt := body[:16]
	rs := binary.BigEndian.Uint32(body[16:20])
	idlen := int(body[20])
	if len(body) < 21+idlen || idlen != 65 {
		return nil, errors.New("key id is not a P-256 public key")
	}
	asPub, err := ecdh.P256().NewPublicKey(body[21 : 21+idlen])
	if err != nil {
		return nil, err
	}
	record := body[21+idlen:]
	if uint32(len(record)) > rs {
		return nil, errors.New("more than one record")
	}
	secret, err := ag.key.ECDH(asPub)
	if err != nil {
		return nil, err
	}
	info := append(append([]byte("WebPush: info\x00"), ag.key.PublicKey().Bytes()...), asPub.Bytes()...)
	ikm, err := hkdf.Key(sha256.New, secret, ag.auth, string(info), 32)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, record, nil)
	if err != nil {
		return nil, err
	}
	// The last record ends with 0x02 and any zero padding.
	plain = bytes.TrimRight(plain, "\x00")
	if len(plain) == 0 || plain[len(plain)-1] != 2 {
		return nil, errors.New("bad padding delimiter")
	}
	return plain[:len(plain)-1], nil
}

func decode(part string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
