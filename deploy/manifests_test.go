package deploy

import (
	"bytes"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/sequoia-qos/sequoia/config"
)

// exitMargin is the grace the pod templates leave for the process to exit
// after its shutdown timeout.
const exitMargin = 5 * time.Second

// The strict decoder must refuse what the API server would: unknown fields
// (misspelt or misplaced), fields in the wrong case, duplicate keys.
func TestDecodeStrictRefuses(t *testing.T) {
	good := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers: [{name: a, image: b}]\n"
	if _, err := decodeObject("good", []byte(good)); err != nil {
		t.Fatalf("a valid Deployment was refused: %v", err)
	}
	for name, doc := range map[string]string{
		"unknown field": strings.Replace(good, "image: b", "image: b, imagePullPolicyy: Always", 1),
		"misplaced":     strings.Replace(good, "metadata: {name: x}", "metadata: {name: x, replicas: 2}", 1),
		"wrong case":    strings.Replace(good, "containers:", "Containers:", 1),
		"duplicate key": strings.Replace(good, "metadata: {name: x}", "metadata: {name: x}\nmetadata: {name: y}", 1),
		"unknown kind":  strings.Replace(good, "kind: Deployment", "kind: Deploymnet", 1),
		"wrong type":    strings.Replace(good, "spec:\n  template", "spec:\n  replicas: two\n  template", 1),
	} {
		if _, err := decodeObject(name, []byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// Every object file under kustomize/ (patches included where they are
// objects) decodes strictly on its own.
func TestManifestFilesDecodeStrictly(t *testing.T) {
	n := 0
	err := filepath.WalkDir("kustomize", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		if d.Name() == "kustomization.yaml" {
			return nil
		}
		raw := readFile(t, path)
		if bytes.HasPrefix(bytes.TrimSpace([]byte(stripComments(string(raw)))), []byte("- op:")) {
			return nil // a JSON 6902 patch: kustomize applies it in TestOverlays
		}
		for _, doc := range releaseutil.SplitManifests(string(raw)) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			if _, err := decodeObject(path, []byte(doc)); err != nil {
				t.Error(err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 6 {
		t.Fatalf("decoded %d manifests; expected at least 6", n)
	}
}

func TestOverlays(t *testing.T) {
	want := map[string][]string{
		"kustomize/base": {"ConfigMap", "Deployment"},
		"kustomize/overlays/gateway": {"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget",
			"PodDisruptionBudget", "PrometheusRule", "Service", "Service", "Service", "ServiceMonitor", "StatefulSet"},
		"kustomize/overlays/sidecar":         {"ConfigMap", "Deployment"},
		"kustomize/overlays/sidecar-cluster": {"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "StatefulSet"},
	}
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			objs := build(t, dir)
			if got := kinds(objs); !slices.Equal(got, want[dir]) {
				t.Errorf("kinds = %v, want %v", got, want[dir])
			}
			checkObjects(t, objs, !strings.Contains(dir, "sidecar"))
		})
	}
}

func TestChartRenders(t *testing.T) {
	c := loadChart(t)
	want := map[string][]string{
		"defaults": {"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "PodDisruptionBudget",
			"Service", "Service", "Service", "StatefulSet"},
		"defaults+monitoring": {"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "PodDisruptionBudget",
			"PrometheusRule", "Service", "Service", "Service", "ServiceMonitor", "StatefulSet"},
		"sidecar":            {"ConfigMap", "Deployment"},
		"sidecar+monitoring": {"ConfigMap", "Deployment", "PodMonitor", "PrometheusRule"},
		"sidecar-cluster":    {"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "StatefulSet"},
		"defaults+apiTokens": {"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "PodDisruptionBudget",
			"Service", "Service", "Service", "StatefulSet"},
		"sidecar+apiTokens": {"ConfigMap", "Deployment"},
	}
	for _, r := range renders {
		t.Run(r.name, func(t *testing.T) {
			objs := renderObjects(t, c, r)
			if got := kinds(objs); !slices.Equal(got, want[r.name]) {
				t.Errorf("kinds = %v, want %v", got, want[r.name])
			}
			checkObjects(t, objs, !strings.HasPrefix(r.name, "sidecar"))
		})
	}
}

// The chart and the overlays describe the same deployment: the same kinds
// of objects, the same variables set, the same policies.
func TestChartMatchesOverlays(t *testing.T) {
	c := loadChart(t)
	pairs := []struct {
		overlay string
		render  render
	}{
		{"kustomize/overlays/gateway", renders[1]},
		{"kustomize/overlays/sidecar", renders[2]},
		{"kustomize/overlays/sidecar-cluster", renders[4]},
	}
	for _, p := range pairs {
		k, h := build(t, p.overlay), renderObjects(t, c, p.render)
		if !slices.Equal(kinds(k), kinds(h)) {
			t.Errorf("%s has %v; chart (%s) renders %v", p.overlay, kinds(k), p.render.name, kinds(h))
		}
		kc, _ := sequoiaContainer(ofKind[appsv1.Deployment](k)[0])
		hc, _ := sequoiaContainer(ofKind[appsv1.Deployment](h)[0])
		if kn, hn := envNames(kc), envNames(hc); p.render.valuesFile == "" && !slices.Equal(kn, hn) {
			t.Errorf("%s sets %v; chart sets %v", p.overlay, kn, hn)
		}
		for _, pr := range [][2]*corev1.Probe{{kc.ReadinessProbe, hc.ReadinessProbe}, {kc.LivenessProbe, hc.LivenessProbe}, {kc.StartupProbe, hc.StartupProbe}} {
			if !reflect.DeepEqual(pr[0], pr[1]) {
				t.Errorf("%s and the chart have different probes: %+v, %+v", p.overlay, pr[0], pr[1])
			}
		}
		// The same NATS: the same server arguments, probes and ports.
		ks, hs := ofKind[appsv1.StatefulSet](k), ofKind[appsv1.StatefulSet](h)
		if len(ks) != len(hs) {
			t.Errorf("%s has %d StatefulSets; the chart %d", p.overlay, len(ks), len(hs))
			continue
		}
		for i := range ks {
			kn, hn := ks[i].Spec.Template.Spec.Containers[0], hs[i].Spec.Template.Spec.Containers[0]
			if !slices.Equal(kn.Args, hn.Args) || !reflect.DeepEqual(kn.Ports, hn.Ports) || !reflect.DeepEqual(kn.StartupProbe, hn.StartupProbe) ||
				!reflect.DeepEqual(kn.ReadinessProbe, hn.ReadinessProbe) || kn.Image != hn.Image {
				t.Errorf("%s's NATS and the chart's differ:\n%s %v\n%s %v", p.overlay, kn.Image, kn.Args, hn.Image, hn.Args)
			}
		}
	}
	// The ConfigMaps ship sequoia's own policies: the repository's
	// policies/*.rego without the Rego tests, copied byte for byte.
	shipped, err := filepath.Glob("../policies/*.rego")
	if err != nil {
		t.Fatal(err)
	}
	shipped = slices.DeleteFunc(shipped, func(f string) bool { return strings.HasSuffix(f, "_test.rego") })
	if len(shipped) == 0 {
		t.Fatal("no policies in ../policies")
	}
	for _, dir := range []string{"kustomize/base/policies", chartDir + "/files/policies"} {
		copies, _ := filepath.Glob(dir + "/*.rego")
		if len(copies) != len(shipped) {
			t.Errorf("%s holds %d policies, policies/ %d: run deploy/sync-policies.sh", dir, len(copies), len(shipped))
		}
		for _, f := range shipped {
			c, err := os.ReadFile(filepath.Join(dir, filepath.Base(f)))
			if err != nil || !bytes.Equal(c, readFile(t, f)) {
				t.Errorf("%s/%s differs from %s (%v): run deploy/sync-policies.sh", dir, filepath.Base(f), f, err)
			}
		}
	}
	for _, o := range append(build(t, "kustomize/base"), renderObjects(t, c, renders[0])...) {
		if cm, ok := o.obj.(*corev1.ConfigMap); ok && len(cm.Data) != len(shipped) {
			t.Errorf("%s: %d policies, want the %d shipped", o, len(cm.Data), len(shipped))
		}
	}
}

// The chart refuses values that would deploy something broken.
func TestChartRefusesBadValues(t *testing.T) {
	c := loadChart(t)
	for _, tc := range []struct {
		name, set, want string
	}{
		{"mode", "mode: both", "mode must be gateway or sidecar"},
		{"managed variable", "config: {SEQUOIA_LISTEN: ':80'}", "set by the chart"},
		{"not a sequoia variable", "config: {MAX_CONCURRENCY: '3'}", "SEQUOIA_* variables only"},
		{"sidecar without app", "mode: sidecar", "sidecar mode needs your application's containers"},
		{"replicas without cluster mode", "nats: {enabled: false}", "without cluster mode"},
		{"state dir", "config: {SEQUOIA_STATE_DIR: /tmp}", "set by the chart"},
		{"NATS URL beside the chart's NATS", "config: {SEQUOIA_NATS_URL: 'nats://x:4222'}", "set by the chart to its NATS"},
		{"even NATS", "nats: {replicas: 2}", "odd number"},
		{"token file in config", "config: {SEQUOIA_API_TOKEN_FILE: /etc/tokens}", "apiTokens.existingSecret"},
		{"token key a path", "apiTokens: {existingSecret: s, key: a/b}", "apiTokens.key"},
		{"token key dot-dot", "apiTokens: {existingSecret: s, key: ..data}", "apiTokens.key"},
		{"token mount relative", "apiTokens: {existingSecret: s, mountPath: tokens}", "absolute path"},
		{"token mount on the policies", "apiTokens: {existingSecret: s, mountPath: /etc/sequoia/policies/}", "overlaps"},
		{"token mount above the state", "apiTokens: {existingSecret: s, mountPath: /var/lib}", "overlaps"},
	} {
		_, err := renderChart(c, render{name: tc.name, set: tc.set})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// checkObjects checks what a set of objects applied together must satisfy.
func checkObjects(t testing.TB, objs []object, gateway bool) {
	t.Helper()
	deps := ofKind[appsv1.Deployment](objs)
	if len(deps) != 1 {
		t.Fatalf("%d Deployments, want 1", len(deps))
	}
	d := deps[0]
	checkDeployment(t, d, objs, gateway)
	podLabels := labels.Set(d.Spec.Template.Labels)
	c, _ := sequoiaContainer(d)
	portNames := map[string]bool{}
	if c != nil {
		for _, p := range c.Ports {
			portNames[p.Name] = true
		}
	}
	// The workloads: sequoia's Deployment and the NATS StatefulSets. Each
	// Service and PodDisruptionBudget selects one of them.
	type workload struct {
		name     string
		pods     labels.Set
		ports    map[string]bool
		replicas int32
	}
	sequoiaReplicas := replicasOf(d.Spec.Replicas)
	for _, h := range ofKind[autoscalingv2.HorizontalPodAutoscaler](objs) {
		if h.Spec.MinReplicas != nil {
			sequoiaReplicas = max(sequoiaReplicas, *h.Spec.MinReplicas)
		}
	}
	workloads := []workload{{d.Name, podLabels, portNames, sequoiaReplicas}}
	for _, ss := range ofKind[appsv1.StatefulSet](objs) {
		ports := map[string]bool{}
		for _, c := range ss.Spec.Template.Spec.Containers {
			for _, p := range c.Ports {
				ports[p.Name] = true
			}
		}
		workloads = append(workloads, workload{ss.Name, labels.Set(ss.Spec.Template.Labels), ports, replicasOf(ss.Spec.Replicas)})
	}
	selected := func(what string, sel labels.Selector) *workload {
		var found []*workload
		for i := range workloads {
			if sel.Matches(workloads[i].pods) {
				found = append(found, &workloads[i])
			}
		}
		if len(found) != 1 {
			t.Errorf("%s selects %d workloads' pods, want 1", what, len(found))
			return nil
		}
		return found[0]
	}
	services := ofKind[corev1.Service](objs)
	for _, s := range services {
		if len(s.Spec.Selector) == 0 {
			t.Errorf("Service %s selects nothing", s.Name)
			continue
		}
		w := selected("Service "+s.Name, labels.SelectorFromSet(s.Spec.Selector))
		if w == nil {
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.Type != intstr.String || !w.ports[p.TargetPort.StrVal] {
				t.Errorf("Service %s port %s targets %v, not a named port of %s's containers", s.Name, p.Name, p.TargetPort.String(), w.name)
			}
		}
	}
	for _, pdb := range ofKind[policyv1.PodDisruptionBudget](objs) {
		sel, err := metaSelector(pdb.Spec.Selector)
		if err != nil {
			t.Errorf("PodDisruptionBudget %s: %v", pdb.Name, err)
			continue
		}
		if w := selected("PodDisruptionBudget "+pdb.Name, sel); w != nil && w.replicas < 2 {
			t.Errorf("PodDisruptionBudget %s over %s's %d replica(s) blocks every drain", pdb.Name, w.name, w.replicas)
		}
	}
	checkCluster(t, objs, d, sequoiaReplicas)
	for _, sm := range ofKind[monitoringv1.ServiceMonitor](objs) {
		sel, err := metaSelector(&sm.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		matched := 0
		for _, s := range services {
			if !sel.Matches(labels.Set(s.Labels)) {
				continue
			}
			matched++
			for _, ep := range sm.Spec.Endpoints {
				if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
					t.Errorf("ServiceMonitor %s scrapes port %q, which Service %s lacks", sm.Name, ep.Port, s.Name)
				}
				if ep.Path != "/metrics" || ep.Port != "admin" {
					t.Errorf("ServiceMonitor %s scrapes %s%s, want admin/metrics", sm.Name, ep.Port, ep.Path)
				}
			}
		}
		if matched != 1 {
			t.Errorf("ServiceMonitor %s selects %d Services, want the admin one", sm.Name, matched)
		}
	}
	for _, pm := range ofKind[monitoringv1.PodMonitor](objs) {
		if sel, err := metaSelector(&pm.Spec.Selector); err != nil || !sel.Matches(podLabels) {
			t.Errorf("PodMonitor %s does not select the pods (%v)", pm.Name, err)
		}
		for _, ep := range pm.Spec.PodMetricsEndpoints {
			if ep.Port == nil || !portNames[*ep.Port] || ep.Path != "/metrics" {
				t.Errorf("PodMonitor %s scrapes %v%s, not the admin port's /metrics", pm.Name, ep.Port, ep.Path)
			}
		}
	}
	for _, pr := range ofKind[monitoringv1.PrometheusRule](objs) {
		checkRules(t, pr.Name, pr.Spec.Groups)
	}
}

// checkDeployment checks the pod template around the sequoia container.
func checkDeployment(t testing.TB, d *appsv1.Deployment, objs []object, gateway bool) {
	t.Helper()
	if sel, err := metaSelector(d.Spec.Selector); err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("Deployment %s: selector does not match its pod template (%v)", d.Name, err)
	}
	c, sidecar := sequoiaContainer(d)
	if c == nil {
		t.Fatalf("Deployment %s: no sequoia container", d.Name)
	}
	if sidecar == gateway {
		t.Errorf("Deployment %s: sequoia is a native sidecar: %v; want %v", d.Name, sidecar, !gateway)
	}
	if sidecar && len(d.Spec.Template.Spec.Containers) == 0 {
		t.Errorf("Deployment %s: a sidecar with no application container", d.Name)
	}
	if !strings.Contains(c.Image, ":") || strings.HasSuffix(c.Image, ":latest") {
		t.Errorf("image %q: pin a tag", c.Image)
	}
	if !slices.Equal(c.Args, []string{"serve"}) {
		t.Errorf("args = %v, want [serve]", c.Args)
	}

	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && strings.HasPrefix(e.Name, config.Prefix) {
			t.Errorf("%s comes from valueFrom; the checks need literal values", e.Name)
		}
		env[e.Name] = e.Value
	}
	// sequoia checks that SEQUOIA_POLICY_DIR exists; here the mount's
	// place is taken by the policies the ConfigMaps carry.
	loadEnv := maps.Clone(env)
	if _, ok := loadEnv["SEQUOIA_POLICY_DIR"]; ok {
		dir, err := filepath.Abs("kustomize/base/policies")
		if err != nil {
			t.Fatalf("%v", err)
		}
		loadEnv["SEQUOIA_POLICY_DIR"] = dir
	}
	// Likewise for the token file the Secret volume holds.
	if f := checkAPITokens(t, d, c, env); f != "" {
		loadEnv["SEQUOIA_API_TOKEN_FILE"] = f
	}
	if _, err := config.LoadFrom(environ(loadEnv)); err != nil {
		t.Errorf("sequoia would refuse this configuration: %v", err)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}

	// The admin port must be reachable by the kubelet and Prometheus.
	host, port := splitAddr(t, "SEQUOIA_ADMIN_LISTEN", env)
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		t.Errorf("SEQUOIA_ADMIN_LISTEN=%s is loopback: probes and Prometheus cannot reach it", env["SEQUOIA_ADMIN_LISTEN"])
	}
	if ports["admin"] != port {
		t.Errorf("admin containerPort %d, SEQUOIA_ADMIN_LISTEN port %d", ports["admin"], port)
	}
	host, port = splitAddr(t, "SEQUOIA_LISTEN", env)
	if sidecar {
		if host != "127.0.0.1" {
			t.Errorf("sidecar: SEQUOIA_LISTEN=%s; only the application should reach it (127.0.0.1)", env["SEQUOIA_LISTEN"])
		}
	} else if host != "" || ports["http"] != port {
		t.Errorf("gateway: SEQUOIA_LISTEN=%s, http containerPort %d", env["SEQUOIA_LISTEN"], ports["http"])
	}

	checkProbe(t, "readiness", c.ReadinessProbe, "/readyz", ports["admin"])
	checkProbe(t, "liveness", c.LivenessProbe, "/healthz", ports["admin"])
	if c.StartupProbe != nil {
		checkProbe(t, "startup", c.StartupProbe, "/readyz", ports["admin"])
	}

	// Shutdown: the grace period covers the preStop wait, the drain and
	// the shutdown timeout.
	var preStop time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		h := c.Lifecycle.PreStop
		if h.Exec != nil {
			t.Errorf("preStop exec: the distroless image has no shell or sleep; use preStop.sleep")
		}
		if h.Sleep != nil {
			preStop = time.Duration(h.Sleep.Seconds) * time.Second
		}
	}
	drain, shutdown := duration(t, "SEQUOIA_DRAIN_DELAY", env), duration(t, "SEQUOIA_SHUTDOWN_TIMEOUT", env)
	grace := time.Duration(0)
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	} else {
		t.Errorf("terminationGracePeriodSeconds unset (Kubernetes' 30s)")
	}
	need := preStop + drain + shutdown + exitMargin
	switch {
	case gateway && (preStop == 0 || drain == 0):
		t.Errorf("gateway: preStop %v and drain %v: both needed so that endpoints forget the pod before its listener closes", preStop, drain)
	case gateway && grace != need:
		t.Errorf("terminationGracePeriodSeconds %v, want preStop %v + drain %v + shutdown %v + %v = %v", grace, preStop, drain, shutdown, exitMargin, need)
	case sidecar && (preStop != 0 || drain != 0):
		t.Errorf("sidecar: preStop %v, drain %v: a native sidecar stops after the application, nothing routes to it", preStop, drain)
	case sidecar && grace <= need:
		t.Errorf("sidecar: terminationGracePeriodSeconds %v leaves the application no time before sequoia's %v", grace, need)
	}

	// Security: non-root, read-only, nothing extra.
	ps := d.Spec.Template.Spec.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0 {
		t.Errorf("pod securityContext must run as a non-root user: %+v", ps)
	}
	for _, ct := range append(slices.Clone(d.Spec.Template.Spec.InitContainers), d.Spec.Template.Spec.Containers...) {
		for _, m := range ct.VolumeMounts {
			if !slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) {
				t.Errorf("container %s mounts %s at %s, which is not a volume of the pod", ct.Name, m.Name, m.MountPath)
			}
		}
		sc := ct.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("container %s: securityContext must be read-only, without privilege escalation, dropping ALL: %+v", ct.Name, sc)
		}
	}
	r := c.Resources
	if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
		t.Errorf("resources: want cpu and memory requests and a memory limit: %+v", r)
	}

	// Policies: a ConfigMap volume at SEQUOIA_POLICY_DIR, mounted whole (a
	// subPath mount never sees ConfigMap updates).
	dir := env["SEQUOIA_POLICY_DIR"]
	if dir == "" {
		t.Fatalf("SEQUOIA_POLICY_DIR unset")
	}
	i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir })
	if i < 0 {
		t.Fatalf("nothing mounted at SEQUOIA_POLICY_DIR=%s", dir)
	}
	m := c.VolumeMounts[i]
	if m.SubPath != "" || m.SubPathExpr != "" || !m.ReadOnly {
		t.Errorf("policy mount %+v: mount the whole ConfigMap read-only, no subPath (it would not see updates)", m)
	}
	j := slices.IndexFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
	if j < 0 || d.Spec.Template.Spec.Volumes[j].ConfigMap == nil {
		t.Fatalf("policy volume %s is not a ConfigMap", m.Name)
	}
	cmName := d.Spec.Template.Spec.Volumes[j].ConfigMap.Name
	cms := ofKind[corev1.ConfigMap](objs)
	k := slices.IndexFunc(cms, func(cm *corev1.ConfigMap) bool { return cm.Name == cmName })
	if k < 0 {
		t.Fatalf("policy ConfigMap %s is not among the objects", cmName)
	}
	if len(cms[k].Data) == 0 {
		t.Errorf("policy ConfigMap %s is empty", cmName)
	}
	for f, src := range cms[k].Data {
		if !strings.HasSuffix(f, ".rego") || !strings.Contains(src, "package sequoia") {
			t.Errorf("policy ConfigMap %s: %s is not a sequoia Rego policy", cmName, f)
		}
	}
}

