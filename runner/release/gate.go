package release

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	hrelease "helm.sh/helm/v3/pkg/release"
	"k8s.io/utils/ptr"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/analysis"
	"github.com/ringg/ringg-ci/runner/ops"
)

// ErrUnsettled marks a refusal of a canary that may still settle: its
// rollout is pending or not finished, its pods are not all ready or not yet
// on one digest, or it does not run the expected digest yet. promote
// --wait-until-healthy waits for such a canary instead of refusing it.
var ErrUnsettled = errors.New("canary not settled")

// refusal is a refusal of the gate; settling ones are also ErrUnsettled.
type refusal struct {
	msg      string
	settling bool
}

func (r refusal) Error() string { return ErrRefused.Error() + ": " + r.msg }

func (r refusal) Is(target error) bool {
	return target == ErrRefused || (r.settling && target == ErrUnsettled)
}

// refuse builds a gate refusal that waiting does not change.
func refuse(format string, args ...any) error {
	return refusal{msg: fmt.Sprintf(format, args...)}
}

// unsettled builds a gate refusal of a canary that may still settle.
func unsettled(format string, args ...any) error {
	return refusal{msg: fmt.Sprintf(format, args...), settling: true}
}

// MetricsCheck is the gate's analysis of the canary against stable: the
// queries and how often they are sampled, and the API they run against.
type MetricsCheck struct {
	Metrics targets.Metrics
	Query   analysis.Querier
	// URL names the API for the verdict table.
	URL string
}

// Gate is what the gate checked beyond the canary's first look: how long it
// waited for the canary to settle, the soak, the synthetic calls and the
// metrics.
type Gate struct {
	Waited time.Duration `json:"-"`
	Soak   time.Duration `json:"-"`
	// CallRounds counts the rounds of synthetic calls that passed; Calls is
	// the last round, or the one that failed. Nil when calls are not
	// configured.
	CallRounds int             `json:"callRounds"`
	Calls      *ops.CallReport `json:"calls,omitempty"`
	// Metrics is the last verdict of the metrics, over the soak so far;
	// nil when none are configured (MetricsNote says so).
	Metrics     *analysis.Verdict `json:"metrics,omitempty"`
	MetricsNote string            `json:"metricsNote,omitempty"`
}

// MarshalJSON writes the durations as text.
func (g Gate) MarshalJSON() ([]byte, error) {
	type plain Gate
	return pipeline.MarshalWithDurations(plain(g), map[string]time.Duration{"waited": g.Waited, "soak": g.Soak})
}

// canaryView is one look at the canary: its release's newest record, whether
// the release is the canary target's, and its Deployment and pods.
type canaryView struct {
	target   targets.Target
	ownerErr error
	rel      *hrelease.Release
	workload workload
}

// observeCanary reads the canary once.
func observeCanary(ctx context.Context, c Clients, cfg *action.Configuration, from targets.Target) (canaryView, error) {
	v := canaryView{target: from}
	h, err := readHistory(cfg, from.Release)
	if err != nil {
		return v, err
	}
	v.ownerErr = h.checkOwner(from, fingerprint{}, c.Cluster)
	v.rel = h.last()
	if v.ownerErr != nil || v.rel == nil || originOf(v.rel) == OriginOldPipeline {
		return v, nil
	}
	v.workload, err = observe(ctx, c.Kube, v.rel)
	return v, err
}

