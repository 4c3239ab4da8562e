package release

import (
	"errors"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"
	hrelease "helm.sh/helm/v3/pkg/release"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/analysis"
	"github.com/ringg/ringg-ci/runner/ops"
)

// settledCanary is a look at a canary that passes: revision 3 proven, its
// Deployment available and rolled out, two ready pods on digestA.
func settledCanary(t *testing.T) canaryView {
	t.Helper()
	from, err := targets.Get(targets.Canary)
	assert.NilError(t, err)
	rel := rec(3, hrelease.StatusDeployed, digestA)
	rel.Labels = recordLabels(targets.Canary, verbDeploy, OutcomeProven)
	rel.Labels[LabelCommit] = "0123456789abcdef"
	two := int32(2)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "dv-pipecat-canary", Generation: 4},
		Spec:       appsv1.DeploymentSpec{Replicas: &two},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 4, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}},
	}
	return canaryView{target: from, rel: rel, workload: workload{deployment: dep, pods: []PodImage{
		{Pod: "dv-pipecat-canary-a", Digest: digestA, Ready: true}, {Pod: "dv-pipecat-canary-b", Digest: digestA, Ready: true},
	}}}
}

// TestJudgeCanary decides each state of the canary from one look: refused,
// refused but settling (what --wait-until-healthy waits for), or passed.
func TestJudgeCanary(t *testing.T) {
	cases := []struct {
		name     string
		change   func(v *canaryView)
		expected string
		want     string // "" passes
		settling bool
	}{
		{name: "settled canary passes"},
		{name: "the expected digest passes", expected: digestA},
		{name: "another target's release", change: func(v *canaryView) { v.ownerErr = ErrWrongTarget }, want: "release belongs to another target"},
		{name: "not installed", change: func(v *canaryView) { v.rel = nil }, want: "canary release dv-pipecat-canary not found in default: deploy the canary (push to dv-main) first"},
		{name: "written by the old pipeline", change: func(v *canaryView) { v.rel = oldRec(3, hrelease.StatusDeployed, "c0ffee") },
			want: `canary release dv-pipecat-canary revision 3 was written by the old pipeline (image tag "c0ffee")`},
		{name: "rollout being watched", settling: true, change: func(v *canaryView) {
			v.rel.Info.Status, v.rel.Labels[LabelOutcome] = hrelease.StatusPendingUpgrade, string(OutcomePending)
		}, want: "canary release dv-pipecat-canary revision 3 is pending-upgrade (its rollout: pending), not deployed and proven"},
		{name: "interrupted", change: func(v *canaryView) {
			v.rel.Info.Status, v.rel.Labels[LabelOutcome] = hrelease.StatusFailed, string(OutcomeInterrupted)
		}, want: "revision 3 is failed (its rollout: interrupted)"},
		{name: "no deployment", change: func(v *canaryView) { v.workload.deployment = nil }, want: "canary deployment of release dv-pipecat-canary not found"},
		{name: "not available", settling: true, change: func(v *canaryView) {
			v.workload.deployment.Status.Conditions[0] = appsv1.DeploymentCondition{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionFalse, Message: "minimum replicas unavailable"}
			v.workload.deployment.Status.ReadyReplicas = 1
		}, want: "canary deployment dv-pipecat-canary is not Available (minimum replicas unavailable): 1/2 pods ready"},
		{name: "no pods", settling: true, change: func(v *canaryView) { v.workload.pods = nil }, want: "canary deployment dv-pipecat-canary has no pods"},
		{name: "mixed digests", settling: true, change: func(v *canaryView) { v.workload.pods[1].Digest = digestB },
			want: "canary pods do not all run one known digest (dv-pipecat-canary-a runs " + digestA + ", dv-pipecat-canary-b runs " + digestB + ")"},
		{name: "unknown digest", settling: true, change: func(v *canaryView) { v.workload.pods[1].Digest = "" },
			want: "dv-pipecat-canary-b runs unknown digest"},
		{name: "still rolling out", settling: true, change: func(v *canaryView) { v.workload.deployment.Status.UpdatedReplicas = 1 },
			want: "canary deployment dv-pipecat-canary is still rolling out: 2/2 ready, 1/2 updated"},
		{name: "a pod not ready", settling: true, change: func(v *canaryView) { v.workload.pods[0].Ready = false },
			want: "canary pods not ready: dv-pipecat-canary-a"},
		{name: "pods behind the record", settling: true, change: func(v *canaryView) {
			v.rel.Config["image"] = map[string]any{"digest": digestB}
		}, want: "canary pods run " + digestA + " but release dv-pipecat-canary revision 3 asks for " + digestB},
		{name: "not the expected digest", settling: true, expected: digestB,
			want: "the canary runs " + digestA + ", not the expected " + digestB},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := settledCanary(t)
			if tc.change != nil {
				tc.change(&v)
			}
			got, err := judgeCanary(v, tc.expected)
			if tc.want == "" {
				assert.NilError(t, err)
				assert.Equal(t, got.Digest, digestA)
				assert.Equal(t, got.Revision, 3)
				assert.Equal(t, got.Commit, "0123456789abcdef")
				assert.Equal(t, len(got.Pods), 2)
				return
			}
			assert.ErrorContains(t, err, tc.want)
			assert.Equal(t, errors.Is(err, ErrUnsettled), tc.settling, "settling")
			if tc.name != "another target's release" {
				assert.Assert(t, errors.Is(err, ErrRefused))
			}
		})
	}
}

