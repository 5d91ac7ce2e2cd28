package validate

import (
	"context"
	"encoding/base64"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

// loadCompose loads a Compose file as `docker compose` does, with the
// Compose specification's JSON schema checked, which rejects unknown
// keys. profiles are the profiles to enable.
func loadCompose(t *testing.T, file string, profiles ...string) (*types.Project, error) {
	t.Helper()
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  filepath.Dir(file),
		ConfigFiles: []types.ConfigFile{{Filename: file}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) {
		o.SetProjectName("herald", true)
		o.Profiles = profiles
	})
}

func TestComposeLoaderIsStrict(t *testing.T) {
	tests := []struct{ name, doc string }{
		{"unknown service key", "services:\n  a:\n    image: x\n    restrat: always\n"},
		{"unknown healthcheck key", "services:\n  a:\n    image: x\n    healthcheck:\n      test: [CMD, x]\n      intervall: 5s\n"},
		{"bad depends_on condition", "services:\n  a:\n    image: x\n    depends_on:\n      b: {condition: service_ready}\n  b:\n    image: x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "compose.yaml")
			if err := os.WriteFile(file, []byte(tt.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := loadCompose(t, file); err == nil {
				t.Fatalf("loaded without error:\n%s", tt.doc)
			}
		})
	}
}

// TestCompose loads deploy/compose.yaml and checks that the fleet it
// describes can start, stop gracefully and reach its parts.
func TestCompose(t *testing.T) {
	file := deployPath("compose.yaml")
	p, err := loadCompose(t, file)
	if err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
	wantDefault := []string{"etcd", "kafka", "sink", "topics", "worker-1", "worker-2", "worker-3"}
	if got := p.ServiceNames(); !slices.Equal(sorted(got), wantDefault) {
		t.Errorf("services without profiles = %v, want %v", got, wantDefault)
	}
	p, err = loadCompose(t, file, "observe")
	if err != nil {
		t.Fatalf("load %s with profile observe: %v", file, err)
	}
	svc := func(name string) types.ServiceConfig {
		s, err := p.GetService(name)
		if err != nil {
			t.Fatalf("service %s: %v", name, err)
		}
		return s
	}
	env := func(s types.ServiceConfig) map[string]string {
		m := map[string]string{}
		for k, v := range s.Environment {
			if v != nil {
				m[k] = *v
			}
		}
		return m
	}

	t.Run("every service restarts and long-running ones are health-checked", func(t *testing.T) {
		for _, s := range p.Services {
			if s.Restart == "" || s.Restart == types.RestartPolicyNo {
				t.Errorf("%s has no restart policy", s.Name)
			}
			oneShot := s.Name == "topics"
			// Grafana is a viewer nothing depends on; its image's tools are
			// not something this file can rely on.
			if !oneShot && s.Name != "grafana" && (s.HealthCheck == nil || len(s.HealthCheck.Test) == 0) {
				t.Errorf("%s has no health check", s.Name)
			}
			for dep, d := range s.DependsOn {
				if d.Condition == types.ServiceConditionHealthy && svc(dep).HealthCheck == nil {
					t.Errorf("%s waits for %s to be healthy, which has no health check", s.Name, dep)
				}
			}
		}
	})

	t.Run("etcd", func(t *testing.T) {
		e := svc("etcd")
		if !strings.HasPrefix(e.Image, "quay.io/coreos/etcd:v3.6") {
			t.Errorf("etcd image %q: want the official quay.io/coreos/etcd v3.6", e.Image)
		}
		if !slices.Contains(e.Command, "--advertise-client-urls=http://etcd:2379") {
			t.Errorf("etcd does not advertise http://etcd:2379: %q", e.Command)
		}
	})

	t.Run("kafka in KRaft mode", func(t *testing.T) {
		k := svc("kafka")
		if !strings.HasPrefix(k.Image, "apache/kafka:") {
			t.Errorf("kafka image %q: want the official apache/kafka", k.Image)
		}
		ke := env(k)
		if ke["KAFKA_PROCESS_ROLES"] != "broker,controller" || ke["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "" {
			t.Errorf("kafka is not a combined KRaft broker and controller: %v", ke)
		}
		for name := range ke {
			if strings.Contains(name, "ZOOKEEPER") {
				t.Errorf("kafka sets %s: KRaft needs no ZooKeeper", name)
			}
		}
		if id, err := base64.RawURLEncoding.DecodeString(ke["CLUSTER_ID"]); err != nil || len(id) != 16 {
			t.Errorf("CLUSTER_ID %q is not 16 bytes in unpadded URL-safe base64", ke["CLUSTER_ID"])
		}
		if !strings.Contains(ke["KAFKA_ADVERTISED_LISTENERS"], "://kafka:9092") {
			t.Errorf("kafka does not advertise kafka:9092 to the other services: %s", ke["KAFKA_ADVERTISED_LISTENERS"])
		}
		script := strings.Join(svc("topics").Command, " ")
		for _, topic := range []string{"herald.broadcasts", "herald.deadletters", "herald.reports"} {
			if !strings.Contains(script, topic) {
				t.Errorf("the topics service does not create %s", topic)
			}
		}
	})

	t.Run("sink", func(t *testing.T) {
		s := svc("sink")
		if !slices.Equal(s.Entrypoint, []string{"/herald", "sink"}) || len(s.Command) > 0 {
			t.Errorf("sink runs %q %q, want the herald image's /herald sink with no arguments", s.Entrypoint, s.Command)
		}
		names := sortedKeys(env(s))
		checkEnvNames(t, "the sink service", "sink", names)
	})

	var workers []types.ServiceConfig
	for _, s := range p.Services {
		if strings.HasPrefix(s.Name, "worker-") {
			workers = append(workers, s)
		}
	}
	if len(workers) != 3 {
		t.Fatalf("%d worker services, want 3", len(workers))
	}
	sinkPort := portOf(t, env(svc("sink"))["HERALD_LISTEN"])
	ids := map[string]bool{}
	for _, w := range workers {
		t.Run(w.Name, func(t *testing.T) {
			we := env(w)
			if w.Build == nil || w.Build.Dockerfile != "deploy/Dockerfile" || w.Build.Context != repo {
				t.Errorf("build %+v: want deploy/Dockerfile with the repository as context", w.Build)
			}
			if len(w.Entrypoint) > 0 || len(w.Command) > 0 {
				t.Errorf("overrides the image's `herald worker` with %q %q: configure it by environment", w.Entrypoint, w.Command)
			}
			checkEnvNames(t, w.Name, "worker", sortedKeys(we))
			if ids[we["HERALD_ID"]] || we["HERALD_ID"] == "" {
				t.Errorf("HERALD_ID %q is empty or shared", we["HERALD_ID"])
			}
			ids[we["HERALD_ID"]] = true
			if we["HERALD_ETCD"] != "http://etcd:2379" || we["HERALD_KAFKA"] != "kafka:9092" {
				t.Errorf("reaches etcd at %q and Kafka at %q", we["HERALD_ETCD"], we["HERALD_KAFKA"])
			}
			if g := w.StopGracePeriod; g == nil || time.Duration(*g) <= gracefulStopTime {
				t.Errorf("stop_grace_period %v: want more than %v so the hand-back finishes", g, gracefulStopTime)
			}
			hc := w.HealthCheck.Test
			want := "http://127.0.0.1:" + portOf(t, we["HERALD_HTTP_ADDR"]) + "/readyz"
			if !slices.Equal(hc, []string{"CMD", "/healthcheck", want}) {
				t.Errorf("health check %q, want [CMD /healthcheck %s]", hc, want)
			}
			for dep, cond := range map[string]string{"etcd": types.ServiceConditionHealthy,
				"topics": types.ServiceConditionCompletedSuccessfully, "sink": types.ServiceConditionHealthy} {
				if w.DependsOn[dep].Condition != cond {
					t.Errorf("depends on %s with condition %q, want %q", dep, w.DependsOn[dep].Condition, cond)
				}
			}
			allow := we["HERALD_ALLOW_ENDPOINT"]
			checkAllowlist(t, w.Name+" HERALD_ALLOW_ENDPOINT", strings.ReplaceAll(allow, ",", "\n"))
			if !slices.Contains(strings.Split(allow, ","), "http://sink:"+sinkPort) {
				t.Errorf("HERALD_ALLOW_ENDPOINT %q does not allow the sink at http://sink:%s", allow, sinkPort)
			}
		})
	}

	t.Run("example broadcast goes to the sink", func(t *testing.T) {
		u, err := url.Parse(exampleSpec(t).Endpoint.URL)
		if err != nil || u.Scheme != "http" || u.Hostname() != "sink" || u.Port() != sinkPort {
			t.Errorf("deploy/examples/hello.json endpoint %v: want http://sink:%s/...", u, sinkPort)
		}
	})

	t.Run("prometheus scrapes every worker", func(t *testing.T) {
		pr := svc("prometheus")
		cfg := readPrometheusConfig(t, mountedFile(t, pr, "/etc/prometheus/prometheus.yml"))
		var targets []string
		for _, sc := range cfg.ScrapeConfigs {
			if sc.MetricsPath != "/metrics" {
				t.Errorf("job %s scrapes %q, want /metrics", sc.JobName, sc.MetricsPath)
			}
			for _, s := range sc.StaticConfigs {
				targets = append(targets, s.Targets...)
			}
		}
		var want []string
		for _, w := range workers {
			want = append(want, w.Name+":"+portOf(t, env(w)["HERALD_HTTP_ADDR"]))
		}
		if !slices.Equal(sorted(targets), sorted(want)) {
			t.Errorf("prometheus targets %v, want %v", targets, want)
		}
	})

	t.Run("grafana provisions the dashboard", func(t *testing.T) {
		g := svc("grafana")
		dash := mountedFile(t, g, "/var/lib/grafana/dashboards/herald.json")
		if dash != deployPath("grafana", "herald.json") {
			t.Errorf("grafana mounts %s as the dashboard, want deploy/grafana/herald.json", dash)
		}
		prov := mountedFile(t, g, "/etc/grafana/provisioning")
		checkGrafanaProvisioning(t, prov, readDashboard(t).defaultDatasource(t))
	})
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// portOf returns the port of a listen address such as ":9464".
func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	return port
}

// mountedFile returns the host path a service mounts at target, after
// checking it exists.
func mountedFile(t *testing.T, s types.ServiceConfig, target string) string {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Target == target {
			if _, err := os.Stat(v.Source); err != nil {
				t.Fatalf("%s mounts %s at %s: %v", s.Name, v.Source, target, err)
			}
			return v.Source
		}
	}
	t.Fatalf("%s mounts nothing at %s", s.Name, target)
	return ""
}

