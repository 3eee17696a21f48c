package deploy

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func replicasOf(r *int32) int32 {
	if r == nil {
		return 1 // Kubernetes' default
	}
	return *r
}

// checkCluster checks cluster mode around the sequoia Deployment d, whose
// replicas (the HorizontalPodAutoscaler's minimum included) are replicas:
// more than one share a budget through NATS, never each their own; the
// autoscaler scales d; the embedded server's state directory is a writable
// volume; and a NATS StatefulSet among the objects is a JetStream cluster
// that SEQUOIA_NATS_URL reaches.
func checkCluster(t testing.TB, objs []object, d *appsv1.Deployment, replicas int32) {
	t.Helper()
	c, _ := sequoiaContainer(d)
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	hpas := ofKind[autoscalingv2.HorizontalPodAutoscaler](objs)
	for _, h := range hpas {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.Name != d.Name || ref.APIVersion != "apps/v1" {
			t.Errorf("HorizontalPodAutoscaler %s: scaleTargetRef %s %s/%s, want the Deployment %s", h.Name, ref.APIVersion, ref.Kind, ref.Name, d.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas || len(h.Spec.Metrics) == 0 {
			t.Errorf("HorizontalPodAutoscaler %s: want minReplicas >= 2, maxReplicas >= minReplicas and a metric", h.Name)
		}
	}
	natsURL := env["SEQUOIA_NATS_URL"]
	if replicas > 1 && natsURL == "" {
		t.Errorf("%d replicas (or an autoscaler) without SEQUOIA_NATS_URL: each would use the whole SEQUOIA_MAX_CONCURRENCY; run them in cluster mode", replicas)
	}
	if len(hpas) > 0 && natsURL == "" {
		t.Errorf("an autoscaler without SEQUOIA_NATS_URL multiplies the platform budget by the replicas")
	}

	// The embedded server writes under SEQUOIA_STATE_DIR; the root file
	// system is read-only, so it must be a writable volume.
	dir := env["SEQUOIA_STATE_DIR"]
	i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir })
	if dir == "" || i < 0 || c.VolumeMounts[i].ReadOnly {
		t.Errorf("SEQUOIA_STATE_DIR=%q is not a writable volume of the sequoia container", dir)
	} else {
		vols := d.Spec.Template.Spec.Volumes
		j := slices.IndexFunc(vols, func(v corev1.Volume) bool { return v.Name == c.VolumeMounts[i].Name })
		if j < 0 || vols[j].EmptyDir == nil && vols[j].PersistentVolumeClaim == nil {
			t.Errorf("SEQUOIA_STATE_DIR=%s: volume %s is not an emptyDir or a claim", dir, c.VolumeMounts[i].Name)
		}
	}

	sets := ofKind[appsv1.StatefulSet](objs)
	if natsURL == "" {
		if len(sets) > 0 {
			t.Errorf("a NATS StatefulSet, but sequoia has no SEQUOIA_NATS_URL to use it")
		}
		return
	}
	if len(sets) == 0 {
		return // an external NATS
	}
	if len(sets) != 1 {
		t.Fatalf("%d StatefulSets, want one NATS", len(sets))
	}
	checkNATS(t, objs, sets[0], natsURL)
	if n := replicasOf(sets[0].Spec.Replicas); env["SEQUOIA_NATS_REPLICAS"] != fmt.Sprint(min(3, n)) {
		t.Errorf("SEQUOIA_NATS_REPLICAS=%q with a NATS of %d nodes: want %d, or losing one node loses the leases, chains and Events it holds",
			env["SEQUOIA_NATS_REPLICAS"], n, min(3, n))
	}
}

// natsArgs reads "--name=value" arguments; a flag without a value maps to
// "".
func natsArgs(args []string) map[string]string {
	m := map[string]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		m[k] = v
	}
	return m
}

