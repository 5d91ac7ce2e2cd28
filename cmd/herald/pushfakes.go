package main

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/herald-dev/herald/push/apns/apnstest"
	"github.com/herald-dev/herald/push/fcm/fcmtest"
	"github.com/herald-dev/herald/push/webpush"
	"github.com/herald-dev/herald/push/webpush/webpushtest"
)

// The modes of `herald sink --mode` beside the webhook.
const (
	modeWebhook = "webhook"
	modeAPNs    = "apns"
	modeFCM     = "fcm"
	modeWebPush = "webpush"
)

// pushFake is a fake push provider run by `herald sink --mode` or
// `herald dev`, with what a worker needs to reach it written to a
// directory: the secret its trigger names (in secrets/) and its
// certificate (push-ca.pem).
type pushFake struct {
	mode     string
	url      string
	endpoint string // the trigger's endpoint object, JSON
	srv      *httptest.Server
}

// startPushFake starts the fake of mode on ln (nil: a free loopback port)
// and writes its secret to dir/secrets and its certificate to
// dir/push-ca.pem (shared by every fake, which all use httptest's).
func startPushFake(mode string, ln net.Listener, dir string) (*pushFake, error) {
	secrets := filepath.Join(dir, "secrets")
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		return nil, err
	}
	writeSecret := func(name string, v []byte) error {
		return os.WriteFile(filepath.Join(secrets, name), v, 0o600)
	}
	f := &pushFake{mode: mode}
	switch mode {
	case modeAPNs:
		key, err := apnstest.NewKey("DEVKEY1234", "DEVTEAM123")
		if err != nil {
			return nil, err
		}
		s := apnstest.NewServerOn(ln, key, "dev.herald.app")
		f.srv = s.Server
		if err := writeSecret("apns-key", key.P8); err != nil {
			s.Close()
			return nil, err
		}
		f.endpoint = fmt.Sprintf(`{"kind":"apns","url":%q,"apns":{"key_secret":"apns-key","key_id":%q,"team_id":%q,"topic":"dev.herald.app"}}`,
			s.URL, key.ID, key.TeamID)
	case modeFCM:
		acct, err := fcmtest.NewAccount("herald-dev")
		if err != nil {
			return nil, err
		}
		s := fcmtest.NewServerOn(ln, acct)
		f.srv = s.Server
		if err := writeSecret("fcm-sa", s.Credentials()); err != nil {
			s.Close()
			return nil, err
		}
		f.endpoint = fmt.Sprintf(`{"kind":"fcm","url":%q,"fcm":{"credentials_secret":"fcm-sa"}}`, s.URL)
	case modeWebPush:
		v, err := webpush.NewVAPID()
		if err != nil {
			return nil, err
		}
		s, err := webpushtest.NewServerOn(ln, v.PublicKey)
		if err != nil {
			return nil, err
		}
		f.srv = s.Server
		raw, _ := json.Marshal(v)
		if err := writeSecret("vapid", raw); err != nil {
			s.Close()
			return nil, err
		}
		f.endpoint = `{"kind":"webpush","webpush":{"vapid_secret":"vapid","subject":"mailto:dev@herald.dev"}}`
	default:
		return nil, fmt.Errorf("%w: mode %q: want webhook, apns, fcm or webpush", errUsage, mode)
	}
	f.url = f.srv.URL
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(dir, "push-ca.pem"), ca, 0o644); err != nil {
		f.srv.Close()
		return nil, err
	}
	return f, nil
}

func (f *pushFake) Close() { f.srv.Close() }

// howTo tells how to run a worker against the fake and what a trigger's
// endpoint and an audience line look like.
func (f *pushFake) howTo(dir string) string {
	line := `{"id":"u1","name":"Ann","token":"` + fmt.Sprintf("%064x", 1) + `"}`
	if f.mode == modeWebPush {
		line = fmt.Sprintf(`{"id":"u1","name":"Ann","subscription":<curl -sk -X POST %s/subscribe/u1>}`, f.url)
	}
	return fmt.Sprintf(`  %-8s %s  (stats: curl -sk %s/stats)
           endpoint: %s
           audience line: %s
`, f.mode, f.url, f.url, f.endpoint, line)
}

// pushWorkerFlags are the `herald worker` flags that reach fakes whose
// material is in dir.
func pushWorkerFlags(dir string) string {
	return fmt.Sprintf("--secrets-dir %s --push-ca-file %s --allow-endpoint 'https://127.0.0.1:*'",
		filepath.Join(dir, "secrets"), filepath.Join(dir, "push-ca.pem"))
}
