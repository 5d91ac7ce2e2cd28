package validate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/herald-dev/herald/spec"
)

// proc is a herald process started by a test, its output in a file. Its
// Wait runs in a goroutine that the test always joins through done: in
// wait, exited, or the cleanup that kills what is still running.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	done   chan error // receives Wait's result once
	exited bool
	err    error // Wait's result, once exited
}

// start runs herald with args and exactly env (plus what a process needs
// to find its tools and temp dir): nothing else reaches it, as in a
// container configured only by its environment.
func start(t *testing.T, name string, env map[string]string, stdin io.Reader, args ...string) *proc {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), name+".log")
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(herald(t), args...)
	cmd.Stdout, cmd.Stderr, cmd.Stdin = out, out, stdin
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start herald %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logFile, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if !p.exited {
			p.cmd.Process.Kill()
			p.reap(<-p.done)
		}
	})
	return p
}

func (p *proc) reap(err error) {
	p.exited, p.err = true, err
}

// running reports whether the process has not exited yet.
func (p *proc) running() bool {
	if p.exited {
		return false
	}
	select {
	case err := <-p.done:
		p.reap(err)
		return false
	default:
		return true
	}
}

// output is what the process has written so far.
func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// wait waits up to d for the process to exit by itself.
func (p *proc) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	if p.exited {
		return p.err
	}
	select {
	case err := <-p.done:
		p.reap(err)
		return err
	case <-time.After(d):
		p.cmd.Process.Kill()
		p.reap(<-p.done)
		t.Fatalf("herald %s still running after %v; output:\n%s", p.name, d, p.output())
		return nil
	}
}

// stop sends SIGTERM and waits up to d for a clean exit.
func (p *proc) stop(t *testing.T, d time.Duration) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal herald %s: %v", p.name, err)
	}
	if err := p.wait(t, d); err != nil {
		t.Errorf("herald %s exited with %v after SIGTERM; output:\n%s", p.name, err, p.output())
	}
}

// run runs a short herald command and returns its standard output.
func run(t *testing.T, env map[string]string, stdin io.Reader, args ...string) (string, error) {
	t.Helper()
	p := start(t, strings.Join(args[:1], ""), env, stdin, args...)
	err := p.wait(t, 30*time.Second)
	return p.output(), err
}

