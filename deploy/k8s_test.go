package deploy

// Tests of the Kubernetes manifests in deploy/k8s (`kubectl apply -k
// deploy/k8s`), by parsing: no cluster is needed. Every manifest is decoded
// strictly into the Kubernetes API types (k8s.io/api), with the decoder the
// API server uses (k8s.io/apimachinery's JSON/YAML serializer in strict
// mode), so an unknown, mis-cased or duplicate field fails. The settings are
// then checked against `fallback run` itself: its flags and FALLBACK_*
// variables (the flag set run parses, cliconfig.NewRunFlags), its settings checks
// and connection options, its HTTP endpoints (internal/observe), and the
// sizing figure of docs/capacity.md.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	kyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/internal/clients"
	"github.com/fallbackd/fallback/internal/observe"
)

const (
	k8sDir            = "k8s"
	kustomizationFile = "kustomization.yaml"
	capacityDoc       = "../docs/capacity.md"
	// sizingAnnotation on the StatefulSet: the flows per second per pod
	// that its CPU request is sized for.
	sizingAnnotation = "fallback/sized-for-flows-per-second"
	// afterShutdownTimeout is what `fallback run` may still spend after
	// --shutdown-timeout: stopping its HTTP server (at most 5 s,
	// internal/observe) and flushing buffered spans (at most 5 s,
	// docs/observability.md).
	afterShutdownTimeout = 10 * time.Second
)

// kustomization is the part of kustomization.yaml the tests read. It is
// decoded with unknown fields refused, like the manifests: a field added to
// kustomization.yaml must be added here (and checked by
// TestK8sKustomizeBuild when kubectl is installed).
type kustomization struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Namespace  string   `yaml:"namespace"`
	Resources  []string `yaml:"resources"`
	Images     []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
		Digest  string `yaml:"digest"`
	} `yaml:"images"`
}

// k8sManifests are the objects of the kustomization's resources.
type k8sManifests struct {
	kust        kustomization
	objects     map[string][]runtime.Object // by file
	statefulSet *appsv1.StatefulSet
	services    []*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	pdbs        []*policyv1.PodDisruptionBudget
}

// k8sDecoder decodes YAML into the typed objects of apps/v1, v1 and
// policy/v1, strictly: an unknown or duplicate field is an error (the
// API server's fieldValidation=Strict), and field names are matched with
// their case, as Kubernetes does (encoding/json would accept "Replicas").
func k8sDecoder(t *testing.T) runtime.Decoder {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{appsv1.AddToScheme, corev1.AddToScheme, policyv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme,
		kjson.SerializerOptions{Yaml: true, Strict: true})
}

// decodeK8s decodes every document of a YAML stream (documents holding
// only comments are skipped).
func decodeK8s(dec runtime.Decoder, body []byte) ([]runtime.Object, error) {
	r := kyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(body)))
	var out []runtime.Object
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if j, err := sigsyaml.YAMLToJSON(doc); err == nil && strings.TrimSpace(string(j)) == "null" {
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		out = append(out, obj)
	}
}

func readKustomization(t *testing.T) kustomization {
	t.Helper()
	path := filepath.Join(k8sDir, kustomizationFile)
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	dec := yaml.NewDecoder(bytes.NewReader(body))
	dec.KnownFields(true)
	if err := dec.Decode(&k); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Fatalf("%s: apiVersion %q kind %q, want kustomize.config.k8s.io/v1beta1 Kustomization", path, k.APIVersion, k.Kind)
	}
	return k
}

// k8sManifestFiles are the YAML files of deploy/k8s other than the
// kustomization.
func k8sManifestFiles(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(k8sDir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") || e.Name() == kustomizationFile {
			continue
		}
		files = append(files, e.Name())
	}
	return files
}

func loadK8s(t *testing.T) *k8sManifests {
	t.Helper()
	m := &k8sManifests{
		kust:       readKustomization(t),
		objects:    map[string][]runtime.Object{},
		configMaps: map[string]*corev1.ConfigMap{},
		secrets:    map[string]*corev1.Secret{},
	}
	dec := k8sDecoder(t)
	for _, file := range m.kust.Resources {
		path := filepath.Join(k8sDir, file)
		body, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s lists %s: %v", kustomizationFile, file, err)
		}
		objs, err := decodeK8s(dec, body)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(objs) == 0 {
			t.Fatalf("%s: no object", path)
		}
		m.objects[file] = objs
		for _, obj := range objs {
			switch o := obj.(type) {
			case *appsv1.StatefulSet:
				if m.statefulSet != nil {
					t.Fatalf("%s: a second StatefulSet %s", path, o.Name)
				}
				m.statefulSet = o
			case *corev1.Service:
				m.services = append(m.services, o)
			case *corev1.ConfigMap:
				m.configMaps[o.Name] = o
			case *corev1.Secret:
				m.secrets[o.Name] = o
			case *policyv1.PodDisruptionBudget:
				m.pdbs = append(m.pdbs, o)
			default:
				t.Fatalf("%s: %T is not checked by %s: add it to the tests", path, obj, "deploy/k8s_test.go")
			}
		}
	}
	if m.statefulSet == nil {
		t.Fatalf("no StatefulSet in %s's resources", kustomizationFile)
	}
	return m
}

// processorContainer is the StatefulSet's one container, which runs
// `fallback run`: the image's entrypoint is /fallback (TestDockerfileBuild),
// so the arguments are ["run"] and the command is the image's.
func processorContainer(t *testing.T, m *k8sManifests) *corev1.Container {
	t.Helper()
	cs := m.statefulSet.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("StatefulSet %s has %d containers, want the processor alone", m.statefulSet.Name, len(cs))
	}
	c := &cs[0]
	if len(c.Command) != 0 || !slices.Equal(c.Args, []string{"run"}) {
		t.Fatalf("container %s runs command %q args %q, want the image's entrypoint with args [run]", c.Name, c.Command, c.Args)
	}
	return c
}

// podName is the name of the StatefulSet's first pod.
func podName(m *k8sManifests) string { return m.statefulSet.Name + "-0" }

