package connect

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
)

// The exchange of RFC 7677 section 3 (SCRAM-SHA-256, user "user",
// password "pencil").
const (
	rfcClientNonce = "rOprNGfwEbeRWgbNEkqO"
	rfcServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfcClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

func rfcMechanism() *scram {
	return &scram{name: "SCRAM-SHA-256", hash: sha256.New, user: "user", password: "pencil",
		nonce: func() (string, error) { return rfcClientNonce, nil }}
}

func TestSCRAMAgainstRFC7677(t *testing.T) {
	sess, first, err := rfcMechanism().Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if string(first) != "n,,n=user,r="+rfcClientNonce {
		t.Errorf("client-first %q", first)
	}
	done, final, err := sess.Next(context.Background(), []byte(rfcServerFirst))
	if err != nil || done {
		t.Fatalf("after server-first: done %v err %v", done, err)
	}
	if string(final) != rfcClientFinal {
		t.Errorf("client-final\n got %s\nwant %s", final, rfcClientFinal)
	}
	done, _, err = sess.Next(context.Background(), []byte(rfcServerFinal))
	if err != nil || !done {
		t.Fatalf("after server-final: done %v err %v", done, err)
	}
}

func TestSCRAMRefusesBadServers(t *testing.T) {
	tests := []struct {
		name, serverFirst, serverFinal string
	}{
		{name: "server signature wrong", serverFirst: rfcServerFirst, serverFinal: "v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
		{name: "server error", serverFirst: rfcServerFirst, serverFinal: "e=invalid-proof"},
		{name: "nonce not extended", serverFirst: "r=" + rfcClientNonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"},
		{name: "nonce replaced", serverFirst: "r=someone-else,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"},
		{name: "too few iterations", serverFirst: strings.Replace(rfcServerFirst, "i=4096", "i=1", 1)},
		{name: "too many iterations", serverFirst: strings.Replace(rfcServerFirst, "i=4096", "i=100000000", 1)},
		{name: "bad salt", serverFirst: strings.Replace(rfcServerFirst, "s=W22", "s=!!!", 1)},
		{name: "mandatory extension", serverFirst: "m=ext," + rfcServerFirst},
		{name: "garbage", serverFirst: "hello"},
		{name: "attribute twice", serverFirst: rfcServerFirst + ",i=4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sess, _, err := rfcMechanism().Start(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = sess.Next(context.Background(), []byte(tt.serverFirst))
			if err == nil && tt.serverFinal != "" {
				_, _, err = sess.Next(context.Background(), []byte(tt.serverFinal))
			}
			if !errors.Is(err, ErrSCRAM) {
				t.Fatalf("got %v, want ErrSCRAM", err)
			}
		})
	}
}

func TestSCRAMEscapesUser(t *testing.T) {
	m := rfcMechanism()
	m.user = "a=b,c"
	_, first, err := m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if string(first) != "n,,n=a=3Db=2Cc,r="+rfcClientNonce {
		t.Errorf("client-first %q", first)
	}
}

func TestSCRAMNoncesDiffer(t *testing.T) {
	m := &scram{name: "SCRAM-SHA-256", hash: sha256.New, user: "u", password: "p"}
	_, a, _ := m.Start(context.Background())
	_, b, _ := m.Start(context.Background())
	if string(a) == string(b) {
		t.Errorf("two exchanges with the same nonce: %s", a)
	}
}

// FuzzSCRAMServerFirst: no server-first message makes the client panic,
// and whatever it answers is a client-final with a proof.
func FuzzSCRAMServerFirst(f *testing.F) {
	f.Add(rfcServerFirst)
	f.Add("r=" + rfcClientNonce + "x,s=,i=4096")
	f.Add("r=,=,,")
	f.Fuzz(func(t *testing.T, serverFirst string) {
		sess, _, err := rfcMechanism().Start(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		_, final, err := sess.Next(context.Background(), []byte(serverFirst))
		if err != nil {
			if !errors.Is(err, ErrSCRAM) {
				t.Fatalf("error %v is not ErrSCRAM", err)
			}
			return
		}
		if !strings.HasPrefix(string(final), "c=biws,r="+rfcClientNonce) || !strings.Contains(string(final), ",p=") {
			t.Fatalf("client-final %q", final)
		}
	})
}