func checkProbe(t testing.TB, name string, p *corev1.Probe, path string, port int32) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s probe: want an httpGet on %s", name, path)
		return
	}
	g := p.HTTPGet
	ok := g.Port.Type == intstr.String && g.Port.StrVal == "admin" || g.Port.Type == intstr.Int && g.Port.IntVal == port
	if g.Path != path || !ok {
		t.Errorf("%s probe: %s on port %s, want %s on the admin port", name, g.Path, g.Port.String(), path)
	}
}

// sequoiaContainer finds the sequoia container and says whether it is a
// native sidecar (an init container that restarts always).
func sequoiaContainer(d *appsv1.Deployment) (*corev1.Container, bool) {
	s := d.Spec.Template.Spec
	for i := range s.InitContainers {
		c := &s.InitContainers[i]
		if c.Name == "sequoia" {
			return c, c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		}
	}
	for i := range s.Containers {
		if s.Containers[i].Name == "sequoia" {
			return &s.Containers[i], false
		}
	}
	return nil, false
}

func envNames(c *corev1.Container) []string {
	var names []string
	for _, e := range c.Env {
		names = append(names, e.Name)
	}
	slices.Sort(names)
	return names
}

func environ(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// defaults are the variables' defaults, from the configuration structs.
func defaults() map[string]string {
	m := map[string]string{}
	for _, v := range config.Variables() {
		m[v.Name] = v.Default
	}
	return m
}

func value(name string, env map[string]string) string {
	if v, ok := env[name]; ok {
		return v
	}
	return defaults()[name]
}

func splitAddr(t testing.TB, name string, env map[string]string) (string, int32) {
	t.Helper()
	host, port, err := net.SplitHostPort(value(name, env))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	n, err := strconv.ParseInt(port, 10, 32)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return host, int32(n)
}

func duration(t testing.TB, name string, env map[string]string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(value(name, env))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}

// checkRules checks the shape of alert rules.
func checkRules(t testing.TB, source string, groups []monitoringv1.RuleGroup) {
	t.Helper()
	n := 0
	recorded := map[string]bool{}
	var uses []string
	for _, g := range groups {
		for _, r := range g.Rules {
			n++
			if r.Record != "" {
				// A recording rule: a level:metric:operations name, an
				// expression, nothing else.
				if r.Alert != "" || r.Expr.String() == "" || len(r.Labels) > 0 || len(r.Annotations) > 0 ||
					!regexp.MustCompile(`^sequoia:[a-z0-9_]+:[a-z0-9_]+$`).MatchString(r.Record) {
					t.Errorf("%s: recording rule %q needs a sequoia:metric:operations name and an expr, and no alert, labels or annotations", source, r.Record)
				}
				recorded[r.Record] = true
				continue
			}
			if r.Alert == "" || r.Expr.String() == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: rule %q needs alert, expr, a severity label, summary and description", source, r.Alert)
			}
			uses = append(uses, regexp.MustCompile(`\bsequoia:[a-z0-9_]+:[a-z0-9_]+`).FindAllString(r.Expr.String(), -1)...)
		}
	}
	if n == 0 {
		t.Errorf("%s: no rules", source)
	}
	for _, u := range uses {
		if !recorded[u] {
			t.Errorf("%s: an alert uses %s, which no rule records", source, u)
		}
	}
}