// podVar is one environment variable of the processor's container as the
// kubelet sets it.
type podVar struct {
	value     string
	from      string // "ConfigMap fallback-config", "env", ...
	fieldPath string // a downward API field (valueFrom.fieldRef)
}

// podEnv resolves the container's environment as the kubelet does: envFrom
// first, then env. A variable defined twice is an error (the later
// definition would silently win).
func podEnv(t *testing.T, m *k8sManifests, c *corev1.Container) map[string]podVar {
	t.Helper()
	env := map[string]podVar{}
	set := func(name string, v podVar) {
		if old, ok := env[name]; ok {
			t.Errorf("container %s: %s is set by %s and again by %s", c.Name, name, old.from, v.from)
		}
		env[name] = v
	}
	for _, src := range c.EnvFrom {
		switch {
		case src.ConfigMapRef != nil:
			cm, ok := m.configMaps[src.ConfigMapRef.Name]
			if !ok {
				t.Fatalf("container %s: envFrom ConfigMap %s is not in the manifests", c.Name, src.ConfigMapRef.Name)
			}
			for _, k := range slices.Sorted(maps.Keys(cm.Data)) {
				set(src.Prefix+k, podVar{value: cm.Data[k], from: "ConfigMap " + cm.Name})
			}
			if len(cm.BinaryData) > 0 {
				t.Errorf("ConfigMap %s: binaryData does not become environment variables", cm.Name)
			}
		case src.SecretRef != nil:
			s, ok := m.secrets[src.SecretRef.Name]
			if !ok {
				t.Fatalf("container %s: envFrom Secret %s is not in the manifests", c.Name, src.SecretRef.Name)
			}
			for k, v := range secretData(s) {
				set(src.Prefix+k, podVar{value: v, from: "Secret " + s.Name})
			}
		}
	}
	for _, e := range c.Env {
		v := podVar{value: e.Value, from: "env"}
		if e.ValueFrom != nil {
			switch ref := e.ValueFrom; {
			case ref.FieldRef != nil:
				v.fieldPath = ref.FieldRef.FieldPath
				v.from = "fieldRef " + ref.FieldRef.FieldPath
				switch ref.FieldRef.FieldPath {
				case "metadata.name":
					v.value = podName(m)
				case "metadata.namespace":
					v.value = "default"
				default:
					v.value = "(" + ref.FieldRef.FieldPath + ")"
				}
			case ref.ConfigMapKeyRef != nil:
				cm, ok := m.configMaps[ref.ConfigMapKeyRef.Name]
				if !ok {
					t.Fatalf("env %s: ConfigMap %s is not in the manifests", e.Name, ref.ConfigMapKeyRef.Name)
				}
				val, ok := cm.Data[ref.ConfigMapKeyRef.Key]
				if !ok {
					t.Errorf("env %s: ConfigMap %s has no key %s", e.Name, cm.Name, ref.ConfigMapKeyRef.Key)
				}
				v.value, v.from = val, "ConfigMap "+cm.Name+" key "+ref.ConfigMapKeyRef.Key
			case ref.SecretKeyRef != nil:
				s, ok := m.secrets[ref.SecretKeyRef.Name]
				if !ok {
					t.Fatalf("env %s: Secret %s is not in the manifests", e.Name, ref.SecretKeyRef.Name)
				}
				val, ok := secretData(s)[ref.SecretKeyRef.Key]
				if !ok {
					t.Errorf("env %s: Secret %s has no key %s", e.Name, s.Name, ref.SecretKeyRef.Key)
				}
				v.value, v.from = val, "Secret "+s.Name+" key "+ref.SecretKeyRef.Key
			default:
				t.Fatalf("env %s: valueFrom %+v is not handled by the tests", e.Name, ref)
			}
		}
		set(e.Name, v)
	}
	return env
}

// secretData is a Secret's content as the API server stores it: data,
// with stringData written over it.
func secretData(s *corev1.Secret) map[string]string {
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	maps.Copy(out, s.StringData)
	return out
}

var usageEnv = regexp.MustCompile(`\(env (FALLBACK_[A-Z0-9_]+)\)$`)

// runSettings is `fallback run`'s flag set, the one run parses
// (cliconfig.NewRunFlags), read from the given environment the way run
// reads it, with the FALLBACK_* variables it reads. The process's own
// FALLBACK_* variables are hidden for the duration of the test.
type runSettings struct {
	fs   *flag.FlagSet
	c    *cliconfig.Run
	vars map[string]string // FALLBACK_* variable: its flag
}

// hideFallbackEnv unsets the process's FALLBACK_* variables until the test
// ends, so that only the settings a test gives reach the flag set.
func hideFallbackEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "FALLBACK_") {
			t.Setenv(k, v) // restored after the test
			os.Unsetenv(k)
		}
	}
}

// flagEnv is the variable of flag name: clients.EnvOf, and
// cliconfig.ConfigEnv for --config.
func flagEnv(name string) string {
	if name == cliconfig.ConfigFlag {
		return cliconfig.ConfigEnv
	}
	return clients.EnvOf("--" + name)
}

// runVariables finds the flags of `fallback run` that read a FALLBACK_*
// variable by doing it: every flag's variable is set to a value the flag
// accepts, and the flags that come out of NewRunFlags set are the ones
// that took theirs. So a flag counts by what run does, not by what its
// usage text or a list says; the variables are unset again on return.
func runVariables(t *testing.T) map[string]string {
	t.Helper()
	hideFallbackEnv(t)
	probe, _ := cliconfig.NewRunFlags()
	probe.SetOutput(io.Discard)
	accepted := map[string]string{} // flag: a value it takes
	probe.VisitAll(func(f *flag.Flag) {
		// A non-empty value: an empty variable counts as unset for some
		// kinds of flag.
		for _, v := range []string{f.DefValue, "1", "true", "1s", "x"} {
			if v != "" && probe.Set(f.Name, v) == nil {
				accepted[f.Name] = v
				return
			}
		}
		t.Fatalf("--%s accepts none of the test's values; add one it takes to runVariables", f.Name)
	})
	for name, v := range accepted {
		t.Setenv(flagEnv(name), v)
	}
	fs, _ := cliconfig.NewRunFlags()
	vars := map[string]string{}
	fs.Visit(func(f *flag.Flag) { vars[flagEnv(f.Name)] = f.Name })
	for name := range accepted {
		os.Unsetenv(flagEnv(name))
	}
	return vars
}