func TestGateLabel(t *testing.T) {
	g := &Gate{Soak: 2 * time.Minute, CallRounds: 6, Calls: &ops.CallReport{}, Metrics: &analysis.Verdict{Rows: make([]analysis.Row, 3)}}
	assert.Equal(t, GateLabel(g), "soak-120s.calls-6.metrics-3")
	assert.Equal(t, gateText(GateLabel(g)), "soak 2m0s, 6 rounds of calls passed, 3 metric queries passed")
	none := &Gate{Soak: 5 * time.Second}
	assert.Equal(t, GateLabel(none), "soak-5s.calls-none.metrics-none")
	assert.Equal(t, gateText(GateLabel(none)), "soak 5s, no calls configured, no metrics configured")
	assert.Equal(t, GateLabel(nil), "")
	assert.Equal(t, gateText("something-else"), "something-else")
}

func TestLabelValue(t *testing.T) {
	for in, want := range map[string]string{
		"ringg-ci@laptop": "ringg-ci_laptop",
		"github-actions run 123 attempt 1 (dv-main@0123456789abcdef0123456789abcdef01234567) by octocat": "github-actions_run_123_attempt...56789abcdef01234567_by_octocat",
		" (x) ":   "x",
		"":        "",
		"ünïcode": "n_code",
	} {
		got := labelValue(in)
		assert.Equal(t, got, want, in)
		assert.Assert(t, len(got) <= 63 && labelValueRE.MatchString(got), "%q", got)
	}
}

// TestPromoteSummaryRefused: a refusal's summary carries the gate's
// verdict: the per-pod calls and the metrics table.
func TestPromoteSummaryRefused(t *testing.T) {
	p := &PromoteResult{
		Canary:  Canary{Release: "dv-pipecat-canary", Revision: 4, Digest: digestA, Soak: 2 * time.Minute, Pods: []PodImage{{Pod: "a"}, {Pod: "b"}}},
		Refusal: "promote refused: metrics: 1 of 2 queries failed during the soak (call failure rate: canary 0.05 vs stable 0.01, threshold <= 2 x stable)",
		Gate: &Gate{Soak: 2 * time.Minute, Waited: 42 * time.Second, CallRounds: 3,
			Calls: &ops.CallReport{Target: "canary", Namespace: "default", Selector: "app.kubernetes.io/instance=dv-pipecat-canary,version=canary", Endpoint: ":8765/pc/v1/ws", Hold: "10s",
				Pods: []ops.PodCall{{Pod: "a", Ready: true, Handshake: 12 * time.Millisecond, Held: 10 * time.Second}, {Pod: "b", Ready: true, Handshake: 9 * time.Millisecond, Held: 10 * time.Second}}},
			Metrics: &analysis.Verdict{Canary: "canary", Baseline: "stable", Start: time.Unix(0, 0), End: time.Unix(90, 0), Step: 30 * time.Second, Rows: []analysis.Row{
				{Query: "call failure rate", Canary: 0.05, Baseline: 0.01, Threshold: "<= 2 x stable", Samples: 4, Failed: 2, At: time.Unix(60, 0)},
				{Query: "restarts", Threshold: "<= stable + 0", Samples: 4, Passed: true},
			}},
		},
	}
	golden.Assert(t, p.Summary(), "summary-promote-refused.golden")
}