// checkNATS checks a NATS StatefulSet: a JetStream cluster of an odd number
// (three or more) of nodes that route to every node by name, each named
// after its pod, storing on a claim; a headless Service that publishes the
// nodes before they are ready; a disruption budget that keeps a majority;
// and a SEQUOIA_NATS_URL that names that Service's client port.
func checkNATS(t testing.TB, objs []object, ss *appsv1.StatefulSet, natsURL string) {
	t.Helper()
	n := replicasOf(ss.Spec.Replicas)
	if n < 3 || n%2 == 0 {
		t.Errorf("NATS StatefulSet %s: %d nodes; JetStream needs an odd number, 3 or more, to keep a majority", ss.Name, n)
	}
	if ss.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("NATS StatefulSet %s: pods start one by one; JetStream needs a majority up to elect: podManagementPolicy Parallel", ss.Name)
	}
	ps := ss.Spec.Template.Spec
	if len(ps.Containers) != 1 {
		t.Fatalf("NATS StatefulSet %s: %d containers, want 1", ss.Name, len(ps.Containers))
	}
	c := ps.Containers[0]
	if !strings.Contains(c.Image, ":") || strings.HasSuffix(c.Image, ":latest") {
		t.Errorf("NATS image %q: pin a tag", c.Image)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	args := natsArgs(c.Args)
	if _, ok := args["jetstream"]; !ok {
		t.Errorf("NATS: no --jetstream")
	}
	if args["cluster_name"] == "" {
		t.Errorf("NATS: no --cluster_name")
	}
	if want := fmt.Sprintf("nats://0.0.0.0:%d", ports["cluster"]); args["cluster"] != want {
		t.Errorf("NATS: --cluster=%s, want %s (the cluster port)", args["cluster"], want)
	}
	if args["name"] != "$(POD_NAME)" || !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
	}) {
		t.Errorf("NATS: --name=%s; each node must be named after its pod (--name=$(POD_NAME), POD_NAME from metadata.name)", args["name"])
	}
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("nats://%s-%d.%s:%d", ss.Name, i, ss.Spec.ServiceName, ports["cluster"]))
	}
	got := strings.Split(args["routes"], ",")
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("NATS: --routes=%s, want every node: %s", args["routes"], strings.Join(want, ","))
	}
	store := args["store_dir"]
	i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == store })
	if store == "" || i < 0 || !slices.ContainsFunc(ss.Spec.VolumeClaimTemplates, func(p corev1.PersistentVolumeClaim) bool {
		return p.Name == c.VolumeMounts[i].Name
	}) {
		t.Errorf("NATS: --store_dir=%q is not a volume claimed per node", store)
	}
	if c.StartupProbe == nil || c.ReadinessProbe == nil || c.LivenessProbe == nil {
		t.Errorf("NATS: want startup, readiness and liveness probes")
	}
	for _, p := range []*corev1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
		if p != nil && (p.HTTPGet == nil || !strings.HasPrefix(p.HTTPGet.Path, "/healthz") || p.HTTPGet.Port.StrVal != "monitor") {
			t.Errorf("NATS probe %+v: want /healthz on the monitor port", p)
		}
	}
	if h := natsArgs(c.Args)["http_port"]; h != fmt.Sprint(ports["monitor"]) {
		t.Errorf("NATS: --http_port=%s, monitor port %d", h, ports["monitor"])
	}
	sc, psc := c.SecurityContext, ps.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || sc == nil || sc.ReadOnlyRootFilesystem == nil ||
		!*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("NATS: run as non-root, read-only, without privilege escalation")
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("NATS: want a memory request and limit")
	}

	// The Service the routes name.
	var svc *corev1.Service
	for _, s := range ofKind[corev1.Service](objs) {
		if s.Name == ss.Spec.ServiceName {
			svc = s
		}
	}
	if svc == nil {
		t.Fatalf("NATS: serviceName %s is not among the objects", ss.Spec.ServiceName)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
		t.Errorf("NATS Service %s: want headless (clusterIP None) and publishNotReadyAddresses, so that nodes find each other before they are ready", svc.Name)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(ss.Spec.Template.Labels)) {
		t.Errorf("NATS Service %s does not select the NATS pods", svc.Name)
	}
	var clientPort int32
	for _, p := range svc.Spec.Ports {
		if p.TargetPort.StrVal == "client" {
			clientPort = p.Port
		}
	}
	for _, u := range strings.Split(natsURL, ",") {
		p, err := url.Parse(strings.TrimSpace(u))
		if err != nil {
			t.Errorf("SEQUOIA_NATS_URL %q: %v", u, err)
			continue
		}
		host, port, _ := net.SplitHostPort(p.Host)
		if first, _, _ := strings.Cut(host, "."); first != svc.Name || port != fmt.Sprint(clientPort) {
			t.Errorf("SEQUOIA_NATS_URL=%s: want the NATS Service %s on its client port %d", natsURL, svc.Name, clientPort)
		}
	}
	var budget *policyv1.PodDisruptionBudget
	for _, pdb := range ofKind[policyv1.PodDisruptionBudget](objs) {
		if sel, err := metaSelector(pdb.Spec.Selector); err == nil && sel.Matches(labels.Set(ss.Spec.Template.Labels)) {
			budget = pdb
		}
	}
	if budget == nil || budget.Spec.MaxUnavailable == nil || budget.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("NATS: want a PodDisruptionBudget with maxUnavailable 1, so that a drain keeps JetStream's majority")
	}
}

