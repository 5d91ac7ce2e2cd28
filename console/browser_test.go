package console

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/statusview"
)

// chromiumPath finds the browser the tests drive: $HERALD_CHROMIUM, else
// Debian's chromium. Without one the browser tests skip, except in CI
// (CI=true), where they must run.
func chromiumPath(t *testing.T) string {
	t.Helper()
	path := os.Getenv("HERALD_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium not found at %s (CI=true: the browser tests must run; .ci/run installs it)", path)
		}
		t.Skipf("chromium not found at %s: install it (apt-get install chromium) or set HERALD_CHROMIUM to run the browser tests", path)
	}
	return path
}

// browser starts a headless Chromium with a fresh profile for this test.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first action starts the browser, which lives as long as the
	// context of that action: this one, not a step's with a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// within runs steps with a deadline, failing the test with what was
// being done.
func within(t *testing.T, ctx context.Context, d time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for i, step := range steps {
		if err := chromedp.Do(sctx, step); err != nil {
			t.Fatalf("%s, step %d: %v", what, i+1, err)
		}
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// poll waits until the JavaScript predicate js is true on the page. It
// asks again every 50ms from here, so it survives a navigation (which
// chromedp's own Poll does not).
func poll(js string, d time.Duration) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		deadline := time.Now().Add(d)
		for {
			ok, err := chromedp.Evaluate[bool](js)(ctx, tg)
			if err == nil && ok {
				return chromedp.Void{}, nil
			}
			if time.Now().After(deadline) {
				return chromedp.Void{}, fmt.Errorf("still not true after %s (last error %v): %s", d, err, js)
			}
			select {
			case <-ctx.Done():
				return chromedp.Void{}, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// TestBrowser drives the console in Chromium against a real fleet: an
// action without the token is refused, a trigger's refusal shows at its
// field, a broadcast's bar reaches 100% with the counts the endpoint saw,
// and a pause from the page changes the state in etcd.
func TestBrowser(t *testing.T) {
	ctx := browser(t)
	s := newStack(t)
	s.startWorker("w1", true)
	s.startWorker("w2", false)
	_, srv := s.serve(Config{Token: testToken}, s.producer())
	const subscribers = 30_000

	// Not signed in: a trigger is refused, and says why.
	within(t, ctx, 20*time.Second, "open the list",
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#trigger-form")),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SetValue(chromedp.CSS(`input[name="id"]`), "browser-1"),
		chromedp.SetValue(chromedp.CSS(`input[name="count"]`), fmt.Sprint(subscribers)),
		chromedp.SetValue(chromedp.CSS(`input[name="url"]`), s.endpoint()),
		chromedp.SetValue(chromedp.CSS(`input[name="rate_per_sec"]`), "6000"),
		chromedp.Click(chromedp.CSS("#trigger")),
		poll(`document.querySelector("#form-error").textContent.includes("sign in")`, 10*time.Second),
	)

	// Signed in: a bad endpoint is shown at its field, then the fixed
	// spec goes through and the page of the broadcast opens.
	within(t, ctx, 20*time.Second, "sign in and trigger",
		chromedp.SendKeys(chromedp.CSS("#token"), testToken),
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#logout")),
		chromedp.SetValue(chromedp.CSS(`input[name="url"]`), "ftp://nowhere"),
		chromedp.Click(chromedp.CSS("#trigger")),
		poll(`document.querySelector('input[name="url"]').classList.contains("invalid") &&
			document.querySelector("#form-error").textContent.startsWith("endpoint.url")`, 10*time.Second),
		chromedp.SetValue(chromedp.CSS(`input[name="url"]`), s.endpoint()),
		chromedp.Click(chromedp.CSS("#trigger")),
		poll(`location.pathname === "/b/browser-1"`, 10*time.Second),
	)

	// The bar reaches 100% and the page shows what the endpoint received.
	within(t, ctx, 90*time.Second, "watch browser-1 finish",
		poll(`document.querySelector("#progress-text").textContent === "100.0%" &&
			document.querySelector("#state").textContent === "done"`, 90*time.Second),
	)
	got := s.sink.Stats().Broadcasts["browser-1"]
	if got.Delivered != subscribers || got.Duplicates != 0 {
		t.Errorf("the endpoint saw %+v, want %d delivered, no duplicates", got, subscribers)
	}
	if d := text(t, ctx, "#delivered"); d != statusview.Count(got.Delivered) {
		t.Errorf("the page shows %s delivered, the endpoint saw %d", d, got.Delivered)
	}
	for sel, want := range map[string]string{"#failed": "0", "#invalid": "0", "#unreachable": "0"} {
		if v := text(t, ctx, sel); v != want {
			t.Errorf("%s shows %s, want %s", sel, v, want)
		}
	}
	within(t, ctx, 10*time.Second, "the chart and the workers",
		poll(`document.querySelectorAll("#chart path.line").length === 1 &&
			document.querySelectorAll("#workers tbody tr").length === 2`, 10*time.Second))
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.ArtifactDir()
	if err := os.WriteFile(filepath.Join(dir, "broadcast.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot in %s", dir)

	// A slow broadcast, paused from its page: etcd says paused.
	if _, err := s.producer().Produce(context.Background(), []byte(s.synthetic("browser-2", 1_000_000, 200))); err != nil {
		t.Fatal(err)
	}
	within(t, ctx, 45*time.Second, "pause browser-2",
		chromedp.Navigate(srv.URL+"/b/browser-2"),
		poll(`document.querySelector("#state").textContent === "running" && !document.querySelector("#btn-pause").disabled`, 30*time.Second),
		chromedp.Click(chromedp.CSS("#btn-pause")),
		poll(`document.querySelector("#state").textContent === "paused"`, 10*time.Second),
	)
	if st, err := s.reg.Status(context.Background(), "browser-2"); err != nil || st.State != coordinator.StatePaused {
		t.Fatalf("etcd has browser-2 %s (%v), want paused", st.State, err)
	}

	// Signed out, the resume is refused and etcd keeps it paused.
	within(t, ctx, 20*time.Second, "resume without the token",
		chromedp.Click(chromedp.CSS("#logout")),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		poll(`!document.querySelector("#btn-resume").disabled`, 5*time.Second),
		chromedp.Click(chromedp.CSS("#btn-resume")),
		poll(`document.querySelector("#message").textContent.includes("refused")`, 10*time.Second),
	)
	if st, _ := s.reg.Status(context.Background(), "browser-2"); st.State != coordinator.StatePaused {
		t.Errorf("etcd has browser-2 %s after a refused resume, want paused", st.State)
	}
	if m := text(t, ctx, "#message"); m != "resume refused: sign in with the console's access token first" {
		t.Errorf("message %q", m)
	}
	// The list shows both, with their states.
	within(t, ctx, 10*time.Second, "the list",
		chromedp.Navigate(srv.URL+"/"),
		poll(`document.querySelector('tr[data-id="browser-1"] .state')?.textContent === "done" &&
			document.querySelector('tr[data-id="browser-2"] .state')?.textContent === "paused"`, 10*time.Second),
	)
	if shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		err = os.WriteFile(filepath.Join(dir, "list.png"), shot, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	// Cancel it, so the workers stop at once.
	if err := s.reg.SetState(context.Background(), "browser-2", coordinator.Cancel); err != nil {
		t.Fatal(err)
	}
}

// TestScreenshotForDocs takes the README's screenshot (docs/console.png):
// a broadcast's page mid-run, signed in. It runs only when asked:
//
//	HERALD_CONSOLE_DOCS_PNG=$PWD/docs/console.png go test -count=1 -run TestScreenshotForDocs ./console
func TestScreenshotForDocs(t *testing.T) {
	out := os.Getenv("HERALD_CONSOLE_DOCS_PNG")
	if out == "" {
		t.Skip("set HERALD_CONSOLE_DOCS_PNG to the file to write")
	}
	ctx := browser(t)
	s := newStack(t)
	s.startWorker("worker-1", true)
	s.startWorker("worker-2", false)
	s.startWorker("worker-3", false)
	_, srv := s.serve(Config{Token: testToken}, s.producer())
	if _, err := s.producer().Produce(context.Background(), []byte(s.synthetic("spring-sale", 200_000, 8000))); err != nil {
		t.Fatal(err)
	}
	within(t, ctx, 60*time.Second, "the page mid-run",
		chromedp.Navigate(srv.URL+"/b/spring-sale"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), testToken),
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#logout")),
		poll(`parseFloat(document.querySelector("#progress-text").textContent) >= 70`, 50*time.Second),
	)
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.reg.SetState(context.Background(), "spring-sale", coordinator.Cancel); err != nil {
		t.Fatal(err)
	}
}
