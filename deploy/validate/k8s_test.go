package validate

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	ktypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// newObject returns an empty value of the API type for apiVersion and
// kind: only the kinds Herald's manifests use. Anything else is an error,
// so a manifest cannot slip past the strict decoding by being unknown.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + ", " + kind {
	case "apps/v1, Deployment":
		return &appsv1.Deployment{}, nil
	case "v1, Service":
		return &corev1.Service{}, nil
	case "v1, ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1, Secret":
		return &corev1.Secret{}, nil
	case "v1, Namespace":
		return &corev1.Namespace{}, nil
	case "policy/v1, PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "autoscaling/v2, HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, nil
	case "monitoring.coreos.com/v1, ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, nil
	}
	return nil, fmt.Errorf("no API type known for apiVersion %q kind %q", apiVersion, kind)
}

// decodeObjects decodes every document of a YAML stream strictly into its
// API type: an unknown or duplicated field is an error.
func decodeObjects(data []byte) ([]any, error) {
	var objs []any
	for i, doc := range splitYAML(data) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		obj, err := newObject(tm.APIVersion, tm.Kind)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i+1, tm.Kind, err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// splitYAML returns the non-empty documents of a YAML stream.
func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSeparator.Split(string(data), -1) {
		if strings.TrimSpace(stripComments(d)) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// kustomizationDirs are the folders under deploy/k8s with a
// kustomization.yaml, relative to deploy/k8s.
func kustomizationDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	root := deployPath("k8s")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "kustomization.yaml" {
			rel, _ := filepath.Rel(root, filepath.Dir(path))
			dirs = append(dirs, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no kustomization.yaml under deploy/k8s")
	}
	return dirs
}

func readKustomization(t *testing.T, dir string) ktypes.Kustomization {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k ktypes.Kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	return k
}

// TestManifestsDecodeStrictly decodes every file under deploy/k8s: the
// kustomizations into kustomize's type, every manifest and patch into its
// Kubernetes API type, unknown fields rejected. It also checks that each
// file in a kustomization's folder is used by it, since a manifest that
// no kustomization lists is never applied.
func TestManifestsDecodeStrictly(t *testing.T) {
	for _, rel := range kustomizationDirs(t) {
		t.Run(rel, func(t *testing.T) {
			dir := deployPath("k8s", rel)
			k := readKustomization(t, dir)
			used := map[string]bool{"kustomization.yaml": true}
			for _, r := range k.Resources {
				used[r] = true
			}
			for _, p := range k.Patches {
				used[p.Path] = true
			}
			for _, g := range append(append([]ktypes.ConfigMapArgs(nil), k.ConfigMapGenerator...), secretsAsConfigMaps(k.SecretGenerator)...) {
				for _, f := range append(g.FileSources, g.EnvSources...) {
					_, file, _ := strings.Cut(f, "=")
					if file == "" {
						file = f
					}
					used[file] = true
				}
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.IsDir() {
					continue
				}
				if !used[e.Name()] {
					t.Errorf("%s/%s is not used by its kustomization.yaml", rel, e.Name())
				}
				if e.Name() == "kustomization.yaml" || !strings.HasSuffix(e.Name(), ".yaml") {
					continue
				}
				data, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				objs, err := decodeObjects(data)
				if err != nil {
					t.Errorf("%s/%s: %v", rel, e.Name(), err)
				}
				if len(objs) == 0 {
					t.Errorf("%s/%s holds no object", rel, e.Name())
				}
			}
		})
	}
}

func secretsAsConfigMaps(s []ktypes.SecretArgs) []ktypes.ConfigMapArgs {
	var out []ktypes.ConfigMapArgs
	for _, a := range s {
		out = append(out, ktypes.ConfigMapArgs{GeneratorArgs: a.GeneratorArgs})
	}
	return out
}

// TestStrictDecoderRejects shows that the decoding above would catch the
// mistakes it is there for.
func TestStrictDecoderRejects(t *testing.T) {
	tests := []struct {
		name, doc string
	}{
		{"unknown field", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selectr: {a: b}}\n"},
		{"misplaced field", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {terminationGracePeriodSeconds: 45}\n"},
		{"duplicate field", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\ndata: {c: d}\n"},
		{"wrong type", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: x}\nspec: {selector: one}\n"},
		{"unknown kind", "apiVersion: v1\nkind: Servce\nmetadata: {name: x}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeObjects([]byte(tt.doc)); err == nil {
				t.Fatalf("decoded without error:\n%s", tt.doc)
			}
		})
	}
}

// build runs kustomize on deploy/k8s/<rel> and decodes its output
// strictly.
func build(t *testing.T, rel string) []any {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), deployPath("k8s", rel))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", rel, err)
	}
	out, err := m.AsYaml()
	if err != nil {
		t.Fatalf("kustomize build %s: %v", rel, err)
	}
	objs, err := decodeObjects(out)
	if err != nil {
		t.Fatalf("kustomize build %s output: %v\n%s", rel, err, out)
	}
	return objs
}

