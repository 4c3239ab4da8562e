package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"

	"github.com/ringg/ringg-ci/ci/targets"
)

const (
	digest   = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	prodRepo = "asia-south1-docker.pkg.dev/desivocalprod01/ringg-registry-prod/dv-pipecat"
)

func TestRolloutDeadlines(t *testing.T) {
	const min = time.Minute
	prod := Rollout{ReadinessDelay: 60 * time.Second, ReadinessPeriod: 30 * time.Second, TerminationGrace: 270 * time.Second}
	with := func(r Rollout, replicas, surge, unavailable int) Rollout {
		r.Replicas, r.MaxSurge, r.MaxUnavailable = replicas, surge, unavailable
		return r
	}
	tests := []struct {
		name     string
		r        Rollout
		waves    int
		wave     time.Duration
		expected time.Duration
		timeout  time.Duration
	}{
		// 60 replicas, unavailable 25% of 60 = 15: on a full node pool the
		// surge pod does not fit, so waves of 15 old pods draining 270 s,
		// then their replacements starting and probed Ready.
		{"stable 60 replicas", with(prod, 60, 1, 15), 4, 390 * time.Second, 27 * min, 53 * min},
		// 25% of 2 rounds down to 0: one pod at a time.
		{"canary 2 replicas", with(prod, 2, 1, 0), 2, 390 * time.Second, 14 * min, 27 * min},
		{"staging 1 replica", with(prod, 1, 1, 0), 1, 390 * time.Second, 7*min + 30*time.Second, 14 * min},
		{"zero replicas", with(prod, 0, 1, 0), 0, 390 * time.Second, min, min},
		{"a full pool leaves the surge out", with(prod, 60, 10, 5), 12, 390 * time.Second, 12*390*time.Second + min, 24*390*time.Second + min},
		{"surge and unavailable zero count as one", Rollout{Replicas: 3}, 3, StartMargin, 3*StartMargin + min, 6*StartMargin + min},
		{"negative inputs are ignored", Rollout{Replicas: 2, MaxSurge: -1, MaxUnavailable: 2, ReadinessDelay: -time.Second, TerminationGrace: -time.Second}, 1, StartMargin, StartMargin + min, 2*StartMargin + min},
		{"uneven last wave", Rollout{Replicas: 5, MaxSurge: 2, MaxUnavailable: 0, ReadinessPeriod: 10 * time.Second}, 3, 40 * time.Second, 3*40*time.Second + min, 6*40*time.Second + min},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.r.Waves(), tc.waves)
			assert.Equal(t, tc.r.Wave(), tc.wave)
			assert.Equal(t, tc.r.Expected(), tc.expected)
			assert.Equal(t, RolloutTimeout(tc.r), tc.timeout)
			assert.Equal(t, tc.r.ProgressDeadlineSeconds(), int32(tc.wave/time.Second))
			assert.Assert(t, RolloutTimeout(tc.r) >= tc.r.Expected(), "the cap stands above the longest healthy rollout")
		})
	}
}

func TestRolloutCheckRefusesAShortProgressDeadline(t *testing.T) {
	r := Rollout{Replicas: 60, MaxSurge: 1, MaxUnavailable: 15, ReadinessDelay: time.Minute, ReadinessPeriod: 30 * time.Second, TerminationGrace: 270 * time.Second}
	assert.NilError(t, r.Check(), "no progress deadline rendered")
	r.ProgressDeadline = 390 * time.Second
	assert.NilError(t, r.Check())
	r.ProgressDeadline = 600 * time.Second
	assert.NilError(t, r.Check())
	r.ProgressDeadline = 389 * time.Second
	assert.Error(t, r.Check(), "progressDeadlineSeconds 389 is shorter than one wave of the rollout (390 s: drain 4m30s, start 30s, readiness 1m0s + 30s): Kubernetes would fail a healthy rollout; render it as at least 390")
}

