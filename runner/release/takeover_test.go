package release

import (
	"context"
	"errors"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"
	hrelease "helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ringg/ringg-ci/ci/targets"
	chartpkg "github.com/ringg/ringg-ci/runner/chart"
)

func TestOriginOf(t *testing.T) {
	withTag := rec(3, hrelease.StatusDeployed, digestA)
	withTag.Config["image"].(map[string]any)["tag"] = "v1"
	foreign := rec(4, hrelease.StatusDeployed, digestA)
	foreign.Config["secretEnv"] = map[string]any{"OPENAI_API_KEY": "x"}
	noSchema := rec(5, hrelease.StatusDeployed, digestA)
	noSchema.Chart.Schema = nil
	tests := []struct {
		name string
		rel  *hrelease.Release
		want Origin
	}{
		{"digest, names, schema", rec(1, hrelease.StatusDeployed, digestA), OriginRinggCI},
		{"tag only", oldRec(2, hrelease.StatusDeployed, "t2"), OriginOldPipeline},
		{"a tag besides the digest", withTag, OriginOldPipeline},
		{"a value the schema has no place for", foreign, OriginOldPipeline},
		{"a chart without schema", noSchema, OriginOldPipeline},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, originOf(tc.rel), tc.want) })
	}
}

func TestForeignPaths(t *testing.T) {
	config := map[string]any{
		"image":        map[string]any{"digest": digestA, "tag": "v1"},
		"nodeSelector": map[string]any{"kubernetes.io/arch": "arm64"},
		"env":          []any{map[string]any{"name": "A", "value": "b"}, map[string]any{"name": "C", "valueFrom": "d"}},
		"secretEnv":    map[string]any{"OPENAI_API_KEY": "x"},
	}
	assert.DeepEqual(t, foreignPaths(config, []byte(recSchema)), []string{"env[1].valueFrom", "secretEnv.OPENAI_API_KEY"})
	assert.Assert(t, foreignPaths(config, nil) == nil, "no schema, nothing to tell")
}

func TestRedactorHidesTheOldPipelinesSetValues(t *testing.T) {
	old := map[string]any{
		"image":     map[string]any{"tag": "c0ffee00"},
		"env":       []any{map[string]any{"name": "LOGGER_NAME", "value": "pipecat"}},
		"secretEnv": map[string]any{"OPENAI_API_KEY": "sk-live-0123456789", "SHORT": "abc"},
		"ingress":   map[string]any{"annotations": map[string]any{"kubernetes.io/ingress.global-static-ip-name": "use1-ip"}},
	}
	planned := map[string]any{"env": []any{map[string]any{"name": "LOGGER_NAME", "value": "pipecat"}}}
	ch, err := chartpkg.Load(chartDir)
	assert.NilError(t, err)
	red := newRedactor(old, ch.Schema, planned)
	manifest := strings.Join([]string{
		`          image: "repo:c0ffee00"`,
		`            - name: LOGGER_NAME`,
		`              value: "pipecat"`,
		`            - name: OPENAI_API_KEY`,
		`              value: "sk-live-0123456789"`,
		`            - name: SHORT`,
		`              value: abc`,
		`          args: ["--key=sk-live-0123456789"]`,
		`    kubernetes.io/ingress.global-static-ip-name: use1-ip`,
		`  name: abc-service`,
	}, "\n")
	want := strings.Join([]string{
		`          image: "repo:c0ffee00"`,
		`            - name: LOGGER_NAME`,
		`              value: "pipecat"`,
		`            - name: OPENAI_API_KEY`,
		`              value: (hidden)`,
		`            - name: SHORT`,
		`              value: (hidden)`,
		`          args: ["--key=(hidden)"]`,
		`    kubernetes.io/ingress.global-static-ip-name: use1-ip`,
		`  name: abc-service`,
	}, "\n")
	assert.Equal(t, red.manifest(manifest), want)
}

// objs builds a fake cluster's live objects.
func liveClients(objs ...*objectPair) Clients {
	c := fake.NewClientset()
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *corev1.Service:
			_, _ = c.CoreV1().Services("default").Create(context.Background(), v, metav1.CreateOptions{})
		case *networkingv1.Ingress:
			_, _ = c.NetworkingV1().Ingresses("default").Create(context.Background(), v, metav1.CreateOptions{})
		}
	}
	return Clients{Kube: c}
}

type objectPair struct{ obj any }

const oldService = `---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: ClusterIP
  ports:
    - port: 80
      targetPort: 8765
      name: http
  selector:
    app.kubernetes.io/name: web
`