// newRunSettings builds run's flag set from env (on top of the defaults)
// and checks every flag's usage text against the variable it reads: a flag
// that reads FALLBACK_X ends its usage with (env FALLBACK_X), the name
// clients.EnvOf gives it (cliconfig.ConfigEnv for --config), and a flag
// that reads none names none.
func newRunSettings(t *testing.T, env map[string]string) runSettings {
	t.Helper()
	vars := runVariables(t)
	for k, v := range env {
		t.Setenv(k, v)
	}
	fs, r := cliconfig.NewRunFlags()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	fs.VisitAll(func(f *flag.Flag) {
		v := flagEnv(f.Name)
		reads := vars[v] == f.Name
		m := usageEnv.FindStringSubmatch(f.Usage)
		switch {
		case reads && (m == nil || m[1] != v):
			t.Errorf("--%s reads %s, but its usage text does not end with (env %s): %q", f.Name, v, v, f.Usage)
		case !reads && m != nil:
			t.Errorf("--%s's usage text names %s, but fallback run does not read it: %q", f.Name, m[1], f.Usage)
		}
	})
	return runSettings{fs: fs, c: r, vars: vars}
}

func (s runSettings) get(t *testing.T, name string) any {
	t.Helper()
	f := s.fs.Lookup(name)
	if f == nil {
		t.Fatalf("fallback run has no flag --%s", name)
	}
	return f.Value.(flag.Getter).Get()
}

// TestK8sKustomizationListsEveryFile: kustomization.yaml lists every
// manifest of deploy/k8s once, and only files that are there.
func TestK8sKustomizationListsEveryFile(t *testing.T) {
	k := readKustomization(t)
	files := k8sManifestFiles(t)
	seen := map[string]bool{}
	for _, r := range k.Resources {
		if seen[r] {
			t.Errorf("%s lists %s twice", kustomizationFile, r)
		}
		seen[r] = true
		if !slices.Contains(files, r) {
			t.Errorf("%s lists %s, which is not a manifest file of %s", kustomizationFile, r, k8sDir)
		}
	}
	for _, f := range files {
		if !seen[f] {
			t.Errorf("%s/%s is not listed in %s's resources", k8sDir, f, kustomizationFile)
		}
	}
	if len(files) < 6 {
		t.Errorf("%s holds %d manifests %v; want the StatefulSet, its Services, ConfigMap, Secret and PodDisruptionBudget", k8sDir, len(files), files)
	}
}

// TestK8sManifestsStrict: every manifest decodes strictly into its API
// type, names and labels are valid, and the expected objects are there.
// The decoder's strictness itself is checked on bad documents.
func TestK8sManifestsStrict(t *testing.T) {
	m := loadK8s(t)
	kinds := map[string]int{}
	for file, objs := range m.objects {
		for _, obj := range objs {
			meta, err := metaOf(obj)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			kind := obj.GetObjectKind().GroupVersionKind().Kind
			kinds[kind]++
			for _, e := range validation.IsDNS1123Subdomain(meta.GetName()) {
				t.Errorf("%s: %s name %q: %s", file, kind, meta.GetName(), e)
			}
			if meta.GetNamespace() != "" {
				t.Errorf("%s: %s %s sets namespace %q; leave it to kubectl -n or the kustomization", file, kind, meta.GetName(), meta.GetNamespace())
			}
			for k, v := range meta.GetLabels() {
				for _, e := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
					t.Errorf("%s: %s %s label %s=%s: %s", file, kind, meta.GetName(), k, v, e)
				}
			}
			for k := range meta.GetAnnotations() {
				for _, e := range validation.IsQualifiedName(k) {
					t.Errorf("%s: %s %s annotation %s: %s", file, kind, meta.GetName(), k, e)
				}
			}
		}
	}
	want := map[string]int{"StatefulSet": 1, "Service": 2, "ConfigMap": 1, "Secret": 1, "PodDisruptionBudget": 1}
	if !maps.Equal(kinds, want) {
		t.Errorf("objects by kind %v, want %v", kinds, want)
	}
	for _, p := range processorContainer(t, m).Ports {
		for _, e := range validation.IsValidPortName(p.Name) {
			t.Errorf("container port %q: %s", p.Name, e)
		}
	}

	dec := k8sDecoder(t)
	for name, doc := range map[string]string{
		"unknown field":     "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec: {replica: 3}\n",
		"mis-cased field":   "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec: {Replicas: 3}\n",
		"duplicate field":   "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec: {replicas: 3, replicas: 4}\n",
		"wrong type":        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec: {replicas: three}\n",
		"unknown version":   "apiVersion: apps/v1beta1\nkind: StatefulSet\nmetadata: {name: x}\n",
		"nested unknown":    "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 80, targetPrt: http}]}\n",
		"bad quantity":      "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, resources: {requests: {cpu: lots}}}]}\n",
		"pdb unknown field": "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: x}\nspec: {maxUnavailabel: 1}\n",
	} {
		if _, err := decodeK8s(dec, []byte(doc)); err == nil {
			t.Errorf("the strict decoder accepts a document with a %s:\n%s", name, doc)
		}
	}
}

func metaOf(obj runtime.Object) (metav1.Object, error) {
	o, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no object metadata", obj)
	}
	return o, nil
}

// allowedOtherEnv are the variables other than FALLBACK_* the processor's
// container may set: the Go runtime's, and the OTel SDK's (OTEL_*,
// docs/observability.md).
var allowedOtherEnv = []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG", "GOTRACEBACK"}

