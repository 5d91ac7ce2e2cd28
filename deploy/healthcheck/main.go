// Command healthcheck asks a URL whether the process behind it is healthy
// and says so in its exit status: 0 for a 2xx answer, 1 for anything else.
//
// It exists for the container image. The image is distroless, with no shell,
// curl or wget, so a Compose or Docker health check cannot probe herald's
// /readyz or /healthz without a client of its own; Kubernetes probes HTTP
// natively and does not need it.
//
//	healthcheck http://127.0.0.1:9464/readyz
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: healthcheck URL")
		os.Exit(2)
	}
	if err := check(os.Args[1], 3*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

// check GETs url and reports an error unless the answer is 2xx within
// timeout. A health check that hangs would hold its slot in the container
// engine, so the whole exchange, body included, is bounded.
func check(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: timeout}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s: %s", url, resp.Status, body)
	}
	return nil
}