// rulesFile is Prometheus' rule-file format.
type rulesFile struct {
	Groups []monitoringv1.RuleGroup `json:"groups"`
}

// The plain rule file, the overlay's PrometheusRule and the chart's agree.
func TestRuleCopiesAgree(t *testing.T) {
	var plain rulesFile
	if err := decodeStrict(readFile(t, chartDir+"/files/sequoia-rules.yaml"), &plain); err != nil {
		t.Fatalf("%s/files/sequoia-rules.yaml: %v", chartDir, err)
	}
	checkRules(t, "sequoia-rules.yaml", plain.Groups)
	var copies []*monitoringv1.PrometheusRule
	copies = append(copies, ofKind[monitoringv1.PrometheusRule](build(t, "kustomize/overlays/gateway"))...)
	copies = append(copies, ofKind[monitoringv1.PrometheusRule](renderObjects(t, loadChart(t), renders[1]))...)
	if len(copies) != 2 {
		t.Fatalf("%d PrometheusRules from the overlay and the chart, want 2", len(copies))
	}
	for _, pr := range copies {
		if !reflect.DeepEqual(pr.Spec.Groups, plain.Groups) {
			a, _ := yaml.Marshal(pr.Spec.Groups)
			b, _ := yaml.Marshal(plain.Groups)
			t.Errorf("PrometheusRule %s differs from sequoia-rules.yaml:\n%s\nvs\n%s", pr.Name, a, b)
		}
	}
}

