package integration

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/analysis"
	"github.com/ringg/ringg-ci/runner/release"
	"github.com/ringg/ringg-ci/testcluster/promserver"
)

// The canary judged by what callers see (issue 23), on the test cluster:
// its fake kubelet runs the stand-in chatbot's own server behind every
// pod's port, so synthetic calls go through the real API server's
// port-forward to the code the stand-in's image runs; the metrics come from
// a real Prometheus on series the test writes.

// heldCalls is a synthetic call that only has to stay open for hold.
func heldCalls(hold time.Duration) *targets.Calls {
	return &targets.Calls{Path: "/pc/v1/ws", Send: "ping", Expect: `"type":"echo"`, Hold: hold}
}

// faultyChart is the chart with the stand-in switched to close every call
// after, while its health check answers 200.
func faultyChart(t *testing.T, after string) string {
	t.Helper()
	return chartWithValues(t, "values-canary.yaml", "    value: pipecat-canary\n",
		"    value: pipecat-canary\n  - name: CLOSE_CALLS_AFTER_SECONDS\n    value: \""+after+"\"\n")
}

// deployCanary deploys the canary with the chart in dir (chartDir when
// empty), placing calls after the rollout when calls is set.
func (e *relEnv) deployCanary(d, dir string, calls *targets.Calls) (*release.Result, error) {
	e.t.Helper()
	p := e.canaryPlan(d, nil)
	p.Commit = "c0ffee" + strings.Repeat(d[len(d)-1:], 34)
	if dir != "" {
		p.ChartDir = dir
	}
	return (&release.Deploy{Clients: e.clients, Plan: p, Options: release.Options{}, Calls: calls}).Run(context.Background())
}

// promoteJudged promotes with the gate's calls and metrics.
func (e *relEnv) promoteJudged(in pipeline.PromoteInput, calls *targets.Calls, metrics *release.MetricsCheck) (*release.PromoteResult, error) {
	e.t.Helper()
	in.Overrides, in.ChartDir, in.Timeout, in.Holder = e.overrides(), chartDir, 90*time.Second, "test "+e.t.Name()
	plan, err := pipeline.NewPromote(in)
	assert.NilError(e.t, err)
	p := release.Promote{Clients: e.clients, Plan: plan, SoakInterval: 200 * time.Millisecond, Calls: calls, Metrics: metrics}
	return p.Run(context.Background())
}

// stableRevisions is how many records stable's release has.
func (e *relEnv) stableRevisions() int { return len(e.history("dv-pipecat")) }

// TestCanaryDeployPlacesCalls: a deploy places a call on each canary pod
// once the rollout is done, and records the commit and who deployed.
func TestCanaryDeployPlacesCalls(t *testing.T) {
	e := newRelEnv(t)
	res, err := e.deployCanary(digest("a"), "", heldCalls(300*time.Millisecond))
	assert.NilError(t, err)
	assert.Assert(t, res.Calls != nil)
	assert.Equal(t, len(res.Calls.Pods), 2)
	for _, p := range res.Calls.Pods {
		assert.Assert(t, p.Passed(), "%s: %s", p.Pod, p.Error)
		assert.Assert(t, p.FirstAnswer > 0, "the stand-in answered the first message")
		assert.Equal(t, p.Held, 300*time.Millisecond)
	}
	assert.Assert(t, strings.Contains(res.Summary(), "| synthetic calls | 2/2 pods held 300ms on ws `:8765/pc/v1/ws` |"), res.Summary())
	rel := e.history("dv-pipecat-canary")[0]
	assert.Equal(t, rel.Labels[release.LabelCommit], "c0ffee"+strings.Repeat("1", 34))
	assert.Equal(t, rel.Labels[release.LabelBy], "test_TestCanaryDeployPlacesCalls")
	assert.Assert(t, rel.Labels[release.LabelSettled] != "")
}