// TestK8sEnvIsRunFlags: every FALLBACK_* variable the pod gets, from the
// container's env or a ConfigMap key, is one that `fallback run` reads
// (runVariables: found on its flag set); the ConfigMap holds nothing else;
// and the variables run reads are those docs/configuration.md documents.
func TestK8sEnvIsRunFlags(t *testing.T) {
	m := loadK8s(t)
	c := processorContainer(t, m)
	vars := newRunSettings(t, nil).vars
	if doc := documentedEnv(t); !maps.Equal(doc, setOf(slices.Collect(maps.Keys(vars)))) {
		t.Errorf("fallback run reads %v (cliconfig.NewRunFlags), but %s documents %v",
			slices.Sorted(maps.Keys(vars)), configDoc, slices.Sorted(maps.Keys(doc)))
	}
	for _, want := range []string{"FALLBACK_BROKERS", "FALLBACK_INSTANCE_ID", "FALLBACK_HTTP_ADDR", "FALLBACK_SHUTDOWN_TIMEOUT"} {
		if _, ok := vars[want]; !ok {
			t.Fatalf("the variables fallback run reads lack %s: %v", want, slices.Sorted(maps.Keys(vars)))
		}
	}

	for name, cm := range m.configMaps {
		for k := range cm.Data {
			if _, ok := vars[k]; !ok {
				t.Errorf("ConfigMap %s: key %s is not the variable of any flag of fallback run", name, k)
			}
		}
	}
	for name, v := range podEnv(t, m, c) {
		switch {
		case strings.HasPrefix(name, "FALLBACK_"):
			if _, ok := vars[name]; !ok {
				t.Errorf("container %s: %s (%s) is not the variable of any flag of fallback run", c.Name, name, v.from)
			}
		case strings.HasPrefix(name, "OTEL_"), slices.Contains(allowedOtherEnv, name):
		default:
			t.Errorf("container %s: %s (%s) is neither a FALLBACK_* setting nor a Go runtime or OTEL_* variable", c.Name, name, v.from)
		}
	}
}

func setOf(xs []string) map[string]bool {
	out := map[string]bool{}
	for _, x := range xs {
		out[x] = true
	}
	return out
}

// mountSecrets writes the Secret volumes the container mounts into a
// temporary directory, at their mount paths under it, and returns a
// function that maps a path in the container to the file written for it.
func mountSecrets(t *testing.T, m *k8sManifests, c *corev1.Container) func(string) string {
	t.Helper()
	root := t.TempDir()
	var mounted []string
	for _, vm := range c.VolumeMounts {
		vol := podVolume(m, vm.Name)
		if vol == nil || vol.Secret == nil {
			continue
		}
		s, ok := m.secrets[vol.Secret.SecretName]
		if !ok {
			t.Fatalf("volume %s: Secret %s is not in the manifests", vol.Name, vol.Secret.SecretName)
		}
		dir := filepath.Join(root, vm.MountPath)
		for key, path := range secretFiles(s, vol.Secret) {
			file := filepath.Join(dir, path)
			if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, []byte(secretData(s)[key]), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		mounted = append(mounted, filepath.Clean(vm.MountPath)+"/")
	}
	return func(p string) string {
		for _, dir := range mounted {
			if strings.HasPrefix(p, dir) {
				return filepath.Join(root, p)
			}
		}
		return p
	}
}

// secretFiles maps a Secret volume's keys to the paths of their files under
// the mount: every key, or only the items listed.
func secretFiles(s *corev1.Secret, src *corev1.SecretVolumeSource) map[string]string {
	out := map[string]string{}
	if len(src.Items) == 0 {
		for k := range secretData(s) {
			out[k] = k
		}
		return out
	}
	for _, it := range src.Items {
		out[it.Key] = it.Path
	}
	return out
}

func podVolume(m *k8sManifests, name string) *corev1.Volume {
	for i, v := range m.statefulSet.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return &m.statefulSet.Spec.Template.Spec.Volumes[i]
		}
	}
	return nil
}

// TestK8sSettingsAccepted: `fallback run` accepts the pod's settings as it
// would at start: each variable parses with its flag's parser, the settings
// checks pass (cliconfig.Common.Check), and the Kafka and Redis options are
// built, with the password files read from the mounted Secret (a password
// file without a SASL mechanism, an empty one, or a password both in the
// Redis URL and in a file fail here). Nothing connects.
func TestK8sSettingsAccepted(t *testing.T) {
	m := loadK8s(t)
	c := processorContainer(t, m)
	local := mountSecrets(t, m, c)
	env := map[string]string{}
	for name, v := range podEnv(t, m, c) {
		if strings.HasPrefix(name, "FALLBACK_") {
			env[name] = local(v.value)
		}
	}
	for _, need := range []string{"FALLBACK_BROKERS", "FALLBACK_REDIS_URL"} {
		if env[need] == "" {
			t.Errorf("%s is not set: fallback run needs it", need)
		}
	}
	s := newRunSettings(t, env)
	if err := cliconfig.ApplyConfig(s.fs); err != nil {
		t.Fatal(err)
	}
	if err := s.c.Check(); err != nil {
		t.Fatalf("fallback run refuses the pod's settings: %v", err)
	}
	if _, err := s.c.BrokerList(); err != nil {
		t.Error(err)
	}
	if _, err := s.c.KafkaOpts(); err != nil {
		t.Errorf("Kafka settings: %v", err)
	}
	rc, err := s.c.RedisClient()
	if err != nil {
		t.Errorf("Redis settings: %v", err)
	} else {
		rc.Close()
	}
	if _, err := s.c.Clock(); err != nil {
		t.Error(err)
	}
	if d := s.get(t, "shutdown-timeout").(time.Duration); d <= 0 {
		t.Errorf("FALLBACK_SHUTDOWN_TIMEOUT %s: fallback run wants it above 0", d)
	}
}

// httpPort is the container port named http, where FALLBACK_HTTP_ADDR
// listens.
func httpPort(t *testing.T, c *corev1.Container) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == "http" {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				t.Errorf("port http: protocol %s, want TCP", p.Protocol)
			}
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named http", c.Name)
	return 0
}

