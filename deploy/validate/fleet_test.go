package validate

import (
	"net"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/herald-dev/herald/coordinator"
)

// What a graceful stop of a worker may take, from SIGTERM to exit: the
// coordinator waits up to its leave timeout for units to be handed back,
// a hand-back waits up to the worker's default HandoffDrain for sends in
// flight, and cmd/herald then gives its HTTP server 5 s to shut down.
// terminationGracePeriodSeconds must be longer, or the kubelet's SIGKILL
// turns a clean hand-back into a failover after the lease TTL.
const (
	handoffDrain     = 5 * time.Second
	httpShutdown     = 5 * time.Second
	gracefulStopTime = coordinator.DefaultLeaveTimeout + handoffDrain + httpShutdown
)

// maxSplitMembers is how many members one start or split transaction can
// serve within etcd's default of 128 operations a transaction (two puts a
// member and one for the parent): coordinator's (maxTxnOps-1)/2.
const maxSplitMembers = (128 - 1) / 2

// fleet is one kustomize build's objects, by role.
type fleet struct {
	deploy     *appsv1.Deployment
	service    *corev1.Service
	pdb        *policyv1.PodDisruptionBudget
	hpa        *autoscalingv2.HorizontalPodAutoscaler
	monitor    *monitoringv1.ServiceMonitor
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
}

func fleetOf(t *testing.T, objs []any) *fleet {
	t.Helper()
	f := &fleet{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	one := func(name string, have bool) {
		if have {
			t.Errorf("more than one %s", name)
		}
	}
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			one("Deployment", f.deploy != nil)
			f.deploy = o
		case *corev1.Service:
			one("Service", f.service != nil)
			f.service = o
		case *policyv1.PodDisruptionBudget:
			one("PodDisruptionBudget", f.pdb != nil)
			f.pdb = o
		case *autoscalingv2.HorizontalPodAutoscaler:
			one("HorizontalPodAutoscaler", f.hpa != nil)
			f.hpa = o
		case *monitoringv1.ServiceMonitor:
			one("ServiceMonitor", f.monitor != nil)
			f.monitor = o
		case *corev1.ConfigMap:
			f.configMaps[o.Name] = o
		case *corev1.Secret:
			f.secrets[o.Name] = o
		}
	}
	if f.deploy == nil || f.service == nil || f.pdb == nil || f.hpa == nil {
		t.Fatalf("build lacks a Deployment, Service, PodDisruptionBudget or HorizontalPodAutoscaler")
	}
	return f
}

func (f *fleet) container(t *testing.T) corev1.Container {
	t.Helper()
	for _, c := range f.deploy.Spec.Template.Spec.Containers {
		if c.Name == "worker" {
			return c
		}
	}
	t.Fatal("the Deployment has no container named worker")
	return corev1.Container{}
}

// env is the worker container's environment as the kubelet would build
// it: envFrom ConfigMaps and Secrets first, then env, which wins. Values
// from the downward API are shown as "<fieldRef>".
func (f *fleet) env(t *testing.T) map[string]string {
	t.Helper()
	c := f.container(t)
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, ok := f.configMaps[from.ConfigMapRef.Name]
			if !ok {
				t.Errorf("envFrom names ConfigMap %q, which the build does not hold", from.ConfigMapRef.Name)
				continue
			}
			for k, v := range cm.Data {
				env[k] = v
			}
		case from.SecretRef != nil:
			s, ok := f.secrets[from.SecretRef.Name]
			if !ok {
				t.Errorf("envFrom names Secret %q, which the build does not hold", from.SecretRef.Name)
				continue
			}
			for k, v := range s.Data {
				env[k] = string(v)
			}
			for k, v := range s.StringData {
				env[k] = v
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil || e.ValueFrom.ResourceFieldRef != nil:
			env[e.Name] = "<fieldRef>"
		default:
			t.Errorf("env %s: only literal values and the downward API are expected", e.Name)
		}
	}
	return env
}