// TestCanaryDeployWhoseCallsFailIsRolledBack: a canary that answers health
// but closes calls is not proven: the deploy returns the canary to its last
// good revision, naming each pod and why.
func TestCanaryDeployWhoseCallsFailIsRolledBack(t *testing.T) {
	e := newRelEnv(t)
	calls := heldCalls(time.Second)
	_, err := e.deployCanary(digest("a"), "", calls)
	assert.NilError(t, err)
	res, err := e.deployCanary(digest("b"), faultyChart(t, "0.2"), calls)
	assert.Assert(t, errors.Is(err, release.ErrRolledBack), "%v", err)
	assert.ErrorContains(t, err, "synthetic call failed on 2 of 2 pods of canary")
	assert.ErrorContains(t, err, `closing calls early (CLOSE_CALLS_AFTER_SECONDS)`)
	for _, p := range res.Calls.Pods {
		assert.Assert(t, p.ClosedEarly && p.CloseCode == 1011, "%+v", p)
	}
	assert.DeepEqual(t, statuses(e.history("dv-pipecat-canary")), []string{"1:superseded/proven", "2:superseded/failed", "3:deployed/proven"})
	e.assertServes("dv-pipecat-canary", digest("a"))
}

// TestPromoteRefusedWhenCallsCloseEarly: a canary whose calls break after a
// moment passes a short call at deploy and Kubernetes' checks, and is
// refused by the gate's longer calls with the reason per pod; stable is not
// touched.
func TestPromoteRefusedWhenCallsCloseEarly(t *testing.T) {
	e := newRelEnv(t)
	_, err := e.deployCanary(digest("a"), faultyChart(t, "0.5"), heldCalls(200*time.Millisecond))
	assert.NilError(t, err)
	res, err := e.promoteJudged(pipeline.PromoteInput{Soak: 2 * time.Second}, heldCalls(2*time.Second), nil)
	assert.Assert(t, errors.Is(err, release.ErrRefused), "%v", err)
	assert.ErrorContains(t, err, "synthetic call failed on 2 of 2 pods of canary in "+e.ns)
	for _, pod := range res.Canary.Pods {
		assert.ErrorContains(t, err, pod.Pod+": closed early, after")
	}
	assert.ErrorContains(t, err, `of the 2s hold (close 1011 "closing calls early (CLOSE_CALLS_AFTER_SECONDS)")`)
	assert.ErrorContains(t, err, "round 1 of synthetic calls during the 2s soak")
	assert.Equal(t, res.Refusal, strings.TrimPrefix(err.Error(), "promote canary to stable (release dv-pipecat in "+e.ns+"): "))
	assert.Assert(t, strings.Contains(res.Summary(), "FAILED: closed early"), res.Summary())
	assert.Equal(t, e.stableRevisions(), 0, "stable was not installed")
}

// failureRateQuery compares the canary's call failure rate with stable's.
var failureRateQuery = targets.Query{
	Name: "call failure rate", MaxRatio: 2,
	Expr: `sum(rate(calls_failed_total{namespace="$namespace",version="$track"}[1m])) / sum(rate(calls_total{namespace="$namespace",version="$track"}[1m]))`,
}

// prometheusFor serves call counters of ns's tracks around now: 30 calls a
// second on stable, one on the canary, failing at the given rates.
func prometheusFor(t *testing.T, ns string, canaryFails, stableFails float64) *release.MetricsCheck {
	t.Helper()
	promserver.Require(t)
	now := time.Now()
	from, to := now.Add(-20*time.Minute), now.Add(20*time.Minute)
	counter := func(name, track string, perSecond float64) promserver.Series {
		return promserver.Series{Name: name, Labels: map[string]string{"namespace": ns, "version": track},
			Points: promserver.Every(from, to, 5*time.Second, func(at time.Time) float64 { return perSecond * at.Sub(from).Seconds() })}
	}
	prom, err := promserver.Start(t.Context(), t.TempDir(), []promserver.Series{
		counter("calls_total", "canary", 1), counter("calls_total", "stable", 30),
		counter("calls_failed_total", "canary", canaryFails), counter("calls_failed_total", "stable", 30*stableFails),
	})
	assert.NilError(t, err)
	t.Cleanup(prom.Stop)
	return &release.MetricsCheck{
		Metrics: targets.Metrics{Interval: time.Second, Queries: []targets.Query{failureRateQuery}},
		Query:   analysis.NewClient(t.Context(), prom.URL(), nil, ""), URL: prom.URL(),
	}
}