// judgeCanary decides from one look whether the canary may be promoted: its
// release is the canary's, deployed and proven, its Deployment available and
// settled, every pod ready on the one digest its record asks for, which is
// the expected one if given. It does no I/O.
func judgeCanary(v canaryView, expected string) (Canary, error) {
	from := v.target
	out := Canary{Release: from.Release}
	if v.ownerErr != nil {
		return out, v.ownerErr
	}
	rel := v.rel
	if rel == nil {
		return out, refuse("canary release %s not found in %s: deploy the canary (push to %s) first", from.Release, from.Namespace, from.Branch)
	}
	out.Revision = rel.Version
	if originOf(rel) == OriginOldPipeline {
		return out, refuse("canary release %s revision %d was written by the old pipeline (image tag %q): deploy the canary with ringg-ci first (push to %s), so that stable gets an image pinned by digest and Secrets named by content",
			from.Release, rel.Version, imageTagOf(rel), from.Branch)
	}
	if o := outcomeOf(rel); rel.Info.Status != hrelease.StatusDeployed || o != OutcomeProven {
		msg := fmt.Sprintf("canary release %s revision %d is %s (its rollout: %s), not deployed and proven: deploy the canary again and wait for it to succeed", from.Release, rel.Version, rel.Info.Status, o)
		if o == OutcomePending || rel.Info.Status.IsPending() {
			return out, unsettled("%s", msg)
		}
		return out, refuse("%s", msg)
	}
	out.SecretNames, out.Commit = secretNamesOf(rel), commitOf(rel)
	want := digestOf(rel)
	w := v.workload
	out.Pods = w.pods
	if w.deployment == nil {
		return out, refuse("canary deployment of release %s not found in %s: deploy the canary again", from.Release, from.Namespace)
	}
	dep := w.deployment
	desired := ptr.Deref(dep.Spec.Replicas, 1)
	if ok, msg := availableCondition(dep); !ok {
		return out, unsettled("canary deployment %s is not Available (%s): %d/%d pods ready", dep.Name, msg, dep.Status.ReadyReplicas, desired)
	}
	digest, one := oneDigest(digests(w.pods))
	switch {
	case len(w.pods) == 0:
		return out, unsettled("canary deployment %s has no pods", dep.Name)
	case !one:
		var each []string
		for _, pod := range w.pods {
			d := pod.Digest
			if d == "" {
				d = "unknown digest"
			}
			each = append(each, pod.Pod+" runs "+d)
		}
		return out, unsettled("canary pods do not all run one known digest (%s): wait for the canary rollout to settle or deploy it again", strings.Join(each, ", "))
	}
	if dep.Status.ObservedGeneration < dep.Generation || dep.Status.UpdatedReplicas != desired || dep.Status.Replicas != desired || dep.Status.ReadyReplicas != desired {
		return out, unsettled("canary deployment %s is still rolling out: %d/%d ready, %d/%d updated: wait for it to finish", dep.Name, dep.Status.ReadyReplicas, desired, dep.Status.UpdatedReplicas, desired)
	}
	var notReady []string
	for _, pod := range w.pods {
		if !pod.Ready {
			notReady = append(notReady, pod.Pod)
		}
	}
	if len(notReady) > 0 {
		return out, unsettled("canary pods not ready: %s", strings.Join(notReady, ", "))
	}
	if want != "" && digest != want {
		return out, unsettled("canary pods run %s but release %s revision %d asks for %s: its rollout is not finished", digest, from.Release, rel.Version, want)
	}
	out.Digest = digest
	if expected != "" && out.Digest != expected {
		return out, unsettled("the canary runs %s, not the expected %s: promote the digest the canary runs, or deploy the expected one to the canary first", out.Digest, expected)
	}
	return out, nil
}

// restarted says which pod restarted or went away between two looks.
func restarted(before, after []PodImage) string {
	was := map[string]int32{}
	for _, p := range before {
		was[p.Pod] = p.Restarts
	}
	for _, p := range after {
		r, ok := was[p.Pod]
		if !ok {
			return fmt.Sprintf("pod %s appeared (a pod was replaced)", p.Pod)
		}
		if p.Restarts > r {
			return fmt.Sprintf("a container of pod %s restarted (%d to %d restarts)", p.Pod, r, p.Restarts)
		}
		delete(was, p.Pod)
	}
	for pod := range was {
		return fmt.Sprintf("pod %s went away", pod)
	}
	return ""
}