// devStack runs `herald dev` on free loopback ports and returns the
// addresses it prints.
func devStack(t *testing.T) (p *proc, etcd, kafka, sink string) {
	t.Helper()
	p = start(t, "dev", nil, nil, "dev", "--etcd-listen", "127.0.0.1:0", "--kafka-listen", "127.0.0.1:0", "--sink-listen", "127.0.0.1:0")
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.output(), "\nReady.") {
		if time.Now().After(deadline) || !p.running() {
			t.Fatalf("herald dev not ready; output:\n%s", p.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	sc := bufio.NewScanner(strings.NewReader(p.output()))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 {
			switch f[0] {
			case "etcd":
				etcd = f[1]
			case "kafka":
				kafka = f[1]
			case "sink":
				sink = f[1]
			}
		}
	}
	if etcd == "" || kafka == "" || sink == "" {
		t.Fatalf("cannot read the addresses herald dev printed:\n%s", p.output())
	}
	return p, etcd, kafka, sink
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func get(url string) (int, []byte, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// exampleSpec reads deploy/examples/hello.json and validates it as the
// worker does.
func exampleSpec(t *testing.T) spec.Spec {
	t.Helper()
	data, err := os.ReadFile(deployPath("examples", "hello.json"))
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := spec.Parse(data, spec.Limits{})
	if err != nil {
		t.Fatalf("deploy/examples/hello.json: %v", err)
	}
	return s
}

// TestLiveWorker runs a worker configured exactly as the Compose file's
// worker-1 (addresses aside) against `herald dev`, sends it the example
// broadcast, and checks what the deployment files assume of it: the probe
// paths answer, the metrics path serves every series the dashboard
// queries, and SIGTERM ends it with status 0.
func TestLiveWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts herald dev and a worker")
	}
	p, err := loadCompose(t, deployPath("compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	w1, err := p.GetService("worker-1")
	if err != nil {
		t.Fatal(err)
	}
	dev, etcd, kafka, sinkURL := devStack(t)
	port := freePort(t)
	env := map[string]string{}
	for k, v := range w1.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	env["HERALD_ETCD"], env["HERALD_KAFKA"] = etcd, kafka
	env["HERALD_HTTP_ADDR"] = "127.0.0.1:" + port
	env["HERALD_ALLOW_ENDPOINT"] = strings.TrimSuffix(sinkURL, "/")
	wk := start(t, "worker", env, nil, "worker")
	base := "http://127.0.0.1:" + port

	k8s := fleetOf(t, build(t, "base"))
	c := k8s.container(t)
	paths := []string{c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path, k8s.deploy.Spec.Template.Annotations["prometheus.io/path"]}
	t.Run("probe paths answer", func(t *testing.T) {
		deadline := time.Now().Add(60 * time.Second)
		for _, path := range paths {
			for {
				code, body, err := get(base + path)
				if err == nil && code == http.StatusOK {
					break
				}
				if time.Now().After(deadline) || !wk.running() {
					t.Fatalf("GET %s: %d %s %v; worker output:\n%s", path, code, body, err, wk.output())
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	})

	t.Run("example broadcast completes", func(t *testing.T) {
		spec := map[string]any{}
		data, _ := os.ReadFile(deployPath("examples", "hello.json"))
		if err := json.Unmarshal(data, &spec); err != nil {
			t.Fatal(err)
		}
		spec["id"] = "validate-hello"
		spec["audience"].(map[string]any)["count"] = 2000
		spec["endpoint"].(map[string]any)["url"] = sinkURL + "/push"
		raw, _ := json.Marshal(spec)
		if out, err := run(t, env, bytes.NewReader(raw), "trigger", "-"); err != nil {
			t.Fatalf("herald trigger: %v\n%s", err, out)
		}
		deadline := time.Now().Add(90 * time.Second)
		for {
			out, err := run(t, env, nil, "status", "validate-hello", "--json")
			var st struct {
				State    string           `json:"state"`
				Counters map[string]int64 `json:"counters"`
				Reason   string           `json:"reason"`
			}
			decoded := err == nil && json.Unmarshal([]byte(lastLine(out)), &st) == nil
			switch {
			case decoded && (st.State == "rejected" || st.State == "cancelled" || st.State == "expired"):
				t.Fatalf("broadcast ended %s: %s", st.State, st.Reason)
			case decoded && st.State == "done":
				c := st.Counters
				if c["delivered"] == 0 || c["scanned"] != 2000 ||
					c["scanned"] != c["delivered"]+c["failed"]+c["unreachable"]+c["invalid"]+c["expired"] {
					t.Errorf("done with counters %v: want 2000 scanned, all accounted for", c)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("broadcast not done in time: %v %s\nworker output:\n%s", err, out, wk.output())
			}
			time.Sleep(250 * time.Millisecond)
		}
	})

	t.Run("dashboard series are exported", func(t *testing.T) {
		code, body, err := get(base + paths[2])
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET /metrics: %d %v", code, err)
		}
		fams, err := parseScrape(body)
		if err != nil {
			t.Fatalf("parse /metrics: %v", err)
		}
		checkSelectorsExported(t, readDashboard(t).selectors(t), fams)
	})

	for _, rel := range []string{"base", "overlays/example"} {
		t.Run("a worker with the settings of k8s/"+rel+" joins and leaves", func(t *testing.T) {
			env := kubeletEnv(t, fleetOf(t, build(t, rel)), t.TempDir())
			// The cluster's addresses, TLS and credentials cannot be had
			// here; everything else (allowlist file, secrets folder, TTL,
			// log settings, memory limit) is used as the kubelet gives it.
			for _, name := range []string{"HERALD_KAFKA_TLS", "HERALD_KAFKA_SASL", "HERALD_KAFKA_USER", "HERALD_KAFKA_PASSWORD",
				"HERALD_ETCD_USER", "HERALD_ETCD_PASSWORD", "HERALD_ETCD_CA", "HERALD_ETCD_CERT", "HERALD_ETCD_KEY",
				"HERALD_KAFKA_CA", "HERALD_KAFKA_CERT", "HERALD_KAFKA_KEY"} {
				delete(env, name)
			}
			port := freePort(t)
			env["HERALD_ETCD"], env["HERALD_KAFKA"], env["HERALD_HTTP_ADDR"] = etcd, kafka, "127.0.0.1:"+port
			kw := start(t, "k8s-worker", env, nil, "worker")
			deadline := time.Now().Add(60 * time.Second)
			for {
				code, _, err := get("http://127.0.0.1:" + port + paths[0])
				if err == nil && code == http.StatusOK {
					break
				}
				if time.Now().After(deadline) || !kw.running() {
					t.Fatalf("not ready: %d %v; output:\n%s", code, err, kw.output())
				}
				time.Sleep(100 * time.Millisecond)
			}
			kw.stop(t, gracefulStopTime+10*time.Second)
		})
	}

	t.Run("SIGTERM stops cleanly", func(t *testing.T) {
		wk.stop(t, gracefulStopTime+10*time.Second)
	})
	dev.stop(t, 30*time.Second)
}

// kubeletEnv is the worker container's environment as the kubelet would
// give it, with the ConfigMap and Secret volumes written under root and
// every file variable pointed there.
func kubeletEnv(t *testing.T, f *fleet, root string) map[string]string {
	t.Helper()
	c := f.container(t)
	env := f.env(t)
	env["HERALD_ID"] = f.deploy.Name + "-5d8c7b9f4-x2k7q"
	if env["GOMEMLIMIT"] == "<fieldRef>" {
		env["GOMEMLIMIT"] = strconv.FormatInt(c.Resources.Limits.Memory().Value(), 10)
	}
	for name, v := range env {
		if v == "<fieldRef>" {
			t.Fatalf("%s comes from a field this test does not fill in", name)
		}
	}
	for _, m := range c.VolumeMounts {
		keys, ok := f.volumeKeys(m.Name)
		if !ok {
			t.Fatalf("volume %s is not a ConfigMap or Secret of the build", m.Name)
		}
		dir := filepath.Join(root, m.MountPath)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for k, v := range keys {
			if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		for name, v := range env {
			if isPathVar(name) && (v == m.MountPath || strings.HasPrefix(v, m.MountPath+"/")) {
				env[name] = filepath.Join(root, v)
			}
		}
	}
	return env
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// scrape is a worker's /metrics by family name.
type scrape map[string]*dto.MetricFamily

func parseScrape(body []byte) (scrape, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if len(fams) == 0 {
		return nil, errors.New("no metric families")
	}
	return fams, nil
}

// series returns the label sets of the series a query names: a family's
// own name, or a histogram's _bucket, _sum and _count.
func (s scrape) series(name string) ([]map[string]string, bool) {
	f, ok := s[name]
	if ok && f.GetType() != dto.MetricType_HISTOGRAM && f.GetType() != dto.MetricType_SUMMARY {
		return labelSets(f), true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, cut := strings.CutSuffix(name, suffix)
		if !cut {
			continue
		}
		f, ok := s[base]
		if ok && (f.GetType() == dto.MetricType_HISTOGRAM || (suffix != "_bucket" && f.GetType() == dto.MetricType_SUMMARY)) {
			return labelSets(f), true
		}
	}
	return nil, false
}

func labelSets(f *dto.MetricFamily) []map[string]string {
	var out []map[string]string
	for _, m := range f.GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		out = append(out, l)
	}
	return out
}
