package release

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	// Calls, when set, are placed on every canary pod round after round
	// through the soak; the command passes the canary target's
	// verification (Plan.From.Verification.Calls).
	Calls *targets.Calls
	// Metrics, when set, compares the canary with stable through the soak.
	Metrics *MetricsCheck
}

// Canary is what the gate observed.
type Canary struct {
	Release     string               `json:"release"`
	Revision    int                  `json:"revision"`
	Digest      string               `json:"digest"`
	SecretNames pipeline.SecretNames `json:"secretNames"`
	Pods        []PodImage           `json:"pods"`
	Soak        time.Duration        `json:"soak"`
	// Commit is the commit the canary's image was built from, when its
	// record says.
	Commit string `json:"commit,omitempty"`
}

// MarshalJSON writes the soak as text.
func (c Canary) MarshalJSON() ([]byte, error) {
	type plain Canary
	return pipeline.MarshalWithDurations(plain(c), map[string]time.Duration{"soak": c.Soak})
}

// PromoteResult is what promote observed and did: Result for an upgrade,
// Preview for a dry run.
type PromoteResult struct {
	Canary Canary `json:"canary"`
	Gate   *Gate  `json:"gate,omitempty"`
	// Refusal is the gate's reason when it refused the canary.
	Refusal string      `json:"refusal,omitempty"`
	Result  *Result     `json:"result,omitempty"`
	Preview *PlanResult `json:"preview,omitempty"`
}

// Run validates the stable release's values, observes the canary through
// the soak (refusing with ErrRefused and the reason when it is absent, not
// available, runs mixed digests or another digest than expected, a
// container restarts, a synthetic call fails or a metric crosses its
// threshold), then upgrades stable under its lock with its own
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
	canary, gate, err := p.gate(ctx, c, cfg, from)
	res := &PromoteResult{Canary: canary, Gate: gate}
	if errors.Is(err, ErrRefused) {
		res.Refusal = err.Error()
	}
	if err != nil {
		// A dry run shows the takeover's refusals even when the gate stops it.
		return res, fmt.Errorf("%s: %w", what, errors.Join(err, guardErr))
	}
	j := job(pipeline.Image{Repository: to.Image, Digest: canary.Digest}, canary.SecretNames)
	j.desire = withExtras(j.desire, recordExtras(canary.Commit, GateLabel(gate)))
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