// The cluster checks catch what they are for: each mutation of the
// gateway overlay's objects must be reported.
func TestClusterChecksCatchBrokenManifests(t *testing.T) {
	sts := func(objs []object) *appsv1.StatefulSet { return ofKind[appsv1.StatefulSet](objs)[0] }
	nats := func(objs []object) *corev1.Container { return &sts(objs).Spec.Template.Spec.Containers[0] }
	setArg := func(c *corev1.Container, name, v string) {
		for i, a := range c.Args {
			if strings.HasPrefix(a, "--"+name+"=") {
				c.Args[i] = "--" + name + "=" + v
			}
		}
	}
	mutations := map[string]struct {
		mutate func([]object)
		want   string
	}{
		"replicas without NATS": {func(o []object) {
			c, _ := sequoiaContainer(ofKind[appsv1.Deployment](o)[0])
			c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "SEQUOIA_NATS_URL" })
		}, "without SEQUOIA_NATS_URL"},
		"NATS URL elsewhere": {func(o []object) {
			setEnv(ofKind[appsv1.Deployment](o)[0], "SEQUOIA_NATS_URL", "nats://other:4222")
		}, "SEQUOIA_NATS_URL=nats://other"},
		"a route missing": {func(o []object) {
			setArg(nats(o), "routes", "nats://sequoia-nats-0.sequoia-nats:6222,nats://sequoia-nats-1.sequoia-nats:6222")
		}, "--routes"},
		"two nodes": {func(o []object) {
			two := int32(2)
			sts(o).Spec.Replicas = &two
		}, "odd number"},
		"no JetStream": {func(o []object) {
			c := nats(o)
			c.Args = slices.DeleteFunc(c.Args, func(a string) bool { return a == "--jetstream" })
		}, "--jetstream"},
		"store not claimed": {func(o []object) { setArg(nats(o), "store_dir", "/tmp") }, "--store_dir"},
		"routes before ready": {func(o []object) {
			for _, s := range ofKind[corev1.Service](o) {
				s.Spec.PublishNotReadyAddresses = false
			}
		}, "publishNotReadyAddresses"},
		"autoscaler elsewhere": {func(o []object) {
			ofKind[autoscalingv2.HorizontalPodAutoscaler](o)[0].Spec.ScaleTargetRef.Name = "other"
		}, "scaleTargetRef"},
		"one copy on three nodes": {func(o []object) {
			c, _ := sequoiaContainer(ofKind[appsv1.Deployment](o)[0])
			c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "SEQUOIA_NATS_REPLICAS" })
		}, "SEQUOIA_NATS_REPLICAS"},
		"state dir unmounted": {func(o []object) {
			c, _ := sequoiaContainer(ofKind[appsv1.Deployment](o)[0])
			c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/var/lib/sequoia" })
		}, "SEQUOIA_STATE_DIR"},
	}
	for name, m := range mutations {
		objs := build(t, "kustomize/overlays/gateway")
		m.mutate(objs)
		r := &recorder{TB: t}
		r.run(func() { checkObjects(r, objs, true) })
		if !slices.ContainsFunc(r.errs, func(e string) bool { return strings.Contains(e, m.want) }) {
			t.Errorf("%s: no error mentioning %q; got %q", name, m.want, r.errs)
		}
	}
	// The sidecar overlay scaled out without cluster mode is caught too.
	objs := build(t, "kustomize/overlays/sidecar")
	ten := int32(10)
	ofKind[appsv1.Deployment](objs)[0].Spec.Replicas = &ten
	r := &recorder{TB: t}
	r.run(func() { checkObjects(r, objs, false) })
	if !slices.ContainsFunc(r.errs, func(e string) bool { return strings.Contains(e, "without SEQUOIA_NATS_URL") }) {
		t.Errorf("10 sidecars with a budget each: no error; got %q", r.errs)
	}
}
