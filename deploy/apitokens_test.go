package deploy

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	ktypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"
)

// tokensComponent is the optional component that gives sequoia its API
// tokens from the Secret sequoia-api-tokens.
const tokensComponent = "kustomize/components/api-tokens"

// checkAPITokens checks how the sequoia container gets the bearer tokens
// of its DAG write API: SEQUOIA_API_TOKEN_FILE names a file of a Secret
// volume mounted whole and read-only into sequoia alone, readable by the
// container's (non-root) user, and no Secret is mounted into sequoia for
// anything else. It returns a token file to stand in for the mounted one
// when loading the configuration (which checks that the file exists), or
// "" when the variable is unset.
func checkAPITokens(t testing.TB, d *appsv1.Deployment, c *corev1.Container, env map[string]string) string {
	t.Helper()
	spec := d.Spec.Template.Spec
	volume := func(name string) *corev1.Volume {
		i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == name })
		if i < 0 {
			return nil
		}
		return &spec.Volumes[i]
	}
	file := env["SEQUOIA_API_TOKEN_FILE"]
	var tokenMount *corev1.VolumeMount
	if file != "" {
		dir := path.Dir(path.Clean(file))
		if !path.IsAbs(file) {
			t.Errorf("SEQUOIA_API_TOKEN_FILE=%s: not an absolute path", file)
		}
		i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return path.Clean(m.MountPath) == dir })
		if i < 0 {
			t.Errorf("SEQUOIA_API_TOKEN_FILE=%s: nothing mounted at %s", file, dir)
		} else {
			tokenMount = &c.VolumeMounts[i]
		}
	}
	for _, m := range c.VolumeMounts {
		if v := volume(m.Name); v != nil && v.Secret != nil && (tokenMount == nil || m.Name != tokenMount.Name) {
			t.Errorf("Secret %s mounted at %s, which SEQUOIA_API_TOKEN_FILE=%q does not name", v.Secret.SecretName, m.MountPath, file)
		}
	}
	if tokenMount == nil {
		return ""
	}
	m := *tokenMount
	if m.SubPath != "" || m.SubPathExpr != "" || !m.ReadOnly {
		t.Errorf("token mount %+v: mount the whole Secret read-only, no subPath (it would not see a rotated token)", m)
	}
	v := volume(m.Name)
	if v == nil || v.Secret == nil || v.Secret.SecretName == "" {
		t.Errorf("token volume %s is not a Secret", m.Name)
		return ""
	}
	s := v.Secret
	if s.Optional != nil && *s.Optional {
		t.Errorf("Secret %s is optional: sequoia refuses to start without SEQUOIA_API_TOKEN_FILE", s.SecretName)
	}
	for _, ct := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		if ct.Name != c.Name && slices.ContainsFunc(ct.VolumeMounts, func(o corev1.VolumeMount) bool { return o.Name == m.Name }) {
			t.Errorf("container %s mounts sequoia's API tokens (%s) too", ct.Name, m.Name)
		}
	}
	// Without items every key of the Secret is a file named after it.
	name := path.Base(path.Clean(file))
	mode := int32(corev1.SecretVolumeSourceDefaultMode)
	if s.DefaultMode != nil {
		mode = *s.DefaultMode
	}
	if len(s.Items) > 0 {
		i := slices.IndexFunc(s.Items, func(it corev1.KeyToPath) bool { return path.Clean(it.Path) == name })
		if i < 0 {
			t.Errorf("Secret volume %s: its items put no file at %s", m.Name, name)
		} else if s.Items[i].Mode != nil {
			mode = *s.Items[i].Mode
		}
	}
	ps := spec.SecurityContext
	if mode&0o004 == 0 && (mode&0o040 == 0 || ps == nil || ps.FSGroup == nil) {
		t.Errorf("token file mode %#o (fsGroup %v): sequoia's non-root user cannot read it", mode, ps)
	}
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, []byte("ci 0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatalf("%v", err)
	}
	return f
}

// tokenSource is where a Deployment's sequoia gets its API tokens from.
type tokenSource struct {
	file, secret, key string
}

// tokensOf reads the token file, and the Secret and key behind it, from a
// Deployment; the zero tokenSource when SEQUOIA_API_TOKEN_FILE is unset.
func tokensOf(t *testing.T, d *appsv1.Deployment) tokenSource {
	t.Helper()
	c, _ := sequoiaContainer(d)
	var ts tokenSource
	for _, e := range c.Env {
		if e.Name == "SEQUOIA_API_TOKEN_FILE" {
			ts.file = e.Value
		}
	}
	for _, m := range c.VolumeMounts {
		if ts.file == "" || path.Dir(ts.file) != path.Clean(m.MountPath) {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				ts.secret = v.Secret.SecretName
				for _, it := range v.Secret.Items {
					if it.Path == path.Base(ts.file) {
						ts.key = it.Key
					}
				}
			}
		}
	}
	return ts
}

