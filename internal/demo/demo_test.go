package demo

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// buildHerald builds the herald binary the demo's worker processes run.
func buildHerald(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "herald")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/herald-dev/herald/cmd/herald").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestDemoWithKill runs the quick start end to end with real worker
// processes, SIGKILLs one mid-broadcast, and checks the summary: nothing
// lost, the failover measured within the lease TTL plus 2 s.
func TestDemoWithKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs worker processes")
	}
	var out bytes.Buffer
	cfg := Config{
		Workers:         3,
		Subscribers:     20_000,
		KillAfter:       1500 * time.Millisecond,
		LeaseTTL:        2 * time.Second,
		MaxInFlight:     8,
		EndpointLatency: 2 * time.Millisecond,
		Timeout:         2 * time.Minute,
		Binary:          buildHerald(t),
		Progress:        &out,
	}
	sum, err := Run(context.Background(), cfg)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sum.LogDir)
	if !sum.OK() || sum.Lost != 0 || sum.Delivered != sum.Eligible {
		t.Fatalf("summary %+v: want done, everything eligible delivered", sum)
	}
	if sum.KilledID == "" || sum.FailoverS == nil {
		t.Fatalf("no worker killed or no failover measured: %+v", sum)
	}
	if limit := (cfg.LeaseTTL + 2*time.Second).Seconds(); *sum.FailoverS > limit {
		t.Errorf("failover took %.2f s, above TTL + 2 s = %.0f s", *sum.FailoverS, limit)
	}
	if !strings.Contains(out.String(), "killed "+sum.KilledID) {
		t.Errorf("progress does not report the kill")
	}
}

// TestDemoChannels runs the quick start to each fake push provider, with
// a worker killed mid-broadcast: nothing lost, counted at the fake.
func TestDemoChannels(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs worker processes")
	}
	bin := buildHerald(t)
	for _, ch := range []string{ChannelAPNs, ChannelFCM, ChannelWebPush} {
		t.Run(ch, func(t *testing.T) {
			var out bytes.Buffer
			sum, err := Run(context.Background(), Config{
				Channel: ch, Workers: 2, Subscribers: 5000, KillAfter: 700 * time.Millisecond, LeaseTTL: 2 * time.Second,
				MaxInFlight: 8, Timeout: 2 * time.Minute, Binary: bin, Progress: &out,
			})
			t.Log("\n" + out.String())
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(sum.LogDir)
			if !sum.OK() || sum.Delivered != sum.Eligible || sum.Eligible != 5000 {
				t.Fatalf("summary %+v: want done, all 5000 devices reached", sum)
			}
		})
	}
}
