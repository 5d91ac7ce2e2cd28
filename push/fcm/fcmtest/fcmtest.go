// Package fcmtest is a fake Firebase Cloud Messaging for tests, `herald
// dev` and `herald demo`, in the manner of net/http/httptest: one HTTP/2
// TLS server on loopback that is both Google's OAuth2 token endpoint
// (POST /token: it verifies the service account's RS256 JWT assertion with
// the account's public key, and issues access tokens) and the FCM HTTP v1
// endpoint (POST /v1/projects/{project}/messages:send: it checks the
// bearer token, the project and the message), answering with FCM's real
// error bodies for the tokens a test declares dead or whatever Reply
// returns.
package fcmtest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/herald-dev/herald/push/internal/ledger"
)

// Account is a service account made for a test: the JSON key a worker is
// given as its secret, and the public key the token endpoint checks
// assertions with.
type Account struct {
	Email, Project string
	Public         *rsa.PublicKey
	key            *rsa.PrivateKey
	keyID          string
}

// NewAccount makes a service account of project.
func NewAccount(project string) (Account, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return Account{}, fmt.Errorf("fcmtest: key: %w", err)
	}
	var id [20]byte
	rand.Read(id[:])
	return Account{Email: "herald@" + project + ".iam.gserviceaccount.com", Project: project, Public: &k.PublicKey,
		key: k, keyID: hex.EncodeToString(id[:])}, nil
}

// JSON is the account's key file, with token_uri pointing at tokenURI
// (Server.TokenURL for the fake).
func (a Account) JSON(tokenURI string) []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(a.key)
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": a.Project, "private_key_id": a.keyID,
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": a.Email, "client_id": "1234567890", "token_uri": tokenURI,
		"auth_uri": "https://accounts.google.com/o/oauth2/auth",
	})
	return b
}

// Message is one message the server accepted: the "message" object of
// the request as sent.
type Message struct {
	Token string
	Raw   json.RawMessage
	At    time.Time
}

// Reply is an FCM error answer: status, the google.rpc status, the FCM
// error code, and a Retry-After when set.
type Reply struct {
	Status     int
	RPCStatus  string
	ErrorCode  string
	Message    string
	TokenField bool // a fieldViolation on message.token, as INVALID_ARGUMENT about the token has
	RetryAfter string
}

// FCM's answers a test may inject.
var (
	Unregistered   = Reply{Status: 404, RPCStatus: "NOT_FOUND", ErrorCode: "UNREGISTERED", Message: "Requested entity was not found."}
	InvalidToken   = Reply{Status: 400, RPCStatus: "INVALID_ARGUMENT", ErrorCode: "INVALID_ARGUMENT", Message: "The registration token is not a valid FCM registration token", TokenField: true}
	QuotaExceeded  = Reply{Status: 429, RPCStatus: "RESOURCE_EXHAUSTED", ErrorCode: "QUOTA_EXCEEDED", Message: "Quota exceeded for quota metric 'Messages'.", RetryAfter: "1"}
	Unavailable    = Reply{Status: 503, RPCStatus: "UNAVAILABLE", ErrorCode: "UNAVAILABLE", Message: "The service is currently unavailable.", RetryAfter: "1"}
	TooManyForOne  = Reply{Status: 429, RPCStatus: "RESOURCE_EXHAUSTED", ErrorCode: "QUOTA_EXCEEDED", Message: "Device message rate exceeded."}
	InternalFailed = Reply{Status: 500, RPCStatus: "INTERNAL", ErrorCode: "INTERNAL", Message: "Internal error encountered."}
)

// Server is a running fake FCM and token endpoint.
type Server struct {
	*httptest.Server
	acct Account

	// Reply, when set, is asked about every well-formed message before it
	// is accepted; a non-nil Reply is sent instead. It must be safe for
	// concurrent use.
	Reply func(m Message) *Reply

	// ledger keeps the dead tokens, the messages accepted (keyed by their
	// herald_idempotency_key) and the refusals by error code; its Kill,
	// Accepted and KeepAccepted are the Server's.
	ledger.Ledger[Message, Reply]

	mu     sync.Mutex
	tokens map[string]time.Time // access tokens issued, to their expiry
	grants int
}

// NewServer starts a fake for acct on a free loopback port. The caller
// must Close it. Client() trusts it; TokenURL is what the account's key
// must name. GET /stats serves Stats as JSON.
func NewServer(acct Account) *Server { return NewServerOn(nil, acct) }

// NewServerOn is NewServer on ln (nil: a free loopback port), for
// `herald sink --mode fcm`.
func NewServerOn(ln net.Listener, acct Account) *Server {
	s := &Server{acct: acct, tokens: map[string]time.Time{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("POST /v1/projects/{project}/messages:send", s.send)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s.Stats())
	})
	s.Server = httptest.NewUnstartedServer(mux)
	if ln != nil {
		s.Server.Listener.Close()
		s.Server.Listener = ln
	}
	s.Server.EnableHTTP2 = true
	s.Server.StartTLS()
	return s
}

// TokenURL is the fake's token endpoint.
func (s *Server) TokenURL() string { return s.URL + "/token" }

// Credentials is the account's JSON key naming this fake's token endpoint.
func (s *Server) Credentials() []byte { return s.acct.JSON(s.TokenURL()) }

