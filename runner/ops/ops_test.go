package ops_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/ops"
)

func target(t *testing.T, name targets.Name) targets.Target {
	t.Helper()
	tg, err := targets.Get(name)
	assert.NilError(t, err)
	return tg
}

func TestSelectorTellsCanaryFromStable(t *testing.T) {
	assert.Equal(t, ops.Selector(target(t, targets.Canary)), "app.kubernetes.io/instance=dv-pipecat-canary,version=canary")
	assert.Equal(t, ops.Selector(target(t, targets.Stable)), "app.kubernetes.io/instance=dv-pipecat,version=stable")
}

func TestHealthReportPrintsOneRowPerPod(t *testing.T) {
	r := ops.HealthReport{
		Target: "canary", Namespace: "default", Selector: "app.kubernetes.io/instance=dv-pipecat-canary,version=canary",
		Endpoint: ":8765/pc/v1/healthcheck",
		Pods: []ops.PodHealth{
			{Pod: "dv-pipecat-canary-7d9f-abcde", Ready: true, Status: 200, Latency: 3200 * time.Microsecond},
			{Pod: "dv-pipecat-canary-7d9f-fghij", Ready: true, Status: 503, Latency: 2 * time.Millisecond, Body: `{"status":"unhealthy"}`},
			{Pod: "dv-pipecat-canary-7d9f-klmno", Error: "port-forward to dv-pipecat-canary-7d9f-klmno:8765: connection refused"},
		},
	}
	golden.Assert(t, r.String(), "health-one-unhealthy-one-unreachable.golden")
	assert.DeepEqual(t, r.Unhealthy(), []string{"dv-pipecat-canary-7d9f-fghij", "dv-pipecat-canary-7d9f-klmno"})
	raw, err := json.MarshalIndent(r, "", "  ")
	assert.NilError(t, err)
	golden.Assert(t, string(raw), "health-one-unhealthy-one-unreachable.json.golden")
}

func TestLogsReportPrefixesEveryLineWithItsPod(t *testing.T) {
	r := ops.LogsReport{
		Target: "canary", Namespace: "default", Container: "dv-pipecat",
		Pods: []ops.PodLogs{
			{Pod: "dv-pipecat-canary-7d9f-abcde", Lines: []string{"INFO Uvicorn running on http://0.0.0.0:8765", "INFO GET /pc/v1/healthcheck 200"}, Cut: true},
			{Pod: "dv-pipecat-canary-7d9f-x", Note: "not scheduled on a node yet: no logs"},
		},
	}
	golden.Assert(t, r.String(), "logs-one-cut-one-pending.golden")
}

func TestScaleResultSaysItIsTemporary(t *testing.T) {
	r := ops.ScaleResult{Target: "canary", Namespace: "default", Deployment: "dv-pipecat-canary", From: 2, To: 4, ChartReplicas: 2, Ready: 4}
	golden.Assert(t, r.String(), "scale-canary-2-to-4.golden")
	r.ChartReplicas = 0
	assert.Assert(t, golden.String(r.String(), "scale-unknown-chart-replicas.golden"))
}

// The refusals are decided before anything is changed; the real API server
// tests in integration/ops_test.go cover the change itself.
func TestScaleRefusesWithoutChangingAnything(t *testing.T) {
	stable := target(t, targets.Stable)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "dv-pipecat", Namespace: "default"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "dv-pipecat"},
			MinReplicas:    new(int32(5)), MaxReplicas: 100,
		},
	}
	tests := []struct {
		name     string
		target   targets.Target
		replicas int
		objects  bool
		want     string
	}{
		{"negative", stable, -1, false, "scale deployment dv-pipecat of stable in default to -1: scale refused: replicas must be 0 or more"},
		{"canary-beyond-its-cap", target(t, targets.Canary), 6, false,
			"scale deployment dv-pipecat-canary of canary in default to 6: scale refused: canary allows at most 5 replicas by hand; to run more, change replicaCount in its values file and deploy"},
		{"autoscaled", stable, 80, true,
			"scale deployment dv-pipecat of stable in default to 80: scale refused: HorizontalPodAutoscaler dv-pipecat manages its replicas (5 to 100); change autoscaling in the values file and deploy instead"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset()
			if tt.objects {
				c = fake.NewClientset(hpa)
			}
			before := len(c.Actions())
			_, err := ops.Scale(context.Background(), c, tt.target, tt.replicas, ops.ScaleOptions{})
			assert.Assert(t, errors.Is(err, ops.ErrRefused))
			assert.Error(t, err, tt.want)
			for _, a := range c.Actions()[before:] {
				assert.Assert(t, a.GetVerb() == "list" || a.GetVerb() == "get", "refused scale made a %s", a.GetVerb())
			}
		})
	}
}