const oldIngress = `---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations:
    kubernetes.io/ingress.class: gce
    kubernetes.io/ingress.global-static-ip-name: use1-ip
spec:
  rules:
    - host: use1-api.ringg.ai
`

func liveService(targetPort intstr.IntOrString) *objectPair {
	return &objectPair{&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeClusterIP, Selector: map[string]string{"app.kubernetes.io/name": "web"},
		Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: targetPort}},
	}}}
}

func liveIngress(extra map[string]string) *objectPair {
	ann := map[string]string{"kubernetes.io/ingress.class": "gce", "kubernetes.io/ingress.global-static-ip-name": "use1-ip"}
	for k, v := range extra {
		ann[k] = v
	}
	return &objectPair{&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Annotations: ann},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: "use1-api.ringg.ai"}}}}}
}

func TestRefusals(t *testing.T) {
	service := func(targetPort string, port int) string {
		return strings.NewReplacer("targetPort: 8765", "targetPort: "+targetPort, "port: 80", "port: "+itoa(port)).Replace(oldService)
	}
	ingress := func(annotations string, host string) string {
		s := strings.Replace(oldIngress, "use1-api.ringg.ai", host, 1)
		return strings.Replace(s, "    kubernetes.io/ingress.class: gce\n    kubernetes.io/ingress.global-static-ip-name: use1-ip\n", annotations, 1)
	}
	const both = "    kubernetes.io/ingress.class: gce\n    kubernetes.io/ingress.global-static-ip-name: use1-ip\n"
	tests := []struct {
		name    string
		live    []*objectPair
		planned string
		want    []string
	}{
		{"nothing changes", []*objectPair{liveService(intstr.FromInt32(8765)), liveIngress(nil)}, service("8765", 80) + ingress(both, "use1-api.ringg.ai"), nil},
		{"a controller's annotation stays", []*objectPair{liveService(intstr.FromInt32(8765)), liveIngress(map[string]string{"ingress.kubernetes.io/backends": "{}"})},
			service("8765", 80) + ingress(both, "use1-api.ringg.ai"), nil},
		{"annotations dropped", []*objectPair{liveService(intstr.FromInt32(8765)), liveIngress(nil)}, service("8765", 80) + ingress("", "use1-api.ringg.ai"), []string{
			`Ingress/web annotation "kubernetes.io/ingress.class" ("gce") would be removed => ingress.annotations["kubernetes.io/ingress.class"]: gce`,
			`Ingress/web annotation "kubernetes.io/ingress.global-static-ip-name" ("use1-ip") would be removed => ingress.annotations["kubernetes.io/ingress.global-static-ip-name"]: use1-ip`,
		}},
		{"annotation changed", []*objectPair{liveIngress(nil)}, ingress("    kubernetes.io/ingress.class: gce\n    kubernetes.io/ingress.global-static-ip-name: other-ip\n", "use1-api.ringg.ai"), []string{
			`Ingress/web annotation "kubernetes.io/ingress.global-static-ip-name" ("use1-ip") would become "other-ip" => ingress.annotations["kubernetes.io/ingress.global-static-ip-name"]: use1-ip`,
		}},
		{"host dropped", []*objectPair{liveIngress(nil)}, ingress(both, "other.ringg.ai"), []string{
			`Ingress/web host "use1-api.ringg.ai" would be removed => add host "use1-api.ringg.ai" with its paths to ingress.hosts`,
		}},
		{"named target port", []*objectPair{liveService(intstr.FromInt32(8765))}, service("http", 80), []string{
			`Service/web targetPort 8765 of port 80 would become http => service.targetPort: 8765`,
		}},
		{"port changed", []*objectPair{liveService(intstr.FromInt32(8765))}, service("8765", 8080), []string{
			`Service/web port 80 would become 8080 => service.port: 80`,
		}},
		{"service not rendered", []*objectPair{liveService(intstr.FromInt32(8765))}, "", []string{
			`Service/web would be deleted (the new chart does not render it) => service.create: true`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := oldService + oldIngress
			rs, err := refusals(context.Background(), liveClients(tc.live...), targets.Target{Namespace: "default"}, old, tc.planned)
			assert.NilError(t, err)
			var got []string
			for _, r := range rs {
				got = append(got, r.Object+" "+r.What+" => "+r.setting())
			}
			assert.DeepEqual(t, got, tc.want)
		})
	}
}

func itoa(n int) string { return strings.TrimSpace(scalar(n)) }

