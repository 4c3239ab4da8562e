package release

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"
	helmtime "helm.sh/helm/v3/pkg/time"

	hrelease "helm.sh/helm/v3/pkg/release"

	"github.com/ringg/ringg-ci/ci/targets"
)

var day0 = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)

// written is a record as ringg-ci writes it: applied at day0+at, its outcome
// decided took later, by holder, from commit.
func written(version int, verb string, o Outcome, status hrelease.Status, digest string, at, took time.Duration) *hrelease.Release {
	r := rec(version, status, digest)
	r.Labels = recordLabels(targets.Stable, verb, o)
	r.Labels[LabelBy] = "github-actions_run_" + strconv.Itoa(100+version)
	r.Labels[LabelCommit] = "c0ffee" + strconv.Itoa(version) + "0123456789abcdef"
	r.Info.LastDeployed = helmtime.Time{Time: day0.Add(at)}
	if o != OutcomePending {
		r.Labels[LabelSettled] = strconv.FormatInt(day0.Add(at+took).UnixMilli(), 10)
	}
	r.Info.Description = verb + " " + digest + " by github-actions run " + strconv.Itoa(100+version) + " by octocat"
	if o == OutcomeFailed {
		r.Info.Description = "rollout failed: a container restarted 3 times"
	}
	return r
}

// TestChronicle reads a stable release's history: an old pipeline's
// revision taken over, promotes proven, one whose rollout failed and was
// restored, one rolled back by hand, one interrupted.
func TestChronicle(t *testing.T) {
	stable, err := targets.Get(targets.Stable)
	assert.NilError(t, err)
	h := history{
		oldRec(1, hrelease.StatusSuperseded, "c0ffee1"),
		written(2, verbPromote, OutcomeProven, hrelease.StatusSuperseded, digestA, 24*time.Hour, 6*time.Minute),
		written(3, verbPromote, OutcomeFailed, hrelease.StatusFailed, digestB, 3*24*time.Hour, 9*time.Minute),
		written(4, verbRestore, OutcomeProven, hrelease.StatusSuperseded, digestA, 3*24*time.Hour+9*time.Minute, 5*time.Minute),
		written(5, verbPromote, OutcomeProven, hrelease.StatusSuperseded, digestB, 5*24*time.Hour, 7*time.Minute),
		written(6, verbRollback, OutcomeProven, hrelease.StatusSuperseded, digestA, 5*24*time.Hour+2*time.Hour, 6*time.Minute),
		written(7, verbPromote, OutcomeInterrupted, hrelease.StatusFailed, digestB, 8*24*time.Hour, time.Hour),
		written(8, verbPromote, OutcomeProven, hrelease.StatusDeployed, digestB, 9*24*time.Hour, 8*time.Minute),
	}
	h[0].Info.LastDeployed = helmtime.Time{Time: day0}
	h[4].Labels[LabelGate] = "soak-600s.calls-60.metrics-3"
	now := day0.Add(10 * 24 * time.Hour)

	all := chronicle(h, stable, now, 0)
	assert.Equal(t, all.Kept, 8)
	assert.Equal(t, len(all.Revisions), 8)
	byRev := map[int]Revision{}
	for _, r := range all.Revisions {
		byRev[r.Revision] = r
	}
	assert.Equal(t, all.Revisions[0].Revision, 8, "newest first")
	assert.Equal(t, byRev[1].Outcome, HistoryProven)
	assert.Equal(t, byRev[1].ImageTag, "c0ffee1")
	assert.Equal(t, byRev[3].Outcome, HistoryFailed)
	assert.Equal(t, byRev[3].UndoneBy, 4)
	assert.Equal(t, byRev[3].Rollout, 9*time.Minute)
	assert.Equal(t, byRev[5].Outcome, HistoryRolledBack)
	assert.Equal(t, byRev[5].UndoneBy, 6)
	assert.Equal(t, byRev[5].Gate, "soak 10m0s, 60 rounds of calls passed, 3 metric queries passed")
	assert.Equal(t, byRev[7].Outcome, HistoryInterrupted)
	assert.Equal(t, byRev[7].Rollout, time.Duration(0), "an interrupted rollout's length is unknown")
	assert.Equal(t, byRev[8].Holder, "github-actions run 108 by octocat", "the proven record's description names the holder in full")
	assert.Equal(t, byRev[3].Holder, "github-actions_run_103", "a failed one keeps it in its label")

	m := all.Measures
	assert.Equal(t, m.Changes, 4, "promotes 2, 3, 5 and 8; 7 was interrupted")
	assert.Equal(t, m.Proven, 2)
	assert.Equal(t, m.Failed, 2)
	assert.Equal(t, m.ChangeFailureRate, 0.5)
	assert.DeepEqual(t, m.Restores, []time.Duration{14 * time.Minute, 2*time.Hour + 6*time.Minute})
	assert.Equal(t, m.TimeToRestore, (14*time.Minute+2*time.Hour+6*time.Minute)/2)
	assert.Equal(t, m.Window, 10*24*time.Hour)
	assert.Equal(t, m.DeploysPerDay, 0.2)

	recent := chronicle(h, stable, now, 4*24*time.Hour)
	assert.Equal(t, len(recent.Revisions), 2, "revisions 7 and 8")
	assert.Equal(t, recent.Measures.Changes, 1)
	assert.Equal(t, recent.Measures.Window, 4*24*time.Hour)

	report := HistoryReport{Cluster: "test", Targets: []TargetHistory{all}}
	golden.Assert(t, report.String(), "history-stable.golden")
	b, err := json.MarshalIndent(HistoryReport{Since: 4 * 24 * time.Hour, Targets: []TargetHistory{recent}}, "", "  ")
	assert.NilError(t, err)
	golden.Assert(t, string(b)+"\n", "history-stable-recent.json.golden")
}

func TestChronicleEmpty(t *testing.T) {
	canary, err := targets.Get(targets.Canary)
	assert.NilError(t, err)
	th := chronicle(nil, canary, day0, 30*24*time.Hour)
	assert.Equal(t, len(th.Revisions), 0)
	assert.Equal(t, th.Measures.Changes, 0)
	golden.Assert(t, HistoryReport{Since: 30 * 24 * time.Hour, Targets: []TargetHistory{th}}.String(), "history-empty.golden")
}

// TestReplacingDropsInheritedLabels: Helm merges the previous record's
// labels into an upgrade's; what this record does not set is dropped
// ("null"), so a rollback does not inherit the gate of the promote before it.
func TestReplacingDropsInheritedLabels(t *testing.T) {
	labels := recordLabels(targets.Stable, verbRollback, OutcomePending)
	labels[LabelCommit] = "c0ffee"
	got := replacing(labels)
	assert.Equal(t, got[LabelCommit], "c0ffee")
	assert.Equal(t, got[LabelGate], "null")
	assert.Equal(t, got[LabelSettled], "null")
	assert.Equal(t, got[LabelVerb], verbRollback)
	_, had := labels[LabelGate]
	assert.Assert(t, !had, "the labels given are not changed")
}