// policies.files replaces a shipped policy by name and adds new ones.
func TestChartPolicyFiles(t *testing.T) {
	c := loadChart(t)
	deny := "package sequoia\n\ndeny_tenants := {\"acme\": \"over its contract\"}\n"
	objs := renderObjects(t, c, render{name: "policy files", set: "policies:\n  files:\n    deny.rego: |\n" +
		indent(deny, "      ") + "    extra.rego: |\n      package sequoia\n"})
	cms := ofKind[corev1.ConfigMap](objs)
	if len(cms) != 1 {
		t.Fatalf("%d ConfigMaps, want 1", len(cms))
	}
	shipped, _ := filepath.Glob(chartDir + "/files/policies/*.rego")
	data := cms[0].Data
	if len(data) != len(shipped)+1 || data["deny.rego"] != deny || !strings.Contains(data["extra.rego"], "package sequoia") ||
		!strings.Contains(data["decision.rego"], "package sequoia\n") {
		t.Errorf("policy ConfigMap: %d files (want %d), deny.rego %q", len(data), len(shipped)+1, data["deny.rego"])
	}
}

func indent(s, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		b.WriteString(prefix + line)
	}
	return b.String()
}

// recorder is a testing.TB that records failures, for checking that the
// checks fail on broken manifests.
type recorder struct {
	testing.TB
	errs []string
}

