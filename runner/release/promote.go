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
	"github.com/ringg/ringg-ci/runner/chart"
)

// ErrRefused means the canary gate refused a promotion; the error says why.
var ErrRefused = errors.New("promote refused")

// DefaultSoakInterval is how often promote looks at the canary during the
// soak.
const DefaultSoakInterval = 5 * time.Second

// Promote upgrades stable to exactly the image digest and Secret names the
// canary runs, once the canary passes the gate.
type Promote struct {
	Clients Clients
	Plan    pipeline.PromotePlan
	Options Options
	// SoakInterval is how often the canary is looked at during the soak;
	// zero means DefaultSoakInterval.
	SoakInterval time.Duration
}

// Canary is what the gate observed.
type Canary struct {
	Release     string               `json:"release"`
	Revision    int                  `json:"revision"`
	Digest      string               `json:"digest"`
	SecretNames pipeline.SecretNames `json:"secretNames"`
	Pods        []PodImage           `json:"pods"`
	Soak        time.Duration        `json:"soak"`
}

// MarshalJSON writes the soak as text.
func (c Canary) MarshalJSON() ([]byte, error) {
	type plain Canary
	return pipeline.MarshalWithDurations(plain(c), map[string]time.Duration{"soak": c.Soak})
}

// PromoteResult is what promote observed and did: Result for an upgrade,
// Preview for a dry run.
type PromoteResult struct {
	Canary  Canary      `json:"canary"`
	Result  *Result     `json:"result,omitempty"`
	Preview *PlanResult `json:"preview,omitempty"`
}

