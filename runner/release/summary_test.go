package release

import (
	"encoding/json"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/kube"
	"github.com/ringg/ringg-ci/runner/secrets"
)

func deployedResult() *Result {
	return &Result{
		Target: targets.Canary, Release: "dv-pipecat-canary", Namespace: "default", Revision: 4, Previous: 3, Status: "deployed",
		Image: "asia-south1-docker.pkg.dev/desivocalprod01/ringg-registry-prod/dv-pipecat@" + digestA, Digest: digestA,
		SecretNames: pipeline.SecretNames{AppEnv: "dv-pipecat-app-secrets-0a1b2c3d4e", GCPCreds: "dv-pipecat-gcp-creds-5f6a7b8c9d"},
		SecretsApplied: []secrets.Status{
			{Summary: secrets.Summary{Kind: secrets.AppEnv, Name: "dv-pipecat-app-secrets-0a1b2c3d4e"}, State: secrets.StateCreated},
			{Summary: secrets.Summary{Kind: secrets.GCPCreds, Name: "dv-pipecat-gcp-creds-5f6a7b8c9d"}, State: secrets.StateUnchanged},
		},
		Pods:     kube.RolloutProgress{Desired: 2, Updated: 2, Ready: 2, Available: 2},
		Pruned:   []string{"dv-pipecat-app-secrets-ffffffffff"},
		Timeout:  9*time.Minute + 30*time.Second,
		Duration: 94 * time.Second,
	}
}

func TestResultSummary(t *testing.T) {
	golden.Assert(t, deployedResult().Summary(), "summary-canary-deployed.golden")
}

func TestPromoteSummary(t *testing.T) {
	p := &PromoteResult{
		Canary: Canary{Release: "dv-pipecat-canary", Revision: 4, Digest: digestA, Soak: 2 * time.Minute,
			Pods: []PodImage{{Pod: "a"}, {Pod: "b"}}},
		Result: deployedResult(),
	}
	p.Result.Target, p.Result.Release, p.Result.Pods = targets.Stable, "dv-pipecat", kube.RolloutProgress{Desired: 60, Updated: 60, Ready: 60, Available: 60}
	golden.Assert(t, p.Summary(), "summary-promote.golden")
}

func TestStatusJSONAndMerge(t *testing.T) {
	prod := &StatusReport{
		Targets:    []TargetStatus{{Target: targets.Canary, Installed: true, Digest: digestA}, {Target: targets.Stable, Installed: true, Digest: digestA}},
		Promotions: []Promotion{{From: targets.Canary, To: targets.Stable, SameDigest: true}},
	}
	all := &StatusReport{Targets: []TargetStatus{{Target: targets.Staging}}}
	all.Merge(prod)
	assert.Equal(t, len(all.Targets), 3)
	assert.Equal(t, all.Targets[2].Target, targets.Stable)
	out, err := json.Marshal(all)
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(out), `"sameDigest":true`))
	assert.Check(t, is.Contains(string(out), `"target":"staging"`))
}