func TestRefusalErrorNamesWhatToSet(t *testing.T) {
	rs := []Refusal{
		{Object: "Ingress/web", What: `annotation "a" ("b") would be removed`, Path: []string{"ingress", "annotations", "a"}, Value: "b"},
		{Object: "Service/web", What: "targetPort 8765 of port 80 would become http", Path: []string{"service", "targetPort"}, Value: 8765},
	}
	err := takeoverErr{msg: refusalError(oldRec(2, hrelease.StatusDeployed, "t2"), rs, "values-prod.yaml").Error()}
	assert.Assert(t, errors.Is(err, ErrTakeoverRefused))
	assert.Equal(t, err.Error(), `takeover refused: release web revision 2 was written by the old pipeline, and this run would change what its live objects have: `+
		`Ingress/web annotation "a" ("b") would be removed; Service/web targetPort 8765 of port 80 would become http; `+
		`keep them by setting, in values-prod.yaml: ingress.annotations.a: b; service.targetPort: 8765 `+
		`(to change them on purpose, take over with them kept first and change them in a later deploy)`)
	assert.Equal(t, refusalsYAML(rs), "ingress:\n  annotations:\n    a: b\nservice:\n  targetPort: 8765\n")
}

func TestValueFates(t *testing.T) {
	ch, err := chartpkg.Load(chartDir)
	assert.NilError(t, err)
	old := map[string]any{
		"image":                         map[string]any{"tag": "t2", "repository": "r"},
		"replicaCount":                  float64(60),
		"terminationGracePeriodSeconds": float64(270),
		"containerPort":                 float64(8000),
		"env":                           []any{map[string]any{"name": "LOGGER_NAME", "value": "x"}},
		"secretEnv":                     map[string]any{"OPENAI_API_KEY": "sk"},
		"ingress":                       map[string]any{"annotations": map[string]any{"a": "b"}},
	}
	planned := map[string]any{"image": map[string]any{"repository": "r", "digest": digestA}, "replicaCount": float64(2),
		"env": []any{map[string]any{"name": "LOGGER_NAME", "value": "y"}}}
	var got []string
	for _, f := range valueFates(old, planned, ch, digestA) {
		got = append(got, f.Path+": "+f.Fate)
	}
	assert.DeepEqual(t, got, []string{
		"containerPort: dropped: no values file sets it; the chart's default 8765 applies",
		"env[0].value: changed (both values hidden)",
		"image.tag: replaced: the image is pinned by digest (image.digest " + digestA + ")",
		`ingress.annotations.a: dropped: no values file sets it`,
		"replicaCount: changed: now 2",
		"secretEnv.OPENAI_API_KEY: dropped: the chart ringg-ci deploys has no such value (value hidden)",
		"terminationGracePeriodSeconds: kept: the chart's default is the same",
	})
}

func TestTakeoverText(t *testing.T) {
	tk := &TakeoverChanges{
		Revision: 2, Status: "deployed", Chart: "dv-pipecat-0.1.0", ImageTag: "c0ffee", Running: digestA,
		LiveSecrets:    []string{"dv-pipecat-app-secrets", "dv-pipecat-gcp-creds"},
		PlannedSecrets: []string{"dv-pipecat-app-secrets-0123456789", "dv-pipecat-gcp-creds-0123456789"},
		Values: []ValueFate{
			{Path: "image.tag", Fate: "replaced: the image is pinned by digest (image.digest " + digestA + ")"},
			{Path: "secretEnv.OPENAI_API_KEY", Fate: "dropped: the chart ringg-ci deploys has no such value (value hidden)"},
		},
		Fields: []FieldChange{
			{Object: "Deployment/dv-pipecat", Path: "spec.template.spec.containers[dv-pipecat].env[OPENAI_API_KEY].value", Change: "removed"},
			{Object: "Ingress/dv-pipecat", Path: "spec.rules[use1-api.ringg.ai].http.paths[/pc/*].backend.service.port.number", Change: "removed", Live: "80"},
			{Object: "Service/dv-pipecat", Path: `metadata.labels["helm.sh/chart"]`, Change: "changed", Live: `"dv-pipecat-0.1.0"`, Planned: `"dv-pipecat-1.0.0"`},
		},
		Refusals: []Refusal{
			{Object: "Ingress/dv-pipecat", What: `annotation "kubernetes.io/ingress.global-static-ip-name" ("use1-ip") would be removed`,
				Path: []string{"ingress", "annotations", "kubernetes.io/ingress.global-static-ip-name"}, Value: "use1-ip"},
			{Object: "Ingress/dv-pipecat", What: `host "use1-api.ringg.ai" would be removed`, Fix: `add host "use1-api.ringg.ai" with its paths to ingress.hosts`},
		},
		SetIn:      "values-prod.yaml",
		OldRecords: []int{1, 2},
	}
	golden.Assert(t, tk.String(), "plan-takeover-refused.golden")
}