// resolvePort is the container port a probe's or a Service's port names.
func resolvePort(c *corev1.Container, p intstr.IntOrString) (int32, bool) {
	if p.Type == intstr.Int {
		return p.IntVal, true
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// TestK8sProbes: liveness on /healthz, readiness on /readyz (and the
// startup probe, if any, on /healthz), over HTTP on the port named http,
// which is the port of FALLBACK_HTTP_ADDR. The paths are checked on the
// processor's own handler (internal/observe): the liveness path answers
// 200 even when Kafka or Redis is down (so a pod is not restarted for
// their outage), the readiness path 503 then; and the readiness probe
// waits longer than /readyz's own timeout.
func TestK8sProbes(t *testing.T) {
	m := loadK8s(t)
	c := processorContainer(t, m)
	port := httpPort(t, c)
	env := podEnv(t, m, c)
	addr, ok := env["FALLBACK_HTTP_ADDR"]
	if !ok {
		t.Fatalf("FALLBACK_HTTP_ADDR is not set; set it to :%d, the port named http", port)
	}
	host, p, err := net.SplitHostPort(addr.value)
	if err != nil {
		t.Fatalf("FALLBACK_HTTP_ADDR %q: %v", addr.value, err)
	}
	if p != strconv.Itoa(int(port)) {
		t.Errorf("FALLBACK_HTTP_ADDR %q listens on port %s, but the port named http is %d", addr.value, p, port)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("FALLBACK_HTTP_ADDR %q listens on %s only; the kubelet probes the pod's IP", addr.value, host)
	}

	// The processor's handler, with readiness failing and then passing.
	var readyErr error
	var readyBudget time.Duration
	metricsBody := "# the metrics handler\n"
	h := observe.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, metricsBody)
	}), func(ctx context.Context) error {
		if d, ok := ctx.Deadline(); ok {
			readyBudget = time.Until(d)
		}
		return readyErr
	})
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}

	for _, pr := range []struct {
		kind      string
		probe     *corev1.Probe
		path      string
		required  bool
		readiness bool
	}{
		{"liveness", c.LivenessProbe, "/healthz", true, false},
		{"readiness", c.ReadinessProbe, "/readyz", true, true},
		{"startup", c.StartupProbe, "/healthz", false, false},
	} {
		if pr.probe == nil {
			if pr.required {
				t.Errorf("container %s has no %s probe", c.Name, pr.kind)
			}
			continue
		}
		g := pr.probe.HTTPGet
		if g == nil {
			t.Errorf("%s probe is not an HTTP GET", pr.kind)
			continue
		}
		if g.Path != pr.path {
			t.Errorf("%s probe: path %q, want %s", pr.kind, g.Path, pr.path)
		}
		if g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP {
			t.Errorf("%s probe: scheme %s; the endpoints are plain HTTP", pr.kind, g.Scheme)
		}
		if got, ok := resolvePort(c, g.Port); !ok || got != port {
			t.Errorf("%s probe: port %s, want the port named http (%d)", pr.kind, g.Port.String(), port)
		}
		readyErr = errors.New("kafka not reachable")
		code, _ := get(g.Path)
		switch {
		case pr.readiness && code != http.StatusServiceUnavailable:
			t.Errorf("%s probe: %s answers %d while not ready, want 503", pr.kind, g.Path, code)
		case !pr.readiness && code != http.StatusOK:
			t.Errorf("%s probe: %s answers %d while Kafka is down, want 200: the pod would be restarted for an outage", pr.kind, g.Path, code)
		}
		readyErr = nil
		if code, _ := get(g.Path); code != http.StatusOK {
			t.Errorf("%s probe: %s answers %d when ready, want 200", pr.kind, g.Path, code)
		}
		if pr.readiness {
			timeout := time.Duration(max(pr.probe.TimeoutSeconds, 1)) * time.Second
			if readyBudget <= 0 || timeout <= readyBudget {
				t.Errorf("readiness probe: timeout %s, /readyz may take %s (its own timeout): want more", timeout, readyBudget)
			}
		}
	}

	// The scrape path of the annotated Service is the metrics handler.
	for _, svc := range m.services {
		if svc.Annotations["prometheus.io/scrape"] != "true" {
			continue
		}
		path := cmp.Or(svc.Annotations["prometheus.io/path"], "/metrics")
		if code, body := get(path); code != http.StatusOK || body != metricsBody {
			t.Errorf("Service %s: prometheus.io/path %s is not the processor's /metrics (got %d %q)", svc.Name, path, code, body)
		}
	}
}

// TestK8sInstanceID: static group membership from the pod's name, which a
// StatefulSet keeps across restarts and rescheduling.
func TestK8sInstanceID(t *testing.T) {
	m := loadK8s(t)
	c := processorContainer(t, m)
	v, ok := podEnv(t, m, c)["FALLBACK_INSTANCE_ID"]
	if !ok {
		t.Fatal("FALLBACK_INSTANCE_ID is not set: the pods would be dynamic group members")
	}
	if v.fieldPath != "metadata.name" {
		t.Errorf("FALLBACK_INSTANCE_ID comes from %s, want the downward API's metadata.name (unique per pod, stable across restarts)", v.from)
	}
	s := newRunSettings(t, map[string]string{"FALLBACK_INSTANCE_ID": v.value})
	if got := s.get(t, "instance-id"); got != podName(m) {
		t.Errorf("--instance-id is %q for pod %s", got, podName(m))
	}
}