// TestKustomizationsBuild builds the base and every overlay and checks the
// result as one fleet: see checkFleet.
func TestKustomizationsBuild(t *testing.T) {
	for _, rel := range kustomizationDirs(t) {
		if readKustomization(t, deployPath("k8s", rel)).Kind == ktypes.ComponentKind {
			continue // a component builds only inside an overlay
		}
		t.Run(rel, func(t *testing.T) {
			checkFleet(t, fleetOf(t, build(t, rel)))
		})
	}
}

// TestExampleOverlay checks what the example overlay promises on top of
// the base.
func TestExampleOverlay(t *testing.T) {
	f := fleetOf(t, build(t, "overlays/example"))
	c := f.container(t)
	if c.Image == "herald:dev" || !strings.Contains(c.Image, ":") {
		t.Errorf("overlay image %q: want a registry image with a tag", c.Image)
	}
	if r := f.deploy.Spec.Replicas; r == nil || *r != 6 {
		t.Errorf("overlay replicas = %v, want 6", r)
	}
	if f.hpa.Spec.MinReplicas == nil || *f.hpa.Spec.MinReplicas != 6 {
		t.Errorf("overlay HPA minReplicas = %v, want 6 (the replicas it sets)", f.hpa.Spec.MinReplicas)
	}
	if f.monitor == nil {
		t.Error("overlay has no ServiceMonitor")
	}
	for _, o := range []metav1.Object{f.deploy, f.hpa, f.pdb, f.service} {
		if o.GetNamespace() != "herald" {
			t.Errorf("%s is in namespace %q, want herald", o.GetName(), o.GetNamespace())
		}
	}
	env := f.env(t)
	if !strings.HasPrefix(env["HERALD_ETCD"], "https://") || env["HERALD_KAFKA_TLS"] != "true" || env["HERALD_KAFKA_SASL"] == "" {
		t.Errorf("overlay does not switch etcd and Kafka to TLS and SASL: %v", env)
	}
	if env["HERALD_ETCD_PASSWORD"] == "" || env["HERALD_KAFKA_PASSWORD"] == "" {
		t.Error("overlay's auth Secret does not reach the worker's environment")
	}
	if res := c.Resources.Limits.Memory(); res.String() != "1Gi" {
		t.Errorf("overlay memory limit = %s, want the patch's 1Gi", res)
	}
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// allowPattern is one line of an endpoint allowlist file.
var allowPattern = regexp.MustCompile(`^https?://(\*\.)*[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*:(\*|[0-9]{1,5})$|^https?://\*:(\*|[0-9]{1,5})$`)

// checkAllowlist checks an allowlist file's patterns are well-formed.
func checkAllowlist(t *testing.T, name, text string) {
	t.Helper()
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !allowPattern.MatchString(line) {
			t.Errorf("%s line %d: %q is not scheme://host-pattern:port-pattern", name, i+1, line)
		}
	}
}
