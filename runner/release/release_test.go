package release

import (
	"errors"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	hrelease "helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	chartpkg "github.com/ringg/ringg-ci/runner/chart"
)

const (
	chartDir = "../../deploy/chart"
	digestA  = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB  = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// TestRolloutOfRenderedChart checks the deadlines come from the chart as
// each target renders it, and that the chart's own progressDeadlineSeconds
// is the runner's wave budget (pipeline.Rollout.Wave), for the targets and
// for values that change every number it is made of.
func TestRolloutOfRenderedChart(t *testing.T) {
	ch, err := chartpkg.Load(chartDir)
	assert.NilError(t, err)
	render := func(t *testing.T, name targets.Name, extra map[string]any) rendered {
		t.Helper()
		tg, err := targets.Get(name)
		assert.NilError(t, err)
		computed := pipeline.ComputedValues(pipeline.Image{Repository: tg.Image, Digest: digestA}, pipeline.SecretNames{})
		for k, v := range extra {
			computed[k] = v
		}
		vals, err := chartpkg.Values(chartDir, tg.ValuesFiles, computed)
		assert.NilError(t, err)
		m, err := chartpkg.Render(ch, vals, chartpkg.RenderOptions{Release: tg.Release, Namespace: tg.Namespace})
		assert.NilError(t, err)
		r, err := rolloutOf(m)
		assert.NilError(t, err)
		assert.Equal(t, r.deployment, tg.Release)
		return r
	}
	prod := pipeline.Rollout{ReadinessDelay: time.Minute, ReadinessPeriod: 30 * time.Second, TerminationGrace: 270 * time.Second, ProgressDeadline: 390 * time.Second}
	with := func(replicas, surge, unavailable int) pipeline.Rollout {
		r := prod
		r.Replicas, r.MaxSurge, r.MaxUnavailable = replicas, surge, unavailable
		return r
	}
	tests := []struct {
		target  targets.Name
		want    pipeline.Rollout
		timeout time.Duration
	}{
		{targets.Stable, with(60, 1, 15), 53 * time.Minute},
		{targets.Canary, with(2, 1, 0), 27 * time.Minute},
		{targets.Staging, with(1, 1, 0), 14 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(string(tc.target), func(t *testing.T) {
			r := render(t, tc.target, nil)
			assert.DeepEqual(t, r.rollout, tc.want)
			assert.Equal(t, pipeline.RolloutTimeout(r.rollout), tc.timeout)
			assert.Equal(t, r.rollout.ProgressDeadline, r.rollout.Wave())
			assert.NilError(t, r.rollout.Check())
		})
	}

	overrides := []struct {
		name string
		vals map[string]any
		want time.Duration
	}{
		{"shorter grace", map[string]any{"terminationGracePeriodSeconds": 100, "drain": map[string]any{"deadlineSeconds": 60}}, 100*time.Second + 30*time.Second + 90*time.Second},
		{"probe without delay", map[string]any{"readinessProbe": map[string]any{"initialDelaySeconds": 0, "periodSeconds": 5}}, 270*time.Second + 30*time.Second + 5*time.Second},
		{"probe without period takes the default", map[string]any{"readinessProbe": map[string]any{"httpGet": map[string]any{"path": "/x", "port": 8765}, "initialDelaySeconds": nil, "periodSeconds": nil}}, 270*time.Second + 30*time.Second + 10*time.Second},
		{"no readiness probe", map[string]any{"readinessProbe": nil}, 300 * time.Second},
		{"slow probe", map[string]any{"readinessProbe": map[string]any{"initialDelaySeconds": 120, "periodSeconds": 45}}, 465 * time.Second},
	}
	for _, tc := range overrides {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, targets.Stable, tc.vals)
			assert.Equal(t, r.rollout.Wave(), tc.want)
			assert.Equal(t, r.rollout.ProgressDeadline, tc.want, "the chart's progressDeadlineSeconds is the runner's wave budget")
		})
	}
}

func TestDiffManifests(t *testing.T) {
	live := `---
# Source: c/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: app
          image: repo@` + digestA + `
          ports:
            - containerPort: 8765
---
# Source: c/templates/secret.yaml
apiVersion: v1
kind: Secret
metadata:
  name: s
stringData:
  token: old-value
---
apiVersion: v1
kind: Service
metadata:
  name: gone
`
	planned := `---
# Source: c/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: app
          image: repo@` + digestB + `
          ports:
            - containerPort: 8765
---
# Source: c/templates/secret.yaml
apiVersion: v1
kind: Secret
metadata:
  name: s
stringData:
  token: new-value
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: new
`
	got := diffManifests(live, planned)
	r := PlanResult{Target: "canary", Release: "web", Namespace: "ns", LiveRevision: 3, LiveStatus: "deployed", Image: "repo@" + digestB, Objects: got, Timeout: time.Minute}
	golden.Assert(t, r.String(), "plan-update-secret-hidden.golden")
	assert.Assert(t, r.Changed())
	for _, o := range got {
		if o.Kind == "Secret" {
			assert.Equal(t, o.Change, Update)
			assert.Equal(t, o.Diff, "", "a Secret's content is never shown")
		}
	}
	same := diffManifests(live, live)
	assert.Assert(t, !PlanResult{Objects: same}.Changed())
}

