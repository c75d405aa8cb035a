// Package deploy holds the container image and Kubernetes manifests of
// mgw. Its test decodes every manifest strictly into the Kubernetes API
// types; it is a module of its own so that the gateway's go.mod stays
// free of the Kubernetes libraries.
package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// object is one decoded manifest.
type object struct {
	file string
	kind string
	obj  any
}

// decodeAll decodes every document of every manifest strictly: an
// unknown or misspelt field, a wrong type or an unknown kind fails.
func decodeAll(t *testing.T) []object {
	t.Helper()
	files, _ := filepath.Glob("kubernetes/*.yaml")
	if len(files) == 0 {
		t.Fatal("no manifests in kubernetes/")
	}
	var out []object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal(doc, &head); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			var obj any
			switch head.APIVersion + " " + head.Kind {
			case "apps/v1 Deployment":
				obj = &appsv1.Deployment{}
			case "v1 Service":
				obj = &corev1.Service{}
			case "v1 ConfigMap":
				obj = &corev1.ConfigMap{}
			case "v1 Secret":
				obj = &corev1.Secret{}
			default:
				t.Fatalf("%s document %d: %q %q is not a kind this test knows", f, i, head.APIVersion, head.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Errorf("%s document %d (%s): %v", f, i, head.Kind, err)
				continue
			}
			out = append(out, object{file: f, kind: head.Kind, obj: obj})
		}
	}
	return out
}

func TestManifestsDecodeStrictly(t *testing.T) {
	objs := decodeAll(t)
	var mgw *appsv1.Deployment
	configMaps, secrets := map[string]*corev1.ConfigMap{}, map[string]*corev1.Secret{}
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			if v.Name == "mgw" {
				mgw = v
			}
		case *corev1.ConfigMap:
			configMaps[v.Name] = v
		case *corev1.Secret:
			secrets[v.Name] = v
		}
	}
	if mgw == nil {
		t.Fatal("no Deployment named mgw")
	}
	spec := mgw.Spec.Template.Spec
	c := spec.Containers[0]
	// The probes are the health endpoints of the metrics port.
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.String() != "metrics" {
		t.Errorf("readiness probe = %+v, want GET /readyz on the metrics port", p)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "metrics" {
		t.Errorf("liveness probe = %+v, want GET /healthz on the metrics port", p)
	}
	// The grace period covers the preStop wait and the drain (30 s).
	var preStop int64
	if l := c.Lifecycle; l != nil && l.PreStop != nil && l.PreStop.Sleep != nil {
		preStop = l.PreStop.Sleep.Seconds
	}
	if preStop == 0 {
		t.Error("no preStop sleep: the Service may still send connections to a stopping pod")
	}
	if g := spec.TerminationGracePeriodSeconds; g == nil || *g < preStop+30+10 {
		t.Errorf("terminationGracePeriodSeconds = %v, want at least preStop %d + drain 30 + 10", g, preStop)
	}
	// Non-root, and the Edge credentials from the Secret.
	if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Error("the pod does not run as a non-root numeric user")
	}
	fromSecret := map[string]bool{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			ref := e.ValueFrom.SecretKeyRef
			s, ok := secrets[ref.Name]
			if !ok {
				t.Errorf("%s refers to a Secret %q no manifest defines", e.Name, ref.Name)
			} else if _, ok := s.StringData[ref.Key]; !ok {
				t.Errorf("%s refers to key %q the Secret %s lacks", e.Name, ref.Key, ref.Name)
			}
			fromSecret[e.Name] = true
		}
	}
	if !fromSecret["EDGEMICRO_KEY"] || !fromSecret["EDGEMICRO_SECRET"] {
		t.Error("the Edge key and secret do not come from a Secret")
	}
	// The config dir is the ConfigMap; it holds a config file.
	for _, v := range spec.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		cm, ok := configMaps[v.ConfigMap.Name]
		if !ok {
			t.Errorf("volume %s mounts a ConfigMap %q no manifest defines", v.Name, v.ConfigMap.Name)
			continue
		}
		toml := false
		for k := range cm.Data {
			toml = toml || strings.HasSuffix(k, ".toml")
		}
		if !toml {
			t.Errorf("ConfigMap %s holds no .toml config file", cm.Name)
		}
	}
}
