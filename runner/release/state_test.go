package release

import (
	"context"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	hrelease "helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
)

// labelled is a record ringg-ci wrote for target stable with an outcome.
func labelled(version int, status hrelease.Status, digest string, o Outcome) *hrelease.Release {
	r := rec(version, status, digest)
	r.Labels = recordLabels(targets.Stable, verbDeploy, o)
	r.Manifest = "kind: Deployment\nimage: " + digest
	return r
}

// described is a record an older ringg-ci wrote: no labels, its outcome in
// its description.
func described(version int, status hrelease.Status, digest, desc string) *hrelease.Release {
	r := rec(version, status, digest)
	r.Info.Description = desc
	return r
}

func TestOutcomeOf(t *testing.T) {
	tests := []struct {
		name string
		rel  *hrelease.Release
		want Outcome
	}{
		{"labelled proven", labelled(1, hrelease.StatusSuperseded, digestA, OutcomeProven), OutcomeProven},
		{"labelled pending beats a deployed status", labelled(1, hrelease.StatusDeployed, digestA, OutcomePending), OutcomePending},
		{"older ringg-ci, deployed after its rollout", described(1, hrelease.StatusSuperseded, digestA, "deploy "+digestA+" by run 7"), OutcomeProven},
		{"older ringg-ci, promote", described(1, hrelease.StatusDeployed, digestA, "promote "+digestA+" by run 7"), OutcomeProven},
		{"older ringg-ci, Helm's own description after a kill", described(1, hrelease.StatusSuperseded, digestA, "Upgrade complete"), OutcomeUnknown},
		{"older ringg-ci, killed while watching, then superseded", described(1, hrelease.StatusSuperseded, digestA, "waiting for the rollout"), OutcomeInterrupted},
		{"older ringg-ci, killed while watching", described(1, hrelease.StatusPendingUpgrade, digestA, "waiting for the rollout"), OutcomePending},
		{"older ringg-ci, recovered", described(1, hrelease.StatusSuperseded, digestA, "interrupted while pending-upgrade; marked failed by run 8"), OutcomeInterrupted},
		{"older ringg-ci, failed", described(1, hrelease.StatusFailed, digestA, "rollout failed: timeout"), OutcomeFailed},
		{"old pipeline", oldRec(1, hrelease.StatusDeployed, "t1"), OutcomeUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, outcomeOf(tc.rel), tc.want) })
	}
}

func TestLastGoodAndNeverGood(t *testing.T) {
	tests := []struct {
		name      string
		h         history
		lastGood  int
		neverGood bool
	}{
		{"cancelled promote after a good deploy", history{labelled(1, hrelease.StatusSuperseded, digestA, OutcomeProven), labelled(2, hrelease.StatusPendingUpgrade, digestB, OutcomePending)}, 1, false},
		{"the same, written by an older ringg-ci", history{described(1, hrelease.StatusSuperseded, digestA, "deploy "+digestA+" by x"), described(2, hrelease.StatusPendingUpgrade, digestB, "waiting for the rollout")}, 1, false},
		{"killed mid-rollout, then a good deploy", history{labelled(1, hrelease.StatusSuperseded, digestA, OutcomeProven), labelled(2, hrelease.StatusSuperseded, digestB, OutcomeInterrupted), labelled(3, hrelease.StatusDeployed, digestA, OutcomeProven)}, 3, false},
		{"old pipeline only", history{oldRec(1, hrelease.StatusSuperseded, "t1"), oldRec(2, hrelease.StatusDeployed, "t2")}, 2, false},
		{"a first install that failed", history{labelled(1, hrelease.StatusFailed, digestA, OutcomeFailed)}, 0, true},
		{"first installs interrupted and failed", history{labelled(1, hrelease.StatusFailed, digestA, OutcomeInterrupted), labelled(2, hrelease.StatusFailed, digestA, OutcomeFailed)}, 0, true},
		{"a record nobody can classify counts as good", history{described(1, hrelease.StatusSuperseded, digestA, "Upgrade complete"), labelled(2, hrelease.StatusFailed, digestB, OutcomeFailed)}, 0, false},
		{"none", nil, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := 0
			if lg := tc.h.lastGood(); lg != nil {
				got = lg.Version
			}
			assert.Equal(t, got, tc.lastGood)
			assert.Equal(t, tc.h.neverGood(), tc.neverGood)
		})
	}
}