type fatal struct{}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, a ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, a...))
}
func (r *recorder) Fatalf(format string, a ...any) {
	r.Errorf(format, a...)
	panic(fatal{})
}

// run runs check on r, stopping at the first Fatalf.
func (r *recorder) run(check func()) {
	defer func() {
		if v := recover(); v != nil {
			if _, ok := v.(fatal); !ok {
				panic(v)
			}
		}
	}()
	check()
}

// The checks catch what they are for: each mutation of the gateway
// overlay's Deployment must be reported.
func TestChecksCatchBrokenManifests(t *testing.T) {
	mutations := map[string]deploymentMutation{
		"admin on loopback": {func(d *appsv1.Deployment) { setEnv(d, "SEQUOIA_ADMIN_LISTEN", "127.0.0.1:9090") }, "loopback"},
		"grace too short": {func(d *appsv1.Deployment) {
			g := int64(30)
			d.Spec.Template.Spec.TerminationGracePeriodSeconds = &g
		}, "terminationGracePeriodSeconds"},
		"longer drain":   {func(d *appsv1.Deployment) { setEnv(d, "SEQUOIA_DRAIN_DELAY", "20s") }, "terminationGracePeriodSeconds"},
		"policy subPath": {func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].VolumeMounts[0].SubPath = "deny.rego" }, "subPath"},
		"writable root": {func(d *appsv1.Deployment) {
			f := false
			d.Spec.Template.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = &f
		}, "read-only"},
		"runs as root": {func(d *appsv1.Deployment) {
			z := int64(0)
			d.Spec.Template.Spec.SecurityContext.RunAsUser = &z
		}, "non-root"},
		"readiness on healthz": {func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Path = "/healthz"
		}, "readiness probe"},
		"preStop exec": {func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].Lifecycle.PreStop.Exec = &corev1.ExecAction{Command: []string{"sleep", "5"}}
		}, "distroless"},
		"no memory limit": {func(d *appsv1.Deployment) {
			delete(d.Spec.Template.Spec.Containers[0].Resources.Limits, corev1.ResourceMemory)
		}, "resources"},
		"bad config value": {func(d *appsv1.Deployment) { setEnv(d, "SEQUOIA_MAX_CONCURRENCY", "ten") }, "refuse"},
		"latest image": {func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].Image = "ghcr.io/sequoia-qos/sequoia:latest"
		}, "pin a tag"},
		"missing policy ConfigMap": {func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Volumes[0].ConfigMap.Name = "other"
		}, "not among the objects"},
	}
	checkMutations(t, "kustomize/overlays/gateway", mutations)
}