// TestPromoteRefusedWhenAMetricCrossesItsThreshold: the canary fails five
// times as many calls as stable in the recorded series; the gate refuses it
// with the verdict table, and stable is not touched.
func TestPromoteRefusedWhenAMetricCrossesItsThreshold(t *testing.T) {
	e := newRelEnv(t)
	metrics := prometheusFor(t, e.ns, 0.05, 0.01)
	_, err := e.deployCanary(digest("a"), "", nil)
	assert.NilError(t, err)
	res, err := e.promoteJudged(pipeline.PromoteInput{Soak: 2 * time.Second}, heldCalls(500*time.Millisecond), metrics)
	assert.Assert(t, errors.Is(err, release.ErrRefused), "%v", err)
	assert.ErrorContains(t, err, "metrics: 1 of 1 queries failed during the soak (call failure rate: canary 0.05 vs stable 0.01, threshold <= 2 x stable)")
	v := res.Gate.Metrics
	assert.Assert(t, v != nil && !v.Passed())
	assert.Equal(t, v.Rows[0].Query, "call failure rate")
	assert.Assert(t, v.Rows[0].Failed >= 1)
	assert.Assert(t, strings.Contains(res.Summary(), "| call failure rate | 0.05 | 0.01 | <= 2 x stable | FAIL:"), res.Summary())
	assert.Equal(t, e.stableRevisions(), 0, "stable was not installed")
}

// TestPromoteWaitUntilHealthy: promote is asked for a digest whose canary
// deploy is still on its way; --wait-until-healthy waits for it, soaks with
// calls and metrics that pass, and promotes exactly that digest, recording
// what the gate checked.
func TestPromoteWaitUntilHealthy(t *testing.T) {
	e := newRelEnv(t)
	metrics := prometheusFor(t, e.ns, 0.011, 0.01)
	_, err := e.deployCanary(digest("a"), "", nil)
	assert.NilError(t, err)
	deployed := make(chan error, 1)
	go func() {
		_, err := e.deployCanary(digest("b"), "", nil)
		deployed <- err
	}()
	res, err := e.promoteJudged(pipeline.PromoteInput{ExpectedDigest: digest("b"), Soak: 2 * time.Second, WaitUntilHealthy: true},
		heldCalls(500*time.Millisecond), metrics)
	assert.NilError(t, err)
	assert.NilError(t, <-deployed)
	assert.Equal(t, res.Result.Digest, digest("b"))
	assert.Assert(t, res.Gate.CallRounds >= 2, "calls through the whole soak: %d rounds", res.Gate.CallRounds)
	assert.Assert(t, res.Gate.Metrics.Passed())
	rel := e.history("dv-pipecat")[0]
	assert.Equal(t, rel.Labels[release.LabelGate], release.GateLabel(res.Gate))
	assert.Assert(t, strings.HasPrefix(rel.Labels[release.LabelGate], "soak-2s.calls-"), rel.Labels[release.LabelGate])
	assert.Equal(t, rel.Labels[release.LabelCommit], "c0ffee"+strings.Repeat("2", 34), "stable records the canary's commit")
	e.assertServes("dv-pipecat", digest("b"))
}

// TestPromoteWaitUntilHealthyGivesUp: a canary that never runs the expected
// digest is refused once the wait is over, saying what it waited for.
func TestPromoteWaitUntilHealthyGivesUp(t *testing.T) {
	e := newRelEnv(t)
	_, err := e.deployCanary(digest("a"), "", nil)
	assert.NilError(t, err)
	in := pipeline.PromoteInput{Overrides: e.overrides(), ChartDir: chartDir, ExpectedDigest: digest("z"), WaitUntilHealthy: true, Soak: time.Second}
	plan, err := pipeline.NewPromote(in)
	assert.NilError(t, err)
	plan.HealthyWait = time.Second
	_, err = (&release.Promote{Clients: e.clients, Plan: plan, SoakInterval: 100 * time.Millisecond}).Run(context.Background())
	assert.Assert(t, errors.Is(err, release.ErrRefused) && !errors.Is(err, release.ErrUnsettled), "%v", err)
	assert.ErrorContains(t, err, "the canary did not settle within 1s: the canary runs "+digest("a")+", not the expected "+digest("z"))
}

