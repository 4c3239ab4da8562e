package pipeline

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"

	"github.com/ringg/ringg-ci/ci/targets"
)

const (
	digest   = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	prodRepo = "asia-south1-docker.pkg.dev/desivocalprod01/ringg-registry-prod/dv-pipecat"
)

func TestRolloutTimeout(t *testing.T) {
	tests := []struct {
		name  string
		r     Rollout
		waves int
		want  time.Duration
	}{
		// 60 replicas, surge 1, unavailable 25% of 60 = 15: batches of 16.
		{"stable 60 replicas", Rollout{Replicas: 60, MaxSurge: 1, MaxUnavailable: 15, ReadinessDelay: 60 * time.Second, ReadinessPeriod: 30 * time.Second, TerminationGrace: 270 * time.Second}, 4, 4*120*time.Second + 270*time.Second + time.Minute},
		// 25% of 2 rounds down to 0: one pod at a time.
		{"canary 2 replicas", Rollout{Replicas: 2, MaxSurge: 1, MaxUnavailable: 0, ReadinessDelay: 60 * time.Second, ReadinessPeriod: 30 * time.Second, TerminationGrace: 270 * time.Second}, 2, 2*120*time.Second + 270*time.Second + time.Minute},
		{"staging 1 replica", Rollout{Replicas: 1, MaxSurge: 1, ReadinessDelay: 60 * time.Second, ReadinessPeriod: 30 * time.Second, TerminationGrace: 270 * time.Second}, 1, 120*time.Second + 270*time.Second + time.Minute},
		{"zero replicas", Rollout{Replicas: 0, MaxSurge: 1, TerminationGrace: 270 * time.Second}, 0, time.Minute},
		{"surge and unavailable zero count as one", Rollout{Replicas: 3}, 3, 3*StartMargin + time.Minute},
		{"negative inputs are ignored", Rollout{Replicas: 2, MaxSurge: -1, MaxUnavailable: 2, ReadinessDelay: -time.Second, TerminationGrace: -time.Second}, 1, StartMargin + time.Minute},
		{"uneven last wave", Rollout{Replicas: 5, MaxSurge: 2, MaxUnavailable: 0, ReadinessPeriod: 10 * time.Second}, 3, 3*(10*time.Second+StartMargin) + time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.r.Waves(), tc.waves)
			assert.Equal(t, RolloutTimeout(tc.r), tc.want)
		})
	}
}

func TestParseImage(t *testing.T) {
	tests := []struct {
		name, ref string
		want      Image
		err       string
	}{
		{name: "repository at digest", ref: prodRepo + "@" + digest, want: Image{prodRepo, digest}},
		{name: "bare digest takes the default repository", ref: digest, want: Image{prodRepo, digest}},
		{name: "tag and digest drop the tag", ref: prodRepo + ":v1@" + digest, want: Image{prodRepo, digest}},
		{name: "registry port is not a tag", ref: "localhost:5000/app@" + digest, want: Image{"localhost:5000/app", digest}},
		{name: "tag only", ref: prodRepo + ":latest", err: "has no digest"},
		{name: "short digest", ref: prodRepo + "@sha256:abc", err: "64 lowercase hex"},
		{name: "uppercase digest", ref: prodRepo + "@" + strings.ToUpper(digest), err: "64 lowercase hex"},
		{name: "empty", ref: " ", err: "image is empty"},
		{name: "no repository", ref: "@" + digest, err: "has no repository"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseImage(tc.ref, prodRepo)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, got, tc.want)
		})
	}
}

func TestComputedValues(t *testing.T) {
	got := ComputedValues(Image{prodRepo, digest}, SecretNames{AppEnv: "app-1", GCPCreds: "creds-2"})
	b, err := json.Marshal(got)
	assert.NilError(t, err)
	assert.Equal(t, string(b), `{"image":{"digest":"`+digest+`","repository":"`+prodRepo+`"},"secrets":{"appEnv":"app-1","gcpCreds":"creds-2"}}`)

	got = ComputedValues(Image{prodRepo, digest}, SecretNames{})
	_, has := got["secrets"]
	assert.Assert(t, !has, "zero names must leave the chart's defaults")
}

func goldenJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	assert.NilError(t, err)
	golden.Assert(t, string(b)+"\n", name)
}