// deploymentMutation breaks a Deployment in a way the checks must report
// with an error mentioning want.
type deploymentMutation struct {
	mutate func(*appsv1.Deployment)
	want   string
}

// checkMutations builds the kustomization in dir once per mutation,
// applies it to the first Deployment and wants checkObjects to report it;
// the unmutated build must pass the same checks.
func checkMutations(t *testing.T, dir string, mutations map[string]deploymentMutation) {
	t.Helper()
	for name, m := range mutations {
		objs := build(t, dir)
		m.mutate(ofKind[appsv1.Deployment](objs)[0])
		r := &recorder{TB: t}
		r.run(func() { checkObjects(r, objs, true) })
		if !slices.ContainsFunc(r.errs, func(e string) bool { return strings.Contains(e, m.want) }) {
			t.Errorf("%s: no error mentioning %q; got %q", name, m.want, r.errs)
		}
	}
	r := &recorder{TB: t}
	r.run(func() { checkObjects(r, build(t, dir), true) })
	if len(r.errs) > 0 {
		t.Errorf("%s fails its own checks: %q", dir, r.errs)
	}
}

func setEnv(d *appsv1.Deployment, name, v string) {
	c := &d.Spec.Template.Spec.Containers[0]
	for i := range c.Env {
		if c.Env[i].Name == name {
			c.Env[i].Value = v
			return
		}
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: v})
}