// checkFleet checks what every build must hold for the fleet to run and
// to stop gracefully.
func checkFleet(t *testing.T, f *fleet) {
	c := f.container(t)
	pod := f.deploy.Spec.Template
	env := f.env(t)
	podLabels := labels.Set(pod.Labels)

	t.Run("configured only by the environment", func(t *testing.T) {
		if len(c.Command) > 0 || len(c.Args) > 0 {
			t.Errorf("worker container overrides the entrypoint: command %q args %q", c.Command, c.Args)
		}
		checkEnvNames(t, "the worker Deployment", "worker", sortedKeys(env))
		if env["HERALD_ID"] != "<fieldRef>" {
			t.Error("HERALD_ID does not come from the pod name: replicas would share a member id")
		}
		ttl, err := time.ParseDuration(env["HERALD_LEASE_TTL"])
		if err != nil || ttl < coordinator.MinLeaseTTL {
			t.Errorf("HERALD_LEASE_TTL %q: want a duration of at least %v", env["HERALD_LEASE_TTL"], coordinator.MinLeaseTTL)
		}
	})

	t.Run("probes and metrics port", func(t *testing.T) {
		_, portText, err := net.SplitHostPort(env["HERALD_HTTP_ADDR"])
		if err != nil {
			t.Fatalf("HERALD_HTTP_ADDR %q: %v", env["HERALD_HTTP_ADDR"], err)
		}
		port, _ := strconv.Atoi(portText)
		var metrics *corev1.ContainerPort
		for i, p := range c.Ports {
			if p.Name == "metrics" {
				metrics = &c.Ports[i]
			}
		}
		if metrics == nil || int(metrics.ContainerPort) != port {
			t.Fatalf("container port named metrics = %v, want %d (HERALD_HTTP_ADDR)", metrics, port)
		}
		for _, p := range []struct {
			name  string
			probe *corev1.Probe
			path  string
		}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("%s probe: want an HTTP GET of %s", p.name, p.path)
				continue
			}
			g := p.probe.HTTPGet
			if g.Path != p.path || (g.Port.String() != "metrics" && g.Port.IntValue() != port) {
				t.Errorf("%s probe gets %s on port %s, want %s on the metrics port", p.name, g.Path, g.Port.String(), p.path)
			}
		}
		if c.LivenessProbe != nil && c.LivenessProbe.FailureThreshold*c.LivenessProbe.PeriodSeconds < 30 {
			t.Errorf("liveness probe gives up after %d s: a worker busy with a hand-back would be killed",
				c.LivenessProbe.FailureThreshold*c.LivenessProbe.PeriodSeconds)
		}
		a := pod.Annotations
		if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != portText || a["prometheus.io/path"] != "/metrics" {
			t.Errorf("pod scrape annotations %v: want scrape true, port %s, path /metrics", a, portText)
		}
	})

	t.Run("graceful stop fits the grace period", func(t *testing.T) {
		g := pod.Spec.TerminationGracePeriodSeconds
		if g == nil || time.Duration(*g)*time.Second <= gracefulStopTime {
			t.Errorf("terminationGracePeriodSeconds = %v, want more than %v", g, gracefulStopTime)
		}
	})

	t.Run("resources", func(t *testing.T) {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, okReq := c.Resources.Requests[r]
			lim, okLim := c.Resources.Limits[r]
			if !okReq || !okLim {
				t.Errorf("%s: want both a request and a limit", r)
				continue
			}
			if req.Cmp(lim) > 0 {
				t.Errorf("%s request %s above limit %s", r, req.String(), lim.String())
			}
		}
	})

	t.Run("non-root and read-only", func(t *testing.T) {
		psc, sc := pod.Spec.SecurityContext, c.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			t.Error("pod does not run as a non-root user")
		}
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Error("container is not read-only without privilege escalation")
		}
	})

	t.Run("files named in the environment are mounted", func(t *testing.T) {
		for name, value := range env {
			if !isPathVar(name) || value == "" {
				continue
			}
			dir := strings.HasSuffix(name, "_DIR")
			if err := f.mounted(c, value, dir); err != "" {
				t.Errorf("%s=%s: %s", name, value, err)
			}
		}
		if file := env["HERALD_ALLOW_ENDPOINT_FILE"]; file != "" {
			if text, ok := f.fileContent(c, file); ok {
				checkAllowlist(t, file, text)
			}
		}
	})

	t.Run("disruption budget and autoscaler", func(t *testing.T) {
		if sel, err := metav1.LabelSelectorAsSelector(f.pdb.Spec.Selector); err != nil || !sel.Matches(podLabels) {
			t.Errorf("PodDisruptionBudget selector %v does not match the pods", f.pdb.Spec.Selector)
		}
		if mu := f.pdb.Spec.MaxUnavailable; mu == nil || mu.IntValue() != 1 {
			t.Errorf("PodDisruptionBudget maxUnavailable = %v, want 1: one graceful hand-back at a time", mu)
		}
		ref := f.hpa.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.Name != f.deploy.Name {
			t.Errorf("HPA scales %s %s, not the worker Deployment %s", ref.Kind, ref.Name, f.deploy.Name)
		}
		if m := f.hpa.Spec.MinReplicas; m == nil || *m < 2 || *m > f.hpa.Spec.MaxReplicas {
			t.Errorf("HPA replicas %v..%d: want at least 2, so a dead worker's share has somewhere to go", m, f.hpa.Spec.MaxReplicas)
		}
		if f.hpa.Spec.MaxReplicas > maxSplitMembers {
			t.Errorf("HPA maxReplicas %d: past %d workers, some get no initial unit of a broadcast", f.hpa.Spec.MaxReplicas, maxSplitMembers)
		}
		if b := f.hpa.Spec.Behavior; b == nil || b.ScaleDown == nil || b.ScaleDown.StabilizationWindowSeconds == nil ||
			*b.ScaleDown.StabilizationWindowSeconds < 300 {
			t.Error("HPA scales down without a long stabilization window: every removal moves work")
		}
	})

	t.Run("service and service monitor", func(t *testing.T) {
		if !labels.SelectorFromSet(f.service.Spec.Selector).Matches(podLabels) || len(f.service.Spec.Selector) == 0 {
			t.Errorf("Service selector %v does not match the pods", f.service.Spec.Selector)
		}
		if len(f.service.Spec.Ports) != 1 || f.service.Spec.Ports[0].Name != "metrics" ||
			f.service.Spec.Ports[0].TargetPort.String() != "metrics" {
			t.Errorf("Service ports %v: want one port named metrics targeting the container's metrics port", f.service.Spec.Ports)
		}
		if f.monitor == nil {
			return
		}
		if sel, err := metav1.LabelSelectorAsSelector(&f.monitor.Spec.Selector); err != nil || !sel.Matches(labels.Set(f.service.Labels)) {
			t.Errorf("ServiceMonitor selector does not match the Service's labels %v", f.service.Labels)
		}
		for _, e := range f.monitor.Spec.Endpoints {
			if e.Port != "metrics" || (e.Path != "" && e.Path != "/metrics") {
				t.Errorf("ServiceMonitor endpoint %+v: want port metrics, path /metrics", e)
			}
		}
	})
}

