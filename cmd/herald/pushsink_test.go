package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSinkPushModes runs `herald sink --mode` for each provider in
// process: it writes the secret its trigger names and its certificate,
// and serves its stats over HTTP/2 with that certificate.
func TestSinkPushModes(t *testing.T) {
	for mode, secret := range map[string]string{"apns": "apns-key", "fcm": "fcm-sa", "webpush": "vapid"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			var stdout, stderr syncBuffer
			a := &cli{commands: commands(), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
			ctx, cancel := context.WithCancel(context.Background())
			exited := make(chan int, 1)
			go func() {
				exited <- a.run(ctx, []string{"sink", "--mode", mode, "--listen", "127.0.0.1:0", "--dir", dir})
			}()
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(stdout.String(), "Workers reach it") {
				if time.Now().After(deadline) {
					t.Fatalf("no output:\n%s\n%s", stdout.String(), stderr.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			if _, err := os.Stat(filepath.Join(dir, "secrets", secret)); err != nil {
				t.Fatalf("secret %s not written: %v", secret, err)
			}
			tc, err := pushTLSConfig(filepath.Join(dir, "push-ca.pem"))
			if err != nil {
				t.Fatal(err)
			}
			m := regexp.MustCompile(`listening on (https://\S+)`).FindStringSubmatch(stdout.String())
			if m == nil {
				t.Fatalf("no address in:\n%s", stdout.String())
			}
			tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(m[1] + "/stats")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != 2 || !strings.Contains(string(body), `"accepted":0`) {
				t.Fatalf("stats %s %s", resp.Proto, body)
			}
			cancel()
			if code := <-exited; code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
		})
	}
}
