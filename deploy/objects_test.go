package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// chartDir is the Helm chart; overlays are the Kustomize builds users apply.
const chartDir = "helm/sequoia"

var overlays = []string{"kustomize/base", "kustomize/overlays/gateway", "kustomize/overlays/sidecar", "kustomize/overlays/sidecar-cluster"}

// object is one decoded Kubernetes object and where it came from.
type object struct {
	source string // file, overlay or chart render it came from
	kind   string
	name   string
	obj    any // a pointer to the typed object
}

func (o object) String() string { return fmt.Sprintf("%s: %s/%s", o.source, o.kind, o.name) }

// types maps apiVersion/kind to a constructor of the Go type it decodes
// into. A kind missing here fails the test: every object must be typed.
var types = map[string]func() any{
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                     func() any { return &appsv1.StatefulSet{} },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"v1/ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
	"monitoring.coreos.com/v1/PodMonitor":     func() any { return &monitoringv1.PodMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return &monitoringv1.PrometheusRule{} },
}

// decodeStrict decodes one YAML document into v the way the API server
// reads JSON: field names are case-sensitive, unknown and duplicate fields
// are errors.
func decodeStrict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	if len(strict) > 0 {
		msgs := make([]string, len(strict))
		for i, e := range strict {
			msgs[i] = e.Error()
		}
		return fmt.Errorf("strict decoding: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// decodeObject decodes a whole object: it reads apiVersion and kind, then
// decodes strictly into the matching type.
func decodeObject(source string, doc []byte) (object, error) {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return object{}, fmt.Errorf("%s: %w", source, err)
	}
	mk, ok := types[meta.APIVersion+"/"+meta.Kind]
	if !ok {
		return object{}, fmt.Errorf("%s: %s %s: no Go type to check it against", source, meta.APIVersion, meta.Kind)
	}
	v := mk()
	if err := decodeStrict(doc, v); err != nil {
		return object{}, fmt.Errorf("%s: %s/%s: %w", source, meta.Kind, meta.Metadata.Name, err)
	}
	return object{source: source, kind: meta.Kind, name: meta.Metadata.Name, obj: v}, nil
}

// build runs kustomize on dir and decodes what it emits.
func build(t *testing.T, dir string) []object {
	t.Helper()
	out, err := kustomize(dir)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// kustomize runs kustomize on dir (relative to this module or absolute)
// and decodes what it emits.
func kustomize(dir string) ([]object, error) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var out []object
	for _, r := range m.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
		}
		o, err := decodeObject(dir, doc)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("kustomize build %s: no objects", dir)
	}
	return out, nil
}

// render is one way of rendering the chart.
type render struct {
	name       string
	valuesFile string   // in chartDir; "" for the defaults only
	set        string   // extra values, YAML
	apis       []string // API versions the cluster serves beyond the defaults
}

var monitoringAPIs = []string{"monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor",
	"monitoring.coreos.com/v1/PodMonitor", "monitoring.coreos.com/v1/PrometheusRule"}

var renders = []render{
	{name: "defaults"},
	{name: "defaults+monitoring", apis: monitoringAPIs},
	{name: "sidecar", valuesFile: "values-sidecar.yaml"},
	{name: "sidecar+monitoring", valuesFile: "values-sidecar.yaml", apis: monitoringAPIs},
	{name: "sidecar-cluster", valuesFile: "values-sidecar-cluster.yaml"},
	{name: "defaults+apiTokens", set: "apiTokens: {existingSecret: sequoia-api-tokens}"},
	{name: "sidecar+apiTokens", valuesFile: "values-sidecar.yaml", set: "apiTokens: {existingSecret: my-app-tokens, key: api.tokens, mountPath: /var/run/sequoia/tokens/}"},
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return c
}

// renderChart renders the chart as `helm template` would against a
// Kubernetes 1.33 cluster and returns the manifests by template name.
func renderChart(c *chart.Chart, r render) (map[string]string, error) {
	vals := map[string]any{}
	if r.valuesFile != "" {
		v, err := chartutil.ReadValuesFile(filepath.Join(chartDir, r.valuesFile))
		if err != nil {
			return nil, err
		}
		vals = v
	}
	if r.set != "" {
		v, err := chartutil.ReadValues([]byte(r.set))
		if err != nil {
			return nil, err
		}
		vals = chartutil.CoalesceTables(v, vals)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	kv, err := chartutil.ParseKubeVersion("v1.33.0")
	if err != nil {
		return nil, err
	}
	caps.KubeVersion = *kv
	caps.APIVersions = append(slices.Clone(caps.APIVersions), r.apis...)
	if c.Metadata.KubeVersion != "" && !chartutil.IsCompatibleRange(c.Metadata.KubeVersion, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart needs Kubernetes %s, not %s", c.Metadata.KubeVersion, caps.KubeVersion)
	}
	top, err := chartutil.ToRenderValues(c, vals, chartutil.ReleaseOptions{Name: "sequoia", Namespace: "sequoia", Revision: 1, IsInstall: true}, caps)
	if err != nil {
		return nil, err
	}
	return engine.Render(c, top)
}

// renderObjects renders the chart and decodes every object it emits.
func renderObjects(t *testing.T, c *chart.Chart, r render) []object {
	t.Helper()
	files, err := renderChart(c, r)
	if err != nil {
		t.Fatalf("render %s: %v", r.name, err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []object
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		docs := releaseutil.SplitManifests(files[name])
		keys := make([]string, 0, len(docs))
		for k := range docs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			doc := docs[k]
			if len(bytes.TrimSpace([]byte(stripComments(doc)))) == 0 {
				continue
			}
			o, err := decodeObject(fmt.Sprintf("helm %s %s", r.name, name), []byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, o)
		}
	}
	if len(out) == 0 {
		t.Fatalf("render %s: no objects", r.name)
	}
	return out
}

// stripComments drops YAML comment lines, so that a template that renders
// only a comment counts as empty.
func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// readFile reads a file of this module.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func kinds(objs []object) []string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, o.kind)
	}
	sort.Strings(ks)
	return ks
}

func ofKind[T any](objs []object) []*T {
	var out []*T
	for _, o := range objs {
		if v, ok := o.obj.(*T); ok {
			out = append(out, v)
		}
	}
	return out
}

func metaSelector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return nil, fmt.Errorf("no selector")
	}
	return metav1.LabelSelectorAsSelector(s)
}

func yamlOf(v any) ([]byte, error) { return yaml.Marshal(v) }