// isPathVar reports whether the variable name holds a file or folder:
// the lead's TLS, allowlist and secrets settings all end so.
func isPathVar(name string) bool {
	for _, suffix := range []string{"_FILE", "_DIR", "_CA", "_CERT", "_KEY"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// mounted reports ("" if fine) whether file (or, when dir, the folder) is
// what a ConfigMap or Secret volume mounted in c provides.
func (f *fleet) mounted(c corev1.Container, file string, dir bool) string {
	for _, m := range c.VolumeMounts {
		if dir && path.Clean(file) == path.Clean(m.MountPath) {
			if _, ok := f.volumeKeys(m.Name); ok {
				return ""
			}
			return "mounted from a volume that is not a ConfigMap or Secret of the build"
		}
		if !dir && path.Dir(file) == path.Clean(m.MountPath) {
			keys, ok := f.volumeKeys(m.Name)
			if !ok {
				return "mounted from a volume that is not a ConfigMap or Secret of the build"
			}
			if _, has := keys[path.Base(file)]; !has {
				return "the mounted ConfigMap or Secret has no key " + path.Base(file)
			}
			return ""
		}
	}
	return "no volume is mounted there"
}

// volumeKeys returns the keys (file names) of the ConfigMap or Secret
// behind the pod volume name.
func (f *fleet) volumeKeys(name string) (map[string]string, bool) {
	for _, v := range f.deploy.Spec.Template.Spec.Volumes {
		if v.Name != name {
			continue
		}
		switch {
		case v.ConfigMap != nil:
			cm, ok := f.configMaps[v.ConfigMap.Name]
			if !ok {
				return nil, false
			}
			return cm.Data, true
		case v.Secret != nil:
			s, ok := f.secrets[v.Secret.SecretName]
			if !ok {
				return nil, false
			}
			keys := map[string]string{}
			for k, val := range s.Data {
				keys[k] = string(val)
			}
			return keys, true
		}
	}
	return nil, false
}

// fileContent returns what the worker would read at file.
func (f *fleet) fileContent(c corev1.Container, file string) (string, bool) {
	for _, m := range c.VolumeMounts {
		if path.Dir(file) == path.Clean(m.MountPath) {
			keys, ok := f.volumeKeys(m.Name)
			text, has := keys[path.Base(file)]
			return text, ok && has
		}
	}
	return "", false
}