func TestNewDeploy(t *testing.T) {
	t.Run("canary with new secrets", func(t *testing.T) {
		p, err := NewDeploy(DeployInput{Branch: "dv-main", ChartDir: "deploy/chart", Image: prodRepo + "@" + digest,
			NewSecrets: &SecretNames{AppEnv: "dv-pipecat-app-0a1b2c3d", GCPCreds: "dv-pipecat-gcp-4e5f6a7b"}, Holder: "github run 7 of dv-main"})
		assert.NilError(t, err)
		goldenJSON(t, "deploy-canary-new-secrets.golden", p)
	})
	t.Run("staging keeps current secrets", func(t *testing.T) {
		p, err := NewDeploy(DeployInput{Branch: "dv-stage", ChartDir: "deploy/chart", Image: digest,
			Overrides: targets.Overrides{Namespace: "ci-test", Image: prodRepo}, Timeout: 90 * time.Second})
		assert.NilError(t, err)
		goldenJSON(t, "deploy-staging-current-secrets.golden", p)
	})
	t.Run("every problem at once", func(t *testing.T) {
		_, err := NewDeploy(DeployInput{Branch: "main", Image: "repo:latest", NewSecrets: &SecretNames{AppEnv: "Bad_Name"}, Timeout: -time.Second, Holder: "a\nb"})
		golden.Assert(t, err.Error()+"\n", "deploy-invalid-every-problem.golden")
	})
	t.Run("image from another repository", func(t *testing.T) {
		_, err := NewDeploy(DeployInput{Branch: "dv-stage", ChartDir: "c", Image: prodRepo + "@" + digest})
		assert.ErrorContains(t, err, "is not in the repository of target staging")
	})
	t.Run("override empties the namespace", func(t *testing.T) {
		_, err := NewDeploy(DeployInput{Branch: "dv-main", ChartDir: "c", Image: digest, Overrides: targets.Overrides{Namespace: " "}})
		assert.ErrorContains(t, err, "namespace is empty")
	})
}

func TestNewPromote(t *testing.T) {
	t.Run("canary to stable", func(t *testing.T) {
		p, err := NewPromote(PromoteInput{ChartDir: "deploy/chart", ExpectedDigest: digest, Holder: "github run 9"})
		assert.NilError(t, err)
		goldenJSON(t, "promote-canary-to-stable.golden", p)
	})
	t.Run("every problem at once", func(t *testing.T) {
		_, err := NewPromote(PromoteInput{From: targets.Stable, ExpectedDigest: "latest", Soak: -time.Second})
		golden.Assert(t, err.Error()+"\n", "promote-invalid-every-problem.golden")
	})
}

func TestNewRollback(t *testing.T) {
	t.Run("stable to previous", func(t *testing.T) {
		p, err := NewRollback(RollbackInput{Target: targets.Stable})
		assert.NilError(t, err)
		goldenJSON(t, "rollback-stable-previous.golden", p)
	})
	t.Run("canary to stable's image", func(t *testing.T) {
		p, err := NewRollback(RollbackInput{Target: targets.Canary, ChartDir: "deploy/chart"})
		assert.NilError(t, err)
		goldenJSON(t, "rollback-canary-to-stable-image.golden", p)
	})
	t.Run("canary to a revision needs no chart", func(t *testing.T) {
		p, err := NewRollback(RollbackInput{Target: targets.Canary, Revision: 3})
		assert.NilError(t, err)
		assert.Equal(t, p.Mode, ToRevision)
	})
	t.Run("every problem at once", func(t *testing.T) {
		_, err := NewRollback(RollbackInput{Target: targets.Canary, Revision: 0, Timeout: -time.Second})
		assert.ErrorContains(t, err, "chart directory is empty")
		assert.ErrorContains(t, err, "is negative")
		_, err = NewRollback(RollbackInput{Target: "prod", Revision: -1})
		assert.ErrorContains(t, err, "unknown target")
		assert.ErrorContains(t, err, "revision -1 is negative")
	})
}

func TestNewStatus(t *testing.T) {
	p, err := NewStatus([]targets.Name{targets.Canary, targets.Stable}, targets.Overrides{Namespace: "ns"})
	assert.NilError(t, err)
	assert.Equal(t, len(p.Targets), 2)
	assert.Equal(t, p.Targets[1].Namespace, "ns")
	_, err = NewStatus([]targets.Name{targets.Staging, targets.Stable}, targets.Overrides{})
	assert.ErrorContains(t, err, "ask for one cluster's targets at a time")
	_, err = NewStatus(nil, targets.Overrides{})
	assert.ErrorContains(t, err, "no target given")
}

func TestPlaceholderDigestIsAValidDigest(t *testing.T) {
	assert.NilError(t, ValidateDigest(PlaceholderDigest))
}