// prometheusConfig is the part of Prometheus's configuration file that
// deploy/prometheus uses; decoding it strictly catches a misspelt key.
type prometheusConfig struct {
	Global struct {
		ScrapeInterval     string `json:"scrape_interval"`
		EvaluationInterval string `json:"evaluation_interval"`
	} `json:"global"`
	ScrapeConfigs []struct {
		JobName       string `json:"job_name"`
		MetricsPath   string `json:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `json:"targets"`
		} `json:"static_configs"`
	} `json:"scrape_configs"`
}

func readPrometheusConfig(t *testing.T, file string) prometheusConfig {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var c prometheusConfig
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	for _, d := range []string{c.Global.ScrapeInterval, c.Global.EvaluationInterval} {
		if _, err := time.ParseDuration(d); err != nil {
			t.Errorf("%s: interval %q: %v", file, d, err)
		}
	}
	return c
}

// checkGrafanaProvisioning decodes Grafana's provisioning files strictly
// and checks the datasource matches the dashboard's default.
func checkGrafanaProvisioning(t *testing.T, dir, datasourceUID string) {
	t.Helper()
	var ds struct {
		APIVersion  int `json:"apiVersion"`
		Datasources []struct {
			Name      string `json:"name"`
			UID       string `json:"uid"`
			Type      string `json:"type"`
			Access    string `json:"access"`
			URL       string `json:"url"`
			IsDefault bool   `json:"isDefault"`
		} `json:"datasources"`
	}
	var dash struct {
		APIVersion int `json:"apiVersion"`
		Providers  []struct {
			Name            string `json:"name"`
			Folder          string `json:"folder"`
			Type            string `json:"type"`
			DisableDeletion bool   `json:"disableDeletion"`
			Options         struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	for file, v := range map[string]any{"datasources/prometheus.yaml": &ds, "dashboards/herald.yaml": &dash} {
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(data, v); err != nil {
			t.Fatalf("grafana provisioning %s: %v", file, err)
		}
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].UID != datasourceUID || ds.Datasources[0].Type != "prometheus" ||
		ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("provisioned datasources %+v: want one Prometheus at http://prometheus:9090 with uid %q", ds.Datasources, datasourceUID)
	}
	if len(dash.Providers) != 1 || dash.Providers[0].Options.Path != "/var/lib/grafana/dashboards" {
		t.Errorf("dashboard providers %+v: want one reading /var/lib/grafana/dashboards", dash.Providers)
	}
}