// TestK8sShutdownGrace: the kubelet waits longer after SIGTERM than
// `fallback run` may take to stop: --shutdown-timeout, then its HTTP
// server's shutdown and the trace flush (afterShutdownTimeout).
func TestK8sShutdownGrace(t *testing.T) {
	m := loadK8s(t)
	c := processorContainer(t, m)
	env := podEnv(t, m, c)
	v, ok := env["FALLBACK_SHUTDOWN_TIMEOUT"]
	if !ok {
		t.Fatal("FALLBACK_SHUTDOWN_TIMEOUT is not set: set it next to terminationGracePeriodSeconds")
	}
	s := newRunSettings(t, map[string]string{"FALLBACK_SHUTDOWN_TIMEOUT": v.value})
	if err := s.c.Check(); err != nil {
		t.Fatal(err)
	}
	timeout := s.get(t, "shutdown-timeout").(time.Duration)
	if timeout <= 0 {
		t.Fatalf("FALLBACK_SHUTDOWN_TIMEOUT %q: %s", v.value, timeout)
	}
	spec := m.statefulSet.Spec.Template.Spec
	if spec.TerminationGracePeriodSeconds == nil {
		t.Fatalf("terminationGracePeriodSeconds is not set (Kubernetes's default is 30 s); want more than %s + %s", timeout, afterShutdownTimeout)
	}
	grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	if grace <= timeout+afterShutdownTimeout {
		t.Errorf("terminationGracePeriodSeconds %s, want more than FALLBACK_SHUTDOWN_TIMEOUT %s + %s (HTTP shutdown and trace flush)",
			grace, timeout, afterShutdownTimeout)
	}
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		t.Errorf("container %s has a preStop hook: its time comes out of the grace period", c.Name)
	}
}

// selects reports whether a label selector selects a pod with these labels;
// an empty selector (every pod of the namespace) does not count.
func selects(t *testing.T, what string, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		t.Errorf("%s: empty selector", what)
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return false
	}
	return s.Matches(labels.Set(podLabels))
}

// TestK8sPodDisruptionBudget: a policy/v1 PDB with maxUnavailable 1 that
// selects the StatefulSet's pods, whose selector in turn matches its pod
// template.
func TestK8sPodDisruptionBudget(t *testing.T) {
	m := loadK8s(t)
	sts := m.statefulSet
	podLabels := sts.Spec.Template.Labels
	if !selects(t, "StatefulSet "+sts.Name, sts.Spec.Selector, podLabels) {
		t.Fatalf("StatefulSet %s: selector %v does not match its pod template's labels %v", sts.Name, sts.Spec.Selector, podLabels)
	}
	if len(m.pdbs) != 1 {
		t.Fatalf("%d PodDisruptionBudgets, want 1", len(m.pdbs))
	}
	pdb := m.pdbs[0]
	if pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != intstr.FromInt32(1) {
		t.Errorf("PodDisruptionBudget %s: maxUnavailable %v, want 1", pdb.Name, pdb.Spec.MaxUnavailable)
	}
	if pdb.Spec.MinAvailable != nil {
		t.Errorf("PodDisruptionBudget %s sets minAvailable too", pdb.Name)
	}
	if !selects(t, "PodDisruptionBudget "+pdb.Name, pdb.Spec.Selector, podLabels) {
		t.Errorf("PodDisruptionBudget %s: selector %v does not select the StatefulSet's pods (labels %v)", pdb.Name, pdb.Spec.Selector, podLabels)
	}
	if replicas := sts.Spec.Replicas; replicas != nil && *replicas < 2 {
		t.Errorf("StatefulSet %s: %d replica(s): a PodDisruptionBudget of maxUnavailable 1 would let a drain stop them all", sts.Name, *replicas)
	}
}

// TestK8sServices: the StatefulSet's governing Service is headless; the
// metrics Service carries Prometheus's scrape annotations for the port
// named http, /metrics; every Service selects the pods and targets a port
// they have.
func TestK8sServices(t *testing.T) {
	m := loadK8s(t)
	sts := m.statefulSet
	c := processorContainer(t, m)
	port := httpPort(t, c)
	podLabels := sts.Spec.Template.Labels
	headless, scraped := false, false
	for _, svc := range m.services {
		if !selects(t, "Service "+svc.Name, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, podLabels) {
			t.Errorf("Service %s: selector %v does not select the StatefulSet's pods %v", svc.Name, svc.Spec.Selector, podLabels)
		}
		if len(svc.Spec.Ports) == 0 {
			t.Errorf("Service %s has no port", svc.Name)
		}
		targets := map[int32]bool{}
		for _, p := range svc.Spec.Ports {
			tp := p.TargetPort
			if tp.Type == intstr.Int && tp.IntVal == 0 {
				tp = intstr.FromInt32(p.Port) // unset: the port itself
			}
			got, ok := resolvePort(c, tp)
			if !ok {
				t.Errorf("Service %s port %s: targetPort %s names no container port", svc.Name, p.Name, tp.String())
				continue
			}
			targets[got] = true
		}
		if svc.Name == sts.Spec.ServiceName {
			headless = true
			if svc.Spec.ClusterIP != corev1.ClusterIPNone {
				t.Errorf("Service %s governs the StatefulSet but is not headless (clusterIP %q)", svc.Name, svc.Spec.ClusterIP)
			}
		}
		if svc.Annotations["prometheus.io/scrape"] != "true" {
			continue
		}
		scraped = true
		if a := svc.Annotations["prometheus.io/port"]; a != strconv.Itoa(int(port)) {
			t.Errorf("Service %s: prometheus.io/port %q, want %d (the port named http)", svc.Name, a, port)
		}
		if !targets[port] {
			t.Errorf("Service %s: no port targets the port named http (%d)", svc.Name, port)
		}
		if path := cmp.Or(svc.Annotations["prometheus.io/path"], "/metrics"); path != "/metrics" {
			t.Errorf("Service %s: prometheus.io/path %q, want /metrics", svc.Name, path)
		}
		if scheme := cmp.Or(svc.Annotations["prometheus.io/scheme"], "http"); scheme != "http" {
			t.Errorf("Service %s: prometheus.io/scheme %q, want http", svc.Name, scheme)
		}
	}
	if !headless {
		t.Errorf("no Service named %q (the StatefulSet's serviceName)", sts.Spec.ServiceName)
	}
	if !scraped {
		t.Error("no Service has prometheus.io/scrape: \"true\"")
	}
}