func TestRollbackTarget(t *testing.T) {
	p := func(v int, d string) *hrelease.Release {
		return labelled(v, hrelease.StatusSuperseded, d, OutcomeProven)
	}
	cur := func(v int, d string) *hrelease.Release { return labelled(v, hrelease.StatusDeployed, d, OutcomeProven) }
	digestC := "sha256:" + strings.Repeat("c", 64)
	tests := []struct {
		name     string
		h        history
		revision int
		want     int
		err      string
	}{
		{"the previous good revision", history{p(1, digestA), p(2, digestB), cur(3, digestC)}, 0, 2, ""},
		{"never to a revision killed mid-rollout", history{p(1, digestA), labelled(2, hrelease.StatusSuperseded, digestB, OutcomeInterrupted), cur(3, digestC)}, 0, 1, ""},
		{"skips failed revisions", history{p(1, digestA), labelled(2, hrelease.StatusFailed, digestB, OutcomeFailed), cur(3, digestC)}, 0, 1, ""},
		{"back to the last good after an interrupted run", history{p(1, digestA), labelled(2, hrelease.StatusPendingUpgrade, digestB, OutcomePending)}, 0, 1, ""},
		{"skips a good revision that runs what runs now", history{p(1, digestA), p(2, digestB), cur(3, digestB)}, 0, 1, ""},
		{"given revision", history{p(1, digestA), cur(2, digestB)}, 1, 1, ""},
		{"given revision never proven", history{p(1, digestA), labelled(2, hrelease.StatusSuperseded, digestB, OutcomeInterrupted), cur(3, digestC)}, 2, 0,
			"revision 2 of release web is interrupted (superseded): roll back to one that served (1 and 3)"},
		{"unknown revision", history{cur(1, digestA)}, 7, 0, "has no revision 7 (kept: 1): pick one of those"},
		{"nothing earlier", history{cur(1, digestA)}, 0, 0, "no good revision before 1 that runs something else"},
		{"nothing ever served", history{labelled(1, hrelease.StatusFailed, digestA, OutcomeFailed)}, 0, 0, "no revision of release web ever completed its rollout"},
		{"no history", nil, 0, 0, "the release has no history"},
		{"the old pipeline's revision is a target like any", history{oldRec(1, hrelease.StatusSuperseded, "t1"), cur(2, digestA)}, 0, 1, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.h.rollbackTarget(tc.revision)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, got.Version, tc.want)
		})
	}
}

func TestOldRevisionRefused(t *testing.T) {
	h := history{oldRec(1, hrelease.StatusSuperseded, "t1"), oldRec(2, hrelease.StatusSuperseded, "t2"), rec(3, hrelease.StatusDeployed, digestA)}
	err := oldRevisionRefused(h.get(2), h, nil)
	assert.ErrorIs(t, err, ErrOldPipelineRevision)
	assert.ErrorContains(t, err, `revision 2 of release web was written by the old pipeline (image tag "t2", no digest; 4 values given with -f and --set, which may hold secrets), and no takeover record says what it ran`)
	assert.ErrorContains(t, err, "no other good revision ringg-ci wrote is kept to roll back to")
	assert.Assert(t, !strings.Contains(err.Error(), "sk-not-a-real-key"), "the error shows no value")
	err = oldRevisionRefused(h.get(2), h, &TakeoverRecord{Revision: 2, Missing: "its pods did not run one known digest (a, b)"})
	assert.ErrorContains(t, err, "its takeover record is incomplete: its pods did not run one known digest (a, b)")
}

func TestCheckOwner(t *testing.T) {
	stable, _ := targets.Get(targets.Stable)
	staging, _ := targets.Get(targets.Staging)
	staged := labelled(1, hrelease.StatusDeployed, digestA, OutcomeProven)
	staged.Labels[LabelTarget] = string(targets.Stable)
	unlabelled := rec(1, hrelease.StatusDeployed, digestA)
	unlabelled.Manifest = "kind: Deployment\napiVersion: apps/v1\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: " + stable.Image + "@" + digestA + "\n"
	wantStaging := fingerprint{Repository: staging.Image}
	tests := []struct {
		name string
		h    history
		t    targets.Target
		want fingerprint
		err  string
	}{
		{"its own", history{staged}, stable, fingerprint{}, ""},
		{"another target's by label", history{staged}, staging, wantStaging,
			"release belongs to another target: release dv-pipecat in namespace default of context prod (https://1.2.3.4) belongs to target stable (revision 1 says so), not staging"},
		{"another target's by fingerprint", history{unlabelled}, staging, wantStaging,
			"does not look like staging's: it runs images from " + stable.Image + ", the target deploys " + staging.Image},
		{"unlabelled and alike", history{unlabelled}, stable, fingerprint{Repository: stable.Image}, ""},
		{"not installed", nil, staging, wantStaging, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.h.checkOwner(tc.t, tc.want, "context prod (https://1.2.3.4)")
			if tc.err == "" {
				assert.NilError(t, err)
				return
			}
			assert.ErrorIs(t, err, ErrWrongTarget)
			assert.ErrorContains(t, err, tc.err)
		})
	}
}

func TestKeptSecretNames(t *testing.T) {
	other := rec(1, hrelease.StatusDeployed, digestB)
	other.Name = "web-canary"
	cfg := memoryConfig(t, rec(1, hrelease.StatusSuperseded, digestA), rec(2, hrelease.StatusDeployed, digestA), other)
	k := fake.NewClientset()
	assert.NilError(t, writeTakeover(context.Background(), k, "default", TakeoverRecord{Release: "web", Revision: 1, Digest: digestA,
		SecretNames: pipeline.SecretNames{AppEnv: "app-old", GCPCreds: "creds-old"}}))
	_, err := k.CoreV1().Secrets("default").Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "unrelated", Labels: map[string]string{labelTakeoverRelease: "x"}}}, metav1.CreateOptions{})
	assert.NilError(t, err)
	keep, err := keptSecretNames(context.Background(), Clients{Kube: k}, cfg, "default")
	assert.NilError(t, err)
	assert.DeepEqual(t, keep, map[string]bool{"app-aaa": true, "creds-aaa": true, "app-bbb": true, "creds-bbb": true, "app-old": true, "creds-old": true})
}