func TestRestarted(t *testing.T) {
	before := []PodImage{{Pod: "a", Restarts: 0}, {Pod: "b", Restarts: 2}}
	tests := []struct {
		name  string
		after []PodImage
		want  string
	}{
		{"steady", []PodImage{{Pod: "a"}, {Pod: "b", Restarts: 2}}, ""},
		{"restart", []PodImage{{Pod: "a", Restarts: 1}, {Pod: "b", Restarts: 2}}, "a container of pod a restarted (0 to 1 restarts)"},
		{"replaced", []PodImage{{Pod: "a"}, {Pod: "c"}}, "pod c appeared (a pod was replaced)"},
		{"gone", []PodImage{{Pod: "a"}}, "pod b went away"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, restarted(before, tc.after), tc.want) })
	}
}

func TestPodDigest(t *testing.T) {
	pod := func(specImage, imageID, image string) *corev1.Pod {
		p := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: specImage}}}}
		if imageID != "" || image != "" {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", ImageID: imageID, Image: image}}
		}
		return p
	}
	tests := []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"runtime image id wins", pod("repo@"+digestA, "docker-pullable://repo@"+digestB, "repo:tag"), digestB},
		{"config digest id falls back to the spec", pod("repo@"+digestA, digestB, "repo:tag"), digestA},
		{"not started yet", pod("repo@"+digestA, "", ""), digestA},
		{"tag only is unknown", pod("repo:v1", "", "repo:v1"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, podDigest(tc.pod), tc.want) })
	}
}

// memoryConfig is a Helm configuration over the memory driver: enough for
// the code that only reads and writes release records.
func memoryConfig(t *testing.T, recs ...*hrelease.Release) *action.Configuration {
	t.Helper()
	st := storage.Init(driver.NewMemory())
	for _, r := range recs {
		assert.NilError(t, st.Create(r))
	}
	return &action.Configuration{Releases: st, Log: func(string, ...any) {}}
}

// recSchema stands for the chart's values.schema.json: objects that allow
// no other keys.
const recSchema = `{"type": "object", "additionalProperties": false, "properties": {
  "image": {"type": "object", "additionalProperties": false, "properties": {"repository": {}, "digest": {}, "tag": {}}},
  "secrets": {"type": "object", "additionalProperties": false, "properties": {"appEnv": {}, "gcpCreds": {}}},
  "nodeSelector": {"type": "object", "additionalProperties": {"type": "string"}},
  "env": {"type": "array", "items": {"type": "object", "additionalProperties": false, "properties": {"name": {}, "value": {}}}}}}`

// rec is a record ringg-ci wrote: a digest, Secret names, a chart with a
// schema.
func rec(version int, status hrelease.Status, digest string) *hrelease.Release {
	return &hrelease.Release{Name: "web", Namespace: "default", Version: version, Chart: &chart.Chart{Metadata: &chart.Metadata{Name: "c", Version: "1"}, Schema: []byte(recSchema)},
		Info:   &hrelease.Info{Status: status},
		Config: map[string]any{"image": map[string]any{"digest": digest}, "secrets": map[string]any{"appEnv": "app-" + digest[7:10], "gcpCreds": "creds-" + digest[7:10]}}}
}

// oldRec is a record the old pipeline wrote: a tag, values given with -f
// and --set, a chart without a schema.
func oldRec(version int, status hrelease.Status, tag string) *hrelease.Release {
	return &hrelease.Release{Name: "web", Namespace: "default", Version: version, Chart: &chart.Chart{Metadata: &chart.Metadata{Name: "c", Version: "0.1.0"}},
		Info: &hrelease.Info{Status: status},
		Config: map[string]any{"image": map[string]any{"tag": tag}, "replicaCount": float64(60),
			"secretEnv": map[string]any{"OPENAI_API_KEY": "sk-not-a-real-key", "REDIS_URL": "redis://:pw@r:6379/0"}}}
}

func TestTransient(t *testing.T) {
	gr := schema.GroupResource{Resource: "secrets"}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", errors.New("dial tcp 127.0.0.1:6443: connect: connection refused"), true},
		{"unauthorized", apierrors.NewUnauthorized("token expired"), true},
		{"unavailable", apierrors.NewServiceUnavailable("restarting"), true},
		{"forbidden", apierrors.NewForbidden(gr, "x", errors.New("rbac")), false},
		{"not found", apierrors.NewNotFound(gr, "x"), false},
		{"bad request", apierrors.NewBadRequest("no"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, transient(tc.err), tc.want)
		})
	}
}

func TestLineDiff(t *testing.T) {
	twenty := "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\nn\no\np\nq\nr\ns\nt\n"
	tests := []struct {
		name, before, after, want string
	}{
		{name: "created", after: "a\nb\n", want: "+a\n+b\n"},
		{name: "deleted", before: "a\nb\n", want: "-a\n-b\n"},
		{name: "unchanged runs fold beyond three lines of context", before: twenty, after: strings.Replace(twenty, "j\n", "J\n", 1),
			want: "@@ 6 unchanged lines @@\n g\n h\n i\n-j\n+J\n k\n l\n m\n@@ 7 unchanged lines @@\n"},
		{name: "short runs stay", before: "a\nb\nc\n", after: "a\nx\nc\n", want: " a\n-b\n+x\n c\n"},
		{name: "insert and delete", before: "a\nb\nc\n", after: "b\nc\nd\n", want: "-a\n b\n c\n+d\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, lineDiff(tc.before, tc.after), tc.want)
		})
	}
}