// gate judges the canary: one look (waiting up to the plan's HealthyWait
// for a canary that is settling, when it asks to), then the soak, during
// which the canary must not change or restart, every round of synthetic
// calls must pass and every metrics sample must be within its threshold.
func (p *Promote) gate(ctx context.Context, c Clients, cfg *action.Configuration, from targets.Target) (Canary, *Gate, error) {
	g := &Gate{Soak: p.Plan.Soak}
	interval := p.SoakInterval
	if interval <= 0 {
		interval = DefaultSoakInterval
	}
	look := func() (Canary, error) {
		v, err := observeCanary(ctx, c, cfg, from)
		if err != nil {
			return Canary{Release: from.Release, Soak: p.Plan.Soak}, err
		}
		cur, err := judgeCanary(v, p.Plan.ExpectedDigest)
		cur.Soak = p.Plan.Soak
		return cur, err
	}
	first, err := look()
	if wait := p.Plan.HealthyWait; wait > 0 && errors.Is(err, ErrUnsettled) {
		start := c.Now()
		c.Logger.Info("canary not settled yet, waiting for it", "release", from.Release, "within", wait, "why", err.Error())
		for errors.Is(err, ErrUnsettled) {
			if c.Now().Sub(start) >= wait {
				return first, g, refuse("the canary did not settle within %s: %s", wait, strings.TrimPrefix(err.Error(), ErrRefused.Error()+": "))
			}
			if err := sleep(ctx, interval); err != nil {
				return first, g, fmt.Errorf("waiting for the canary to settle: %w", err)
			}
			first, err = look()
		}
		g.Waited = c.Now().Sub(start)
	}
	if err != nil {
		return first, g, err
	}
	c.Logger.Info("canary passes the gate, soaking", "release", from.Release, "digest", first.Digest, "soak", p.Plan.Soak,
		"calls", p.Calls != nil, "metrics", p.Metrics != nil && len(p.Metrics.Metrics.Queries) > 0)
	return first, g, p.soak(ctx, c, from, first, g, look)
}