// Run validates the stable release's values, observes the canary through
// the soak (refusing with ErrRefused and the reason when it is absent, not
// available, runs mixed digests or another digest than expected, or a
// container restarts), then upgrades stable under its lock with its own
// values files plus the canary's digest and Secret names; nothing from the
// canary's values files reaches stable. A dry run shows the change instead.
func (p *Promote) Run(ctx context.Context) (*PromoteResult, error) {
	c, err := p.Clients.withDefaults()
	if err != nil {
		return nil, err
	}
	plan := p.Plan
	from, to := plan.From, plan.To
	what := fmt.Sprintf("promote %s to %s (release %s in %s)", from.Name, to.Name, to.Release, to.Namespace)
	ch, err := chart.Load(plan.ChartDir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	cfg, err := c.helmConfig(from.Namespace)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	p.Options.hearRecords(cfg)
	// Validate and render stable's values before looking at anything: a broken
	// file must not cost the soak, nor must taking stable over from the old
	// pipeline, nor a connection that reaches another target's release. The
	// canary's digest and Secrets replace placeholders later.
	c.Logger = c.Logger.With("target", to.Name)
	job := func(image pipeline.Image, names pipeline.SecretNames) *job {
		return &job{
			c: c, cfg: cfg, target: to,
			desire:  fromChart(ch, plan.ChartDir, plan.ValuesFiles, to, image, func(history) pipeline.SecretNames { return names }),
			timeout: plan.Timeout, holder: plan.Holder, verb: verbPromote, opts: p.Options,
		}
	}
	probe := job(pipeline.Image{Repository: to.Image, Digest: pipeline.PlaceholderDigest}, pipeline.SecretNames{})
	if err := probe.prepare(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	guardErr := probe.guardTakeover(ctx)
	if guardErr != nil && !plan.DryRun {
		return nil, fmt.Errorf("%s: %w", what, guardErr)
	}
	canary, err := p.gate(ctx, c, cfg, from)
	res := &PromoteResult{Canary: canary}
	if err != nil {
		// A dry run shows the takeover's refusals even when the gate stops it.
		return res, fmt.Errorf("%s: %w", what, errors.Join(err, guardErr))
	}
	j := job(pipeline.Image{Repository: to.Image, Digest: canary.Digest}, canary.SecretNames)
	if err := j.prepare(ctx); err != nil {
		return res, fmt.Errorf("%s: %w", what, err)
	}
	if plan.DryRun {
		res.Preview, err = preview(ctx, j, nil)
		if err != nil {
			return res, fmt.Errorf("%s (dry run): %w", what, err)
		}
		res.Preview.Timeout = j.timeout
		return res, nil
	}
	res.Result, err = j.run(ctx)
	return res, err
}

// refuse builds a gate refusal.
func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
}

// gate observes the canary: its release is deployed, its Deployment
// available, every pod Ready and on the one digest the release asks for,
// which is the expected one if given, and no container restarts during the
// soak.
func (p *Promote) gate(ctx context.Context, c Clients, cfg *action.Configuration, from targets.Target) (Canary, error) {
	out := Canary{Release: from.Release, Soak: p.Plan.Soak}
	look := func() (Canary, error) {
		cur := out
		h, err := readHistory(cfg, from.Release)
		if err != nil {
			return cur, err
		}
		if err := h.checkOwner(from, fingerprint{}, c.Cluster); err != nil {
			return cur, err
		}
		rel := h.last()
		if rel == nil {
			return cur, refuse("canary release %s not found in %s: deploy the canary (push to %s) first", from.Release, from.Namespace, from.Branch)
		}
		cur.Revision = rel.Version
		if originOf(rel) == OriginOldPipeline {
			return cur, refuse("canary release %s revision %d was written by the old pipeline (image tag %q): deploy the canary with ringg-ci first (push to %s), so that stable gets an image pinned by digest and Secrets named by content",
				from.Release, rel.Version, imageTagOf(rel), from.Branch)
		}
		if o := outcomeOf(rel); rel.Info.Status != hrelease.StatusDeployed || o != OutcomeProven {
			return cur, refuse("canary release %s revision %d is %s (its rollout: %s), not deployed and proven: deploy the canary again and wait for it to succeed", from.Release, rel.Version, rel.Info.Status, o)
		}
		cur.SecretNames = secretNamesOf(rel)
		want := digestOf(rel)
		w, err := observe(ctx, c.Kube, rel)
		if err != nil {
			return cur, err
		}
		cur.Pods = w.pods
		if w.deployment == nil {
			return cur, refuse("canary deployment of release %s not found in %s: deploy the canary again", from.Release, from.Namespace)
		}
		dep := w.deployment
		desired := ptr.Deref(dep.Spec.Replicas, 1)
		if ok, msg := availableCondition(dep); !ok {
			return cur, refuse("canary deployment %s is not Available (%s): %d/%d pods ready", dep.Name, msg, dep.Status.ReadyReplicas, desired)
		}
		digest, one := oneDigest(digests(w.pods))
		switch {
		case len(w.pods) == 0:
			return cur, refuse("canary deployment %s has no pods", dep.Name)
		case !one:
			var each []string
			for _, pod := range w.pods {
				d := pod.Digest
				if d == "" {
					d = "unknown digest"
				}
				each = append(each, pod.Pod+" runs "+d)
			}
			return cur, refuse("canary pods do not all run one known digest (%s): wait for the canary rollout to settle or deploy it again", strings.Join(each, ", "))
		}
		if dep.Status.ObservedGeneration < dep.Generation || dep.Status.UpdatedReplicas != desired || dep.Status.Replicas != desired || dep.Status.ReadyReplicas != desired {
			return cur, refuse("canary deployment %s is still rolling out: %d/%d ready, %d/%d updated: wait for it to finish", dep.Name, dep.Status.ReadyReplicas, desired, dep.Status.UpdatedReplicas, desired)
		}
		var notReady []string
		for _, pod := range w.pods {
			if !pod.Ready {
				notReady = append(notReady, pod.Pod)
			}
		}
		if len(notReady) > 0 {
			return cur, refuse("canary pods not ready: %s", strings.Join(notReady, ", "))
		}
		if want != "" && digest != want {
			return cur, refuse("canary pods run %s but release %s revision %d asks for %s: its rollout is not finished", digest, from.Release, rel.Version, want)
		}
		cur.Digest = digest
		if e := p.Plan.ExpectedDigest; e != "" && cur.Digest != e {
			return cur, refuse("the canary runs %s, not the expected %s: promote the digest the canary runs, or deploy the expected one to the canary first", cur.Digest, e)
		}
		return cur, nil
	}

	first, err := look()
	if err != nil {
		return first, err
	}
	interval := p.SoakInterval
	if interval <= 0 {
		interval = DefaultSoakInterval
	}
	start := c.Now()
	c.Logger.Info("canary passes the gate, soaking", "release", from.Release, "digest", first.Digest, "soak", p.Plan.Soak)
	for c.Now().Sub(start) < p.Plan.Soak {
		wait := min(interval, p.Plan.Soak-c.Now().Sub(start))
		select {
		case <-ctx.Done():
			return first, fmt.Errorf("canary soak interrupted: %w", ctx.Err())
		case <-time.After(wait):
		}
		now, err := look()
		if err != nil {
			return now, fmt.Errorf("during the soak: %w", err)
		}
		if now.Digest != first.Digest || now.Revision != first.Revision {
			return now, refuse("the canary changed during the soak (revision %d %s, now revision %d %s): promote again once it settles", first.Revision, first.Digest, now.Revision, now.Digest)
		}
		if why := restarted(first.Pods, now.Pods); why != "" {
			return now, refuse("%s during the %s soak: the canary is not healthy", why, p.Plan.Soak)
		}
	}
	return first, nil
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