// secretFileVar: the variables that name a file holding a secret or what
// goes with it (password files, TLS CAs, client certificates and keys).
var secretFileVar = regexp.MustCompile(`^FALLBACK_[A-Z0-9_]+_(PASSWORD_FILE|TLS_CA|TLS_CERT|TLS_KEY)$`)

// TestK8sSecretsAsFiles: the ConfigMap and the container's plain values
// hold no password (nor does the Redis URL); each password file variable
// (and TLS file variable, if set) names a file of a Secret the pod mounts
// read-only, not readable by others, with a non-empty value; at least one
// password comes from such a file; and every key of the Secret is read.
func TestK8sSecretsAsFiles(t *testing.T) {
	m := loadK8s(t)
	c := processorContainer(t, m)
	env := podEnv(t, m, c)
	vars := newRunSettings(t, nil).vars

	for name, v := range env {
		secretish := strings.Contains(name, "PASSWORD") && !strings.HasSuffix(name, "_FILE")
		if secretish && !strings.HasPrefix(v.from, "Secret ") {
			t.Errorf("%s is set from %s; a password belongs in the Secret (better: a *_PASSWORD_FILE)", name, v.from)
		}
	}
	if v, ok := env["FALLBACK_REDIS_URL"]; ok {
		u, err := url.Parse(v.value)
		if err != nil {
			t.Fatalf("FALLBACK_REDIS_URL: %v", err)
		}
		if _, has := u.User.Password(); has || u.Query().Has("password") {
			t.Errorf("FALLBACK_REDIS_URL (%s) holds a password; use FALLBACK_REDIS_PASSWORD_FILE", v.from)
		}
	}

	used := map[string]map[string]bool{} // Secret: keys named by a file variable
	passwordFiles := 0
	for name := range vars {
		if !secretFileVar.MatchString(name) {
			continue
		}
		v, ok := env[name]
		if !ok {
			continue
		}
		if strings.HasSuffix(name, "_PASSWORD_FILE") {
			passwordFiles++
		}
		path := filepath.Clean(v.value)
		found := false
		for _, vm := range c.VolumeMounts {
			rel, err := filepath.Rel(filepath.Clean(vm.MountPath), path)
			if err != nil || strings.HasPrefix(rel, "..") {
				continue
			}
			vol := podVolume(m, vm.Name)
			if vol == nil || vol.Secret == nil {
				t.Errorf("%s=%s is on volume %s, which is not a Secret", name, path, vm.Name)
				continue
			}
			found = true
			if !vm.ReadOnly {
				t.Errorf("volume mount %s at %s is not readOnly", vm.Name, vm.MountPath)
			}
			if mode := vol.Secret.DefaultMode; mode == nil || *mode&0o007 != 0 {
				got := "unset (0644)"
				if mode != nil {
					got = fmt.Sprintf("%#o", *mode)
				}
				t.Errorf("Secret volume %s: defaultMode %s lets every user read the passwords; want 0440 or 0400", vol.Name, got)
			}
			s, ok := m.secrets[vol.Secret.SecretName]
			if !ok {
				t.Errorf("volume %s: Secret %s is not in the manifests", vol.Name, vol.Secret.SecretName)
				continue
			}
			key := ""
			for k, p := range secretFiles(s, vol.Secret) {
				if filepath.Clean(p) == rel {
					key = k
				}
			}
			if key == "" {
				t.Errorf("%s=%s: Secret %s mounted at %s has no such file", name, path, s.Name, vm.MountPath)
				continue
			}
			if strings.TrimRight(secretData(s)[key], "\r\n") == "" {
				t.Errorf("Secret %s: key %s (%s) is empty; fallback run refuses an empty file", s.Name, key, name)
			}
			if used[s.Name] == nil {
				used[s.Name] = map[string]bool{}
			}
			used[s.Name][key] = true
		}
		if !found {
			t.Errorf("%s=%s is on no volume the container mounts", name, path)
		}
	}
	if passwordFiles == 0 {
		t.Error("no *_PASSWORD_FILE variable is set: the credentials are not read from the Secret")
	}
	for name, s := range m.secrets {
		if s.Type != "" && s.Type != corev1.SecretTypeOpaque {
			t.Errorf("Secret %s: type %s, want Opaque", name, s.Type)
		}
		for k := range secretData(s) {
			if !used[name][k] {
				t.Errorf("Secret %s: key %s is read by no FALLBACK_*_PASSWORD_FILE or *_TLS_* variable", name, k)
			}
		}
	}
}

// capacityFigure is docs/capacity.md's processor figure: cores per 1,000
// flows/s.
var capacityFigure = regexp.MustCompile(`about\s+\*\*([0-9.]+)\s+cores\s+per\s+1,000\s+flows/s\*\*`)

