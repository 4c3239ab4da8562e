package release

import (
	"encoding/json"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/kube"
)

func TestStatusText(t *testing.T) {
	s := StatusReport{
		Targets: []TargetStatus{
			{Target: targets.Canary, Release: "dv-pipecat-canary", Namespace: "default", Installed: true, Revision: 7, Status: "deployed", Digest: digestB, Running: []string{digestB}, Ready: 2, Desired: 2},
			{Target: targets.Stable, Release: "dv-pipecat", Namespace: "default", Installed: true, Revision: 12, Status: "pending-upgrade", Digest: digestA, Running: []string{digestA, digestB}, Ready: 59, Desired: 60},
			{Target: targets.Staging, Release: "dv-pipecat", Namespace: "staging", Installed: false},
		},
		Promotions: []Promotion{{From: targets.Canary, To: targets.Stable, SameDigest: false}},
	}
	golden.Assert(t, s.String(), "status-canary-ahead-of-stable.golden")
}

func TestResultJSON(t *testing.T) {
	r := Result{Target: targets.Canary, Release: "dv-pipecat-canary", Namespace: "default", Revision: 3, Previous: 2, Status: "deployed",
		Image: "repo@" + digestA, Digest: digestA, SecretNames: pipeline.SecretNames{AppEnv: "app-1", GCPCreds: "creds-1"},
		Pods: kube.RolloutProgress{Desired: 2, Updated: 2, Ready: 2, Available: 2, Elapsed: time.Second}, Timeout: 9*time.Minute + 30*time.Second, Duration: 41 * time.Second}
	b, err := json.MarshalIndent(r, "", "  ")
	assert.NilError(t, err)
	golden.Assert(t, string(b)+"\n", "result-deployed.golden")
}

func TestOneDigestNeedsExactlyOneKnownDigest(t *testing.T) {
	const a, b = "sha256:aaaa", "sha256:bbbb"
	for _, tc := range []struct {
		name string
		pods []PodImage
		want string
	}{
		{name: "no pods"},
		{name: "one digest", pods: []PodImage{{Pod: "p1", Digest: a}, {Pod: "p2", Digest: a}}, want: a},
		{name: "two digests mid-rollout", pods: []PodImage{{Pod: "p1", Digest: a}, {Pod: "p2", Digest: b}}},
		{name: "a pod not started yet", pods: []PodImage{{Pod: "p1", Digest: a}, {Pod: "p2"}}},
		{name: "unknown only", pods: []PodImage{{Pod: "p1"}}},
		{name: "several containers", pods: []PodImage{{Pod: "p1", Digest: a + "," + b}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := oneDigest(digests(tc.pods))
			assert.Equal(t, got, tc.want)
			assert.Equal(t, ok, tc.want != "")
		})
	}
}