// secretVolumes names the pod's Secret volumes.
func secretVolumes(d *appsv1.Deployment) []string {
	var names []string
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			names = append(names, v.Name)
		}
	}
	return names
}

// apiTokens.existingSecret mounts the Secret and points
// SEQUOIA_API_TOKEN_FILE at its key; without it nothing is mounted.
func TestChartAPITokens(t *testing.T) {
	c := loadChart(t)
	want := map[string]tokenSource{
		"defaults+apiTokens": {"/etc/sequoia/api-tokens/tokens", "sequoia-api-tokens", "tokens"},
		"sidecar+apiTokens":  {"/var/run/sequoia/tokens/api.tokens", "my-app-tokens", "api.tokens"},
	}
	on := 0
	for _, r := range renders {
		d := ofKind[appsv1.Deployment](renderObjects(t, c, r))[0]
		got := tokensOf(t, d)
		if got != want[r.name] {
			t.Errorf("%s: tokens %+v, want %+v", r.name, got, want[r.name])
		}
		c, _ := sequoiaContainer(d)
		var mounts []string
		for _, m := range c.VolumeMounts {
			mounts = append(mounts, m.Name)
		}
		if want[r.name] == (tokenSource{}) {
			if n := secretVolumes(d); len(n) > 0 || !slices.Equal(mounts, []string{"policies", "state"}) {
				t.Errorf("%s: apiTokens off, yet Secret volumes %v, mounts %v", r.name, n, mounts)
			}
			continue
		}
		on++
		if n := secretVolumes(d); len(n) != 1 {
			t.Errorf("%s: Secret volumes %v, want the tokens' only", r.name, n)
		}
	}
	if on != len(want) {
		t.Errorf("%d renders with apiTokens, want %d", on, len(want))
	}
	// The notes say whether DAG writes are possible.
	for set, note := range map[string]string{"": "DAG writes are refused", "apiTokens: {existingSecret: mine}": "the Secret mine (key tokens)"} {
		files, err := renderChart(c, render{set: set})
		if err != nil {
			t.Fatal(err)
		}
		if n := files["sequoia/templates/NOTES.txt"]; !strings.Contains(n, note) {
			t.Errorf("apiTokens %q: NOTES.txt lacks %q:\n%s", set, note, n)
		}
	}
}

// withComponent copies kustomize/ into a temporary directory, adds
// component (a directory under kustomize/) to the components of the
// kustomization in dir (one under kustomize/, created when new), and
// returns that kustomization's directory in the copy.
func withComponent(t *testing.T, dir, component string, resources ...string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "kustomize")
	if err := os.CopyFS(root, os.DirFS("kustomize")); err != nil {
		t.Fatal(err)
	}
	rel := func(p string) string {
		r, err := filepath.Rel("kustomize", p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	target := filepath.Join(root, rel(dir))
	file := filepath.Join(target, "kustomization.yaml")
	k := ktypes.Kustomization{TypeMeta: ktypes.TypeMeta{APIVersion: ktypes.KustomizationVersion, Kind: ktypes.KustomizationKind}}
	if b, err := os.ReadFile(file); err == nil {
		if err := decodeStrict(b, &k); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	} else if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	k.Resources = append(k.Resources, resources...)
	c, err := filepath.Rel(target, filepath.Join(root, rel(component)))
	if err != nil {
		t.Fatal(err)
	}
	k.Components = append(k.Components, c)
	b, err := yaml.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return target
}

// The api-tokens component, added to an overlay as docs/deployment.md
// says, mounts the Secret sequoia-api-tokens where the chart does and
// passes every check; it adds no object (the Secret is the user's).
func TestAPITokensComponent(t *testing.T) {
	want := tokenSource{"/etc/sequoia/api-tokens/tokens", "sequoia-api-tokens", "tokens"}
	for _, tc := range []struct {
		name      string
		plain     string // the overlay without the component
		add       string // the kustomization the component is added to
		build     string // the kustomization built
		resources []string
	}{
		{"gateway", "overlays/gateway", "overlays/gateway", "overlays/gateway", nil},
		{"sidecar", "overlays/sidecar", "overlays/sidecar", "overlays/sidecar", nil},
		// sidecar-cluster builds on the sidecar overlay: the component goes there.
		{"sidecar-cluster", "overlays/sidecar-cluster", "overlays/sidecar", "overlays/sidecar-cluster", nil},
		// An overlay of the user's own on top of the gateway.
		{"own overlay", "overlays/gateway", "overlays/mine", "overlays/mine", []string{"../gateway"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			added := withComponent(t, "kustomize/"+tc.add, tokensComponent, tc.resources...)
			dir := filepath.Join(filepath.Dir(filepath.Dir(added)), tc.build)
			objs := build(t, dir)
			if got, plain := kinds(objs), kinds(build(t, "kustomize/"+tc.plain)); !slices.Equal(got, plain) {
				t.Errorf("kinds = %v; without the component %v", got, plain)
			}
			checkObjects(t, objs, !strings.Contains(tc.plain, "sidecar"))
			d := ofKind[appsv1.Deployment](objs)[0]
			if got := tokensOf(t, d); got != want {
				t.Errorf("tokens %+v, want %+v", got, want)
			}
			if n := secretVolumes(d); len(n) != 1 {
				t.Errorf("Secret volumes %v, want the tokens' only", n)
			}
		})
	}
	// The chart with apiTokens.existingSecret=sequoia-api-tokens and the
	// gateway overlay with the component set the same variables and mount
	// the Secret alike.
	k := ofKind[appsv1.Deployment](build(t, withComponent(t, "kustomize/overlays/gateway", tokensComponent)))[0]
	h := ofKind[appsv1.Deployment](renderObjects(t, loadChart(t), renders[5]))[0]
	kc, _ := sequoiaContainer(k)
	hc, _ := sequoiaContainer(h)
	if kn, hn := envNames(kc), envNames(hc); !slices.Equal(kn, hn) {
		t.Errorf("the overlay with the component sets %v; the chart with apiTokens %v", kn, hn)
	}
	kv := k.Spec.Template.Spec.Volumes[slices.IndexFunc(k.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Secret != nil })]
	hv := h.Spec.Template.Spec.Volumes[slices.IndexFunc(h.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Secret != nil })]
	if a, b := mustYAML(t, kv), mustYAML(t, hv); a != b {
		t.Errorf("the component's Secret volume and the chart's differ:\n%s\nvs\n%s", a, b)
	}
	// Added where sequoia is already an init container (to sidecar-cluster
	// itself), the component fails the build rather than patching the
	// wrong container.
	if _, err := kustomize(withComponent(t, "kustomize/overlays/sidecar-cluster", tokensComponent)); err == nil || !strings.Contains(err.Error(), "containers/0/name") {
		t.Errorf("the component on sidecar-cluster: err = %v, want the build refused", err)
	}
}

func mustYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The token checks catch what they are for: each mutation of the gateway
// overlay with the component must be reported.
func TestChecksCatchBrokenTokenMounts(t *testing.T) {
	dir := withComponent(t, "kustomize/overlays/gateway", tokensComponent)
	tokenVolume := func(d *appsv1.Deployment) *corev1.Volume {
		vs := d.Spec.Template.Spec.Volumes
		return &vs[slices.IndexFunc(vs, func(v corev1.Volume) bool { return v.Secret != nil })]
	}
	tokenMount := func(d *appsv1.Deployment) *corev1.VolumeMount {
		ms := d.Spec.Template.Spec.Containers[0].VolumeMounts
		return &ms[slices.IndexFunc(ms, func(m corev1.VolumeMount) bool { return m.Name == tokenVolume(d).Name })]
	}
	mutations := map[string]deploymentMutation{
		"writable mount":   {func(d *appsv1.Deployment) { tokenMount(d).ReadOnly = false }, "read-only"},
		"subPath mount":    {func(d *appsv1.Deployment) { tokenMount(d).SubPath = "tokens" }, "subPath"},
		"file elsewhere":   {func(d *appsv1.Deployment) { setEnv(d, "SEQUOIA_API_TOKEN_FILE", "/etc/tokens/tokens") }, "nothing mounted"},
		"variable dropped": {func(d *appsv1.Deployment) { setEnv(d, "SEQUOIA_API_TOKEN_FILE", "") }, "does not name"},
		"other file name":  {func(d *appsv1.Deployment) { tokenVolume(d).Secret.Items[0].Path = "api" }, "no file at tokens"},
		"owner only": {func(d *appsv1.Deployment) {
			m := int32(0o400)
			tokenVolume(d).Secret.DefaultMode = &m
		}, "cannot read"},
		"no fsGroup": {func(d *appsv1.Deployment) { d.Spec.Template.Spec.SecurityContext.FSGroup = nil }, "cannot read"},
		"not a Secret": {func(d *appsv1.Deployment) {
			tokenVolume(d).VolumeSource = corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
		}, "not a Secret"},
		"relative":        {func(d *appsv1.Deployment) { setEnv(d, "SEQUOIA_API_TOKEN_FILE", "tokens") }, "absolute"},
		"optional Secret": {func(d *appsv1.Deployment) { tokenVolume(d).Secret.Optional = new(true) }, "optional"},
		"shared with another container": {func(d *appsv1.Deployment) {
			s := &d.Spec.Template.Spec
			s.Containers = append(s.Containers, corev1.Container{Name: "other", VolumeMounts: []corev1.VolumeMount{*tokenMount(d)}})
		}, "mounts sequoia's API tokens"},
	}
	checkMutations(t, dir, mutations)
}