func TestScaled(t *testing.T) {
	assert.Equal(t, Scaled(390*time.Second, 10*time.Millisecond), 3900*time.Millisecond)
	assert.Equal(t, Scaled(390*time.Second, 0), 390*time.Second)
	assert.Equal(t, Scaled(2*time.Minute, 100*time.Millisecond), 12*time.Second)
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
			NewSecrets: &SecretNames{AppEnv: "dv-pipecat-app-0a1b2c3d", GCPCreds: "dv-pipecat-gcp-4e5f6a7b"}, Holder: "github run 7 of dv-main",
			Commit: "0123456789abcdef0123456789abcdef01234567"})
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
		_, err := NewDeploy(DeployInput{Branch: "main", Image: "repo:latest", NewSecrets: &SecretNames{AppEnv: "Bad_Name"}, Timeout: -time.Second, Holder: "a\nb", Commit: "-dirty"})
		golden.Assert(t, err.Error()+"\n", "deploy-invalid-every-problem.golden")
	})
	t.Run("image from another repository", func(t *testing.T) {
		_, err := NewDeploy(DeployInput{Branch: "dv-stage", ChartDir: "c", Image: prodRepo + "@" + digest})
		assert.ErrorContains(t, err, "is not in the repository of target staging")
	})
	t.Run("the stand-in never goes to a target's own repository", func(t *testing.T) {
		for _, branch := range []string{"dv-stage", "dv-main"} {
			_, err := NewDeploy(DeployInput{Branch: branch, ChartDir: "c", Image: digest, StandIn: true})
			assert.Assert(t, errors.Is(err, ErrStandIn), "%s: %v", branch, err)
			assert.ErrorContains(t, err, "--source")
		}
	})
	t.Run("the stand-in may go to another registry", func(t *testing.T) {
		_, err := NewDeploy(DeployInput{Branch: "dv-main", ChartDir: "c", Image: "localhost:5001/test/dv-pipecat@" + digest, StandIn: true,
			Overrides: targets.Overrides{Image: "localhost:5001/test/dv-pipecat"}})
		assert.NilError(t, err)
	})
	t.Run("override empties the namespace", func(t *testing.T) {
		_, err := NewDeploy(DeployInput{Branch: "dv-main", ChartDir: "c", Image: digest, Overrides: targets.Overrides{Namespace: " "}})
		assert.ErrorContains(t, err, "namespace is empty")
	})
}

func TestNewPromote(t *testing.T) {
	t.Run("canary to stable", func(t *testing.T) {
		p, err := NewPromote(PromoteInput{ChartDir: "deploy/chart", ExpectedDigest: digest, Holder: "github run 9", WaitUntilHealthy: true})
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

// The workflows name the run in the lock with GitHub's values; the longest
// ones GitHub allows (a 255-byte branch, a 39-character actor) must shorten
// the holder, never refuse the deploy.
func TestHolderIsShortenedNeverRefused(t *testing.T) {
	branch := strings.Repeat("feature/ü-", 22) + strings.Repeat("x", 13) // 255 bytes, multi-byte runes
	actor := "a" + strings.Repeat("b", 37) + "z"                         // GitHub's longest login: 39
	sha := strings.Repeat("f", 40)
	assert.Equal(t, len(branch), 255)
	long := fmt.Sprintf("github-actions run 99999999999 attempt 99 (%s@%s) by %s", branch, sha, actor)
	for _, tc := range []struct{ name, in, want string }{
		{"empty is the default", "  ", DefaultHolder},
		{"a line is kept", "github run 7 of dv-main", "github run 7 of dv-main"},
		{"newlines and runs of space fold", "run 7\n of\tdv-main", "run 7 of dv-main"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, shortHolder(tc.in), tc.want)
		})
	}
	got := shortHolder(long)
	assert.Assert(t, len(got) <= MaxHolder, "%d bytes", len(got))
	assert.Assert(t, utf8.ValidString(got), "cut on a rune boundary")
	assert.Assert(t, strings.HasPrefix(got, "github-actions run 99999999999 attempt 99"), got)
	assert.Assert(t, strings.HasSuffix(got, "by "+actor), "the actor survives: %s", got)
	for _, branch := range []string{"dv-main", "dv-stage"} {
		_, err := NewDeploy(DeployInput{Branch: branch, ChartDir: "c", Image: digest, Holder: long})
		assert.NilError(t, err, "a long holder never blocks a deploy")
	}
}