// goMemLimit parses GOMEMLIMIT (a byte count with an optional B, KiB, MiB,
// GiB or TiB suffix).
func goMemLimit(s string) (int64, error) {
	m := regexp.MustCompile(`^([0-9]+)(B|KiB|MiB|GiB|TiB)?$`).FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("GOMEMLIMIT %q is not a byte count (such as 450MiB)", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	shift := map[string]uint{"": 0, "B": 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40}[m[2]]
	return n << shift, err
}

// TestK8sResources: the CPU request is sized from docs/capacity.md's
// figure for the rate the StatefulSet's annotation names; limits are at
// least the requests; GOMEMLIMIT sits under the memory limit; and there are
// no more replicas than partitions (a pod without partitions is never
// ready, which would stall a rolling update).
func TestK8sResources(t *testing.T) {
	m := loadK8s(t)
	c := processorContainer(t, m)
	body, err := os.ReadFile(capacityDoc)
	if err != nil {
		t.Fatal(err)
	}
	fig := capacityFigure.FindSubmatch(body)
	if fig == nil {
		t.Fatalf("%s: no \"about **N cores per 1,000 flows/s**\" figure", capacityDoc)
	}
	coresPer1000, _ := strconv.ParseFloat(string(fig[1]), 64)
	rate, err := strconv.ParseFloat(m.statefulSet.Annotations[sizingAnnotation], 64)
	if err != nil || rate <= 0 {
		t.Fatalf("StatefulSet annotation %s %q: want the flows/s per pod the requests are sized for", sizingAnnotation, m.statefulSet.Annotations[sizingAnnotation])
	}
	need := rate / 1000 * coresPer1000

	req, lim := c.Resources.Requests, c.Resources.Limits
	cpu, ok := req[corev1.ResourceCPU]
	if !ok {
		t.Fatal("no CPU request")
	}
	if got := cpu.AsApproximateFloat64(); got < need || got > need*1.5 {
		t.Errorf("CPU request %s for %g flows/s: %s says %g cores per 1,000 flows/s, so %.3g cores (up to 1.5 times that)",
			cpu.String(), rate, capacityDoc, coresPer1000, need)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		rq, okR := req[r]
		l, okL := lim[r]
		if !okR || !okL {
			t.Errorf("%s: request and limit both wanted (request %v, limit %v)", r, okR, okL)
			continue
		}
		if l.Cmp(rq) < 0 {
			t.Errorf("%s limit %s is below the request %s", r, l.String(), rq.String())
		}
	}
	env := podEnv(t, m, c)
	if v, ok := env["GOMEMLIMIT"]; ok {
		n, err := goMemLimit(v.value)
		if err != nil {
			t.Error(err)
		} else if memLim, ok := lim[corev1.ResourceMemory]; ok && n >= memLim.Value() {
			t.Errorf("GOMEMLIMIT %s is not below the memory limit %s", v.value, memLim.String())
		}
	}

	vals := map[string]string{}
	if v, ok := env["FALLBACK_PARTITIONS"]; ok {
		vals["FALLBACK_PARTITIONS"] = v.value
	}
	partitions := newRunSettings(t, vals).c.Partitions
	if r := m.statefulSet.Spec.Replicas; r != nil && int(*r) > partitions {
		t.Errorf("%d replicas for %d partitions: the pods past the partitions get none and are never ready", *r, partitions)
	}
}

// TestK8sPod: the image is the one deploy/Dockerfile builds (the name
// docker-compose.yml gives it, which the kustomization's images entry
// rewrites), run as the Dockerfile's non-root user, hardened; and the
// kubelet's service-link variables, which for a Service named fallback-*
// would be FALLBACK_* names, are off.
func TestK8sPod(t *testing.T) {
	m := loadK8s(t)
	c := processorContainer(t, m)
	spec := m.statefulSet.Spec.Template.Spec

	repo := func(image string) string {
		if i := strings.LastIndex(image, "@"); i >= 0 {
			image = image[:i]
		}
		if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
			image = image[:i]
		}
		return image
	}
	compose := repo(service(t, loadProject(t), "processor").Image)
	if repo(c.Image) != compose {
		t.Errorf("image %s, want %s (deploy/Dockerfile's image, as docker-compose.yml names it)", c.Image, compose)
	}
	named := false
	for _, img := range m.kust.Images {
		if img.Name == repo(c.Image) {
			named = true
		}
	}
	if !named {
		t.Errorf("%s has no images entry for %s, to set the registry and tag", kustomizationFile, repo(c.Image))
	}

	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		t.Error("enableServiceLinks is not false: Services named fallback-* would add FALLBACK_* variables to the pod")
	}
	psc, sc := spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("the pod does not set runAsNonRoot")
	}
	if psc != nil && psc.RunAsUser != nil {
		user := ""
		stages := dockerStages(t)
		for _, line := range stages[len(stages)-1].lines {
			if op, rest := instruction(line); op == "USER" {
				user, _, _ = strings.Cut(rest, ":")
			}
		}
		if user != "" && user != strconv.FormatInt(*psc.RunAsUser, 10) {
			t.Errorf("runAsUser %d, but deploy/Dockerfile runs as USER %s", *psc.RunAsUser, user)
		}
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("the container does not set allowPrivilegeEscalation: false and readOnlyRootFilesystem: true")
	}
}

// TestK8sKustomizeBuild runs `kubectl kustomize` (or `kustomize build`)
// when one is installed, and decodes its output strictly: the
// kustomization is valid for the real tool, yields the objects of the
// files, and its images entry rewrites the StatefulSet's image.
func TestK8sKustomizeBuild(t *testing.T) {
	var cmd []string
	if p, err := exec.LookPath("kubectl"); err == nil {
		cmd = []string{p, "kustomize", k8sDir}
	} else if p, err := exec.LookPath("kustomize"); err == nil {
		cmd = []string{p, "build", k8sDir}
	} else {
		t.Skip("neither kubectl nor kustomize is installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	run := exec.CommandContext(ctx, cmd[0], cmd[1:]...)
	run.Stderr = &stderr
	out, err := run.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd, " "), err, stderr.String())
	}
	built, err := decodeK8s(k8sDecoder(t), out)
	if err != nil {
		t.Fatalf("%s: output: %v", strings.Join(cmd, " "), err)
	}
	m := loadK8s(t)
	key := func(obj runtime.Object) string {
		meta, err := metaOf(obj)
		if err != nil {
			t.Fatal(err)
		}
		return obj.GetObjectKind().GroupVersionKind().Kind + "/" + meta.GetName()
	}
	var want, got []string
	for _, objs := range m.objects {
		for _, o := range objs {
			want = append(want, key(o))
		}
	}
	var image string
	for _, o := range built {
		got = append(got, key(o))
		if sts, ok := o.(*appsv1.StatefulSet); ok && len(sts.Spec.Template.Spec.Containers) > 0 {
			image = sts.Spec.Template.Spec.Containers[0].Image
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s builds %v, want the files' objects %v", strings.Join(cmd, " "), got, want)
	}
	for _, img := range m.kust.Images {
		wantImage := cmp.Or(img.NewName, img.Name)
		switch {
		case img.Digest != "":
			wantImage += "@" + img.Digest
		case img.NewTag != "":
			wantImage += ":" + img.NewTag
		default:
			continue
		}
		if image != wantImage {
			t.Errorf("the built StatefulSet runs %s, want %s (%s images)", image, wantImage, kustomizationFile)
		}
	}
}