// Stats are counts of what the server saw.
type Stats struct {
	Accepted int            `json:"accepted"`
	Distinct int            `json:"distinct"` // distinct herald_idempotency_key accepted
	Refused  map[string]int `json:"refused"`
	Grants   int            `json:"access_tokens_issued"`
}

// Stats returns counts of what the server saw.
func (s *Server) Stats() Stats {
	accepted, distinct, refused := s.Counts()
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Accepted: accepted, Distinct: distinct, Refused: refused, Grants: s.grants}
}

// token is Google's token endpoint for the JWT bearer grant (RFC 7523).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	deny := func(code, desc string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
	}
	if err := r.ParseForm(); err != nil {
		deny("invalid_request", "form")
		return
	}
	if r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		deny("unsupported_grant_type", "Invalid grant_type")
		return
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	if len(parts) != 3 {
		deny("invalid_grant", "Invalid JWT")
		return
	}
	var head struct{ Alg, Kid, Typ string }
	var claims struct {
		Iss, Scope, Aud string
		Iat, Exp        int64
	}
	if decode(parts[0], &head) != nil || decode(parts[1], &claims) != nil {
		deny("invalid_grant", "Invalid JWT")
		return
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err != nil || head.Alg != "RS256" || rsa.VerifyPKCS1v15(s.acct.Public, crypto.SHA256, digest[:], sig) != nil {
		deny("invalid_grant", "Invalid JWT Signature.")
		return
	}
	now := time.Now().Unix()
	switch {
	case head.Kid != s.acct.keyID:
		deny("invalid_grant", "Invalid key id")
	case claims.Iss != s.acct.Email:
		deny("invalid_grant", "Invalid issuer")
	case claims.Aud != s.TokenURL():
		deny("invalid_grant", "Invalid audience")
	case !strings.Contains(" "+claims.Scope+" ", " https://www.googleapis.com/auth/firebase.messaging "):
		deny("invalid_scope", "firebase.messaging scope required")
	case claims.Iat > now+60 || claims.Exp < now || claims.Exp-claims.Iat > 3600:
		deny("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.")
	default:
		var b [24]byte
		rand.Read(b[:])
		tok := "ya29.fake-" + base64.RawURLEncoding.EncodeToString(b[:])
		s.mu.Lock()
		s.tokens[tok] = time.Now().Add(time.Hour)
		s.grants++
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3599})
	}
}

// send is FCM's messages:send.
func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	fail := func(rep Reply) {
		s.Refuse(rep.ErrorCode)
		detail := map[string]any{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": rep.ErrorCode}
		details := []any{detail}
		if rep.TokenField {
			details = append(details, map[string]any{"@type": "type.googleapis.com/google.rpc.BadRequest",
				"fieldViolations": []any{map[string]string{"field": "message.token", "description": "Invalid registration token"}}})
		}
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		if rep.RetryAfter != "" {
			w.Header().Set("Retry-After", rep.RetryAfter)
		}
		w.WriteHeader(rep.Status)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
			"code": rep.Status, "message": rep.Message, "status": rep.RPCStatus, "details": details}})
	}
	unauthenticated := Reply{Status: 401, RPCStatus: "UNAUTHENTICATED", ErrorCode: "THIRD_PARTY_AUTH_ERROR",
		Message: "Request had invalid authentication credentials."}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	exp, known := s.tokens[tok]
	s.mu.Unlock()
	if !ok || !known || time.Now().After(exp) {
		fail(unauthenticated)
		return
	}
	if r.PathValue("project") != s.acct.Project {
		fail(Reply{Status: 403, RPCStatus: "PERMISSION_DENIED", ErrorCode: "SENDER_ID_MISMATCH", Message: "Permission denied on the project."})
		return
	}
	badRequest := func(msg string) {
		fail(Reply{Status: 400, RPCStatus: "INVALID_ARGUMENT", ErrorCode: "INVALID_ARGUMENT", Message: msg})
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 8<<10))
	if err != nil {
		badRequest("unreadable body")
		return
	}
	var body struct {
		Message json.RawMessage `json:"message"`
	}
	var msg struct {
		Token     string            `json:"token"`
		Topic     string            `json:"topic"`
		Condition string            `json:"condition"`
		Data      map[string]string `json:"data"`
	}
	if json.Unmarshal(raw, &body) != nil || json.Unmarshal(body.Message, &msg) != nil {
		badRequest("Invalid JSON payload received.")
		return
	}
	targets := 0
	for _, t := range []string{msg.Token, msg.Topic, msg.Condition} {
		if t != "" {
			targets++
		}
	}
	if targets != 1 {
		badRequest("Exactly one of token, topic or condition must be given.")
		return
	}
	for k := range msg.Data {
		if strings.HasPrefix(k, "google") || strings.HasPrefix(k, "gcm") || k == "from" || k == "message_type" {
			badRequest("Invalid data payload key: " + k)
			return
		}
	}
	m := Message{Token: msg.Token, Raw: body.Message, At: time.Now()}
	if rep, dead := s.Dead(msg.Token); dead {
		fail(rep)
		return
	}
	if s.Reply != nil {
		if rep := s.Reply(m); rep != nil {
			fail(*rep)
			return
		}
	}
	s.Accept(m, msg.Data["herald_idempotency_key"])
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	fmt.Fprintf(w, `{"name":"projects/%s/messages/%d"}`+"\n", s.acct.Project, time.Now().UnixNano())
}

func decode(part string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