// soak watches the canary for the plan's soak: Kubernetes every
// SoakInterval, rounds of synthetic calls back to back, metrics every
// metrics interval and once more over the whole soak at its end.
func (p *Promote) soak(ctx context.Context, c Clients, from targets.Target, first Canary, g *Gate, look func() (Canary, error)) error {
	soak := p.Plan.Soak
	interval := p.SoakInterval
	if interval <= 0 {
		interval = DefaultSoakInterval
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := c.Now()
	end := start.Add(soak)

	var rounds chan callRound
	if p.Calls != nil {
		rounds = make(chan callRound)
		go p.callRounds(sctx, c, from, func() bool { return c.Now().Before(end) }, rounds)
	}
	metrics, every := p.metricsPlan(g, from, soak)
	nextLook, nextMetrics := start.Add(interval), start.Add(every)
	for {
		now := c.Now()
		done := !now.Before(end)
		if !done {
			next := earliest(nextLook, end)
			if metrics {
				next = earliest(next, nextMetrics)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("canary soak interrupted: %w", ctx.Err())
			case r, ok := <-rounds:
				if err := p.heard(g, r, ok, &rounds); err != nil {
					return err
				}
				continue
			case <-time.After(next.Sub(now)):
			}
			now = c.Now()
		}
		if done || !now.Before(nextLook) {
			now, err := look()
			if err != nil {
				return fmt.Errorf("during the soak: %w", err)
			}
			if now.Digest != first.Digest || now.Revision != first.Revision {
				return refuse("the canary changed during the soak (revision %d %s, now revision %d %s): promote again once it settles", first.Revision, first.Digest, now.Revision, now.Digest)
			}
			if why := restarted(first.Pods, now.Pods); why != "" {
				return refuse("%s during the %s soak: the canary is not healthy", why, soak)
			}
			nextLook = c.Now().Add(interval)
		}
		if metrics && (done || !c.Now().Before(nextMetrics)) {
			if err := p.judgeMetrics(ctx, from, analysis.Window{Start: start, End: c.Now(), Step: every}, g); err != nil {
				return err
			}
			nextMetrics = c.Now().Add(every)
		}
		if done {
			break
		}
	}
	// The round of calls under way when the soak ended is waited for.
	for rounds != nil {
		select {
		case <-ctx.Done():
			return fmt.Errorf("canary soak interrupted: %w", ctx.Err())
		case r, ok := <-rounds:
			if err := p.heard(g, r, ok, &rounds); err != nil {
				return err
			}
		}
	}
	return nil
}

// callRound is one round of synthetic calls on every canary pod.
type callRound struct {
	n      int
	report ops.CallReport
	err    error
}

// callRounds places rounds of calls one after the other while more() says
// the soak goes on, at least one; it stops at the first failing round.
func (p *Promote) callRounds(ctx context.Context, c Clients, from targets.Target, more func() bool, out chan<- callRound) {
	defer close(out)
	for n := 1; ; n++ {
		rep, err := ops.Calls(ctx, c.Config, c.Kube, from, ops.CallOptions{Calls: *p.Calls, Logger: c.Logger})
		select {
		case out <- callRound{n: n, report: rep, err: err}:
		case <-ctx.Done():
			return
		}
		if err != nil || !more() {
			return
		}
	}
}

// heard records a round of calls; a failed one refuses the canary. The
// channel is set to nil once closed.
func (p *Promote) heard(g *Gate, r callRound, ok bool, rounds *chan callRound) error {
	if !ok {
		*rounds = nil
		return nil
	}
	g.Calls = &r.report
	if r.err != nil {
		return refuse("%v (round %d of synthetic calls during the %s soak)", r.err, r.n, p.Plan.Soak)
	}
	g.CallRounds = r.n
	return nil
}

// metricsPlan says whether the soak samples metrics, and how often.
func (p *Promote) metricsPlan(g *Gate, from targets.Target, soak time.Duration) (bool, time.Duration) {
	if p.Metrics == nil || len(p.Metrics.Metrics.Queries) == 0 {
		g.MetricsNote = fmt.Sprintf("no metrics are configured for %s: judged by Kubernetes and synthetic calls only (docs/operations.md, \"Judging the canary\")", from.Name)
		return false, 0
	}
	every := p.Metrics.Metrics.Interval
	if every <= 0 {
		every = targets.DefaultMetricsInterval
	}
	return true, min(every, max(soak, time.Second))
}

// judgeMetrics samples every query over w, the soak so far, and refuses the
// canary when a sample crossed its threshold.
func (p *Promote) judgeMetrics(ctx context.Context, from targets.Target, w analysis.Window, g *Gate) error {
	m := p.Metrics
	tr := analysis.Tracks{Canary: from.Track, Baseline: p.Plan.To.Track, Namespace: from.Namespace}
	v := analysis.Judge(analysis.Observe(ctx, m.Query, m.Metrics.Queries, tr, w), tr, w)
	v.URL = m.URL
	g.Metrics = &v
	if v.Passed() {
		return nil
	}
	var why []string
	for _, r := range v.Rows {
		switch {
		case r.Passed:
		case r.Note != "":
			why = append(why, fmt.Sprintf("%s: %s", r.Query, r.Note))
		default:
			why = append(why, fmt.Sprintf("%s: canary %s vs stable %s, threshold %s", r.Query, formatFloat(r.Canary), formatFloat(r.Baseline), r.Threshold))
		}
	}
	return refuse("metrics: %d of %d queries failed during the soak (%s); the verdict table is in the summary", len(why), len(v.Rows), strings.Join(why, "; "))
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func formatFloat(f float64) string { return strings.TrimSpace(fmt.Sprintf("%.4g", f)) }

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