// TestHistoryOfDeployPromoteRollback: a canary deployed, promoted, deployed
// again and promoted, a canary deploy that failed, and stable rolled back:
// history shows each revision with its outcome, and the measures follow.
func TestHistoryOfDeployPromoteRollback(t *testing.T) {
	e := newRelEnv(t)
	calls := heldCalls(200 * time.Millisecond)
	promote := func() {
		_, err := e.promoteJudged(pipeline.PromoteInput{Soak: 300 * time.Millisecond}, calls, nil)
		assert.NilError(t, err)
	}
	_, err := e.deployCanary(digest("a"), "", calls)
	assert.NilError(t, err)
	promote()
	_, err = e.deployCanary(digest("b"), "", calls)
	assert.NilError(t, err)
	promote()
	_, err = e.deployCanary(digest("c"), faultyChart(t, "0.05"), calls)
	assert.Assert(t, errors.Is(err, release.ErrRolledBack), "%v", err)
	plan, err := pipeline.NewRollback(pipeline.RollbackInput{Target: targets.Stable, Overrides: e.overrides(), ChartDir: chartDir, Timeout: 90 * time.Second, Holder: "on call"})
	assert.NilError(t, err)
	_, err = (&release.Rollback{Clients: e.clients, Plan: plan}).Run(context.Background())
	assert.NilError(t, err)

	sp, err := pipeline.NewStatus([]targets.Name{targets.Canary, targets.Stable}, e.overrides())
	assert.NilError(t, err)
	rep, err := (&release.History{Clients: e.clients, Plan: sp, Since: 24 * time.Hour}).Run(context.Background())
	assert.NilError(t, err)
	type row struct {
		Rev              int
		Verb, Outcome    string
		Digest, Commit   string
		UndoneBy         int
		HasGate, Timed   bool
		HolderIsThisTest bool
	}
	rows := func(th release.TargetHistory) []row {
		var out []row
		for _, r := range th.Revisions {
			out = append(out, row{Rev: r.Revision, Verb: r.Verb, Outcome: r.Outcome, Digest: r.Digest[len(r.Digest)-2:], Commit: r.Commit[:7], UndoneBy: r.UndoneBy,
				HasGate: r.Gate != "", Timed: r.Rollout > 0, HolderIsThisTest: strings.Contains(r.Holder, t.Name())})
		}
		return out
	}
	canary, stable := rep.Targets[0], rep.Targets[1]
	assert.DeepEqual(t, rows(canary), []row{
		{Rev: 4, Verb: "restore", Outcome: "proven", Digest: "62", Commit: "c0ffee2", Timed: true, HolderIsThisTest: true},
		{Rev: 3, Verb: "deploy", Outcome: "failed", Digest: "63", Commit: "c0ffee3", UndoneBy: 4, Timed: true, HolderIsThisTest: true},
		{Rev: 2, Verb: "deploy", Outcome: "proven", Digest: "62", Commit: "c0ffee2", Timed: true, HolderIsThisTest: true},
		{Rev: 1, Verb: "deploy", Outcome: "proven", Digest: "61", Commit: "c0ffee1", Timed: true, HolderIsThisTest: true},
	})
	assert.DeepEqual(t, rows(stable), []row{
		{Rev: 3, Verb: "rollback", Outcome: "proven", Digest: "61", Commit: "c0ffee1", Timed: true},
		{Rev: 2, Verb: "promote", Outcome: "rolled back", Digest: "62", Commit: "c0ffee2", UndoneBy: 3, HasGate: true, Timed: true, HolderIsThisTest: true},
		{Rev: 1, Verb: "promote", Outcome: "proven", Digest: "61", Commit: "c0ffee1", HasGate: true, Timed: true, HolderIsThisTest: true},
	})
	assert.Equal(t, canary.Measures.Changes, 3)
	assert.Equal(t, canary.Measures.Failed, 1)
	assert.Equal(t, len(canary.Measures.Restores), 1)
	assert.Equal(t, stable.Measures.Changes, 2)
	assert.Equal(t, stable.Measures.Failed, 1, "the promote that was rolled back")
	assert.Equal(t, stable.Measures.ChangeFailureRate, 0.5)
	assert.Equal(t, len(stable.Measures.Restores), 1)

	text := rep.String()
	for _, want := range []string{"rolled back (undone by 3)", "failed (undone by 4)", "rounds of calls passed, no metrics configured",
		"change failure rate 50% (1 failed or rolled back)", "not measured: lead time for changes"} {
		assert.Assert(t, strings.Contains(text, want), "%q not in\n%s", want, text)
	}
	b, err := json.Marshal(rep)
	assert.NilError(t, err)
	assert.Assert(t, strings.Contains(string(b), `"outcome":"rolled back"`))
}
