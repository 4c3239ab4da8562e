package pipeline

import (
	"errors"
	"fmt"
	"time"

	"github.com/ringg/ringg-ci/ci/targets"
)

// DefaultSoak is how long promote watches the canary for container restarts.
const DefaultSoak = 2 * time.Minute

// HealthyWait bounds how long promote --wait-until-healthy waits for the
// canary to settle (its rollout proven, every pod ready, the expected
// digest) before its soak starts.
const HealthyWait = 30 * time.Minute

// PromoteInput is what a run passes to promote.
type PromoteInput struct {
	// From is the promoted target; empty means the one target that promotes
	// anywhere (canary).
	From      targets.Name
	Overrides targets.Overrides
	ChartDir  string
	// ExpectedDigest, when set, makes promote refuse a canary running anything
	// else.
	ExpectedDigest string
	// Soak is how long no canary container may restart; zero means DefaultSoak,
	// negative is refused.
	Soak    time.Duration
	Timeout time.Duration
	Holder  string
	// DryRun shows what would change and changes nothing.
	DryRun bool
	// WaitUntilHealthy waits up to HealthyWait for a canary that has not
	// settled yet instead of refusing it; the soak starts once it has.
	WaitUntilHealthy bool
}

// PromotePlan upgrades To with its own values files plus exactly the digest
// and Secret names From runs, after the canary gate passes. Nothing from
// From's values files reaches To.
type PromotePlan struct {
	From           targets.Target `json:"from"`
	To             targets.Target `json:"to"`
	ChartDir       string         `json:"chartDir"`
	ValuesFiles    []string       `json:"valuesFiles"`
	ExpectedDigest string         `json:"expectedDigest,omitempty"`
	Soak           time.Duration  `json:"soak"`
	Timeout        time.Duration  `json:"timeout"`
	Holder         string         `json:"holder"`
	DryRun         bool           `json:"dryRun"`
	MaxHistory     int            `json:"maxHistory"`
	// HealthyWait is how long the gate waits for the canary to settle; zero
	// refuses an unsettled canary at once.
	HealthyWait time.Duration `json:"healthyWait,omitempty"`
}

// MarshalJSON writes durations as text.
func (p PromotePlan) MarshalJSON() ([]byte, error) {
	type plain PromotePlan
	return MarshalWithDurations(plain(p), map[string]time.Duration{"soak": p.Soak, "timeout": p.Timeout, "healthyWait": p.HealthyWait})
}

// NewPromote builds the plan of a promotion, reporting every problem at once.
func NewPromote(in PromoteInput) (PromotePlan, error) {
	var errs []error
	from, to, err := promotion(in.From, in.Overrides)
	if err != nil {
		errs = append(errs, err)
	}
	p := PromotePlan{From: from, To: to, ChartDir: in.ChartDir, ValuesFiles: to.ValuesFiles, ExpectedDigest: in.ExpectedDigest,
		Soak: in.Soak, Timeout: in.Timeout, DryRun: in.DryRun, MaxHistory: MaxHistory}
	if p.Soak == 0 {
		p.Soak = DefaultSoak
	}
	if in.WaitUntilHealthy {
		p.HealthyWait = HealthyWait
	}
	if err := checkChartDir(in.ChartDir); err != nil {
		errs = append(errs, err)
	}
	if in.ExpectedDigest != "" {
		if err := ValidateDigest(in.ExpectedDigest); err != nil {
			errs = append(errs, fmt.Errorf("expected digest: %w", err))
		}
	}
	if err := checkTimeout("soak", in.Soak); err != nil {
		errs = append(errs, err)
	}
	if err := checkTimeout("timeout", in.Timeout); err != nil {
		errs = append(errs, err)
	}
	p.Holder = shortHolder(in.Holder)
	if err := errors.Join(errs...); err != nil {
		return PromotePlan{}, fmt.Errorf("invalid promote: %w", err)
	}
	return p, nil
}

// promotion resolves the promoted target and its destination, with overrides
// applied to both: they share a cluster, namespace and repository.
func promotion(name targets.Name, o targets.Overrides) (from, to targets.Target, err error) {
	if name == "" {
		for _, t := range targets.All() {
			if t.PromotesTo != "" {
				name = t.Name
				break
			}
		}
	}
	if from, err = targets.Get(name); err != nil {
		return from, to, err
	}
	from = from.With(o)
	if from.PromotesTo == "" {
		return from, to, fmt.Errorf("target %s is not promoted anywhere: promote the canary", from.Name)
	}
	if to, err = targets.Get(from.PromotesTo); err != nil {
		return from, to, err
	}
	to = to.With(o)
	errs := []error{from.Validate(), to.Validate()}
	if from.Cluster != to.Cluster || from.Namespace != to.Namespace {
		errs = append(errs, fmt.Errorf("targets %s and %s are in different clusters or namespaces: promote reads one and upgrades the other through one connection", from.Name, to.Name))
	}
	if from.Image != to.Image {
		errs = append(errs, fmt.Errorf("targets %s (%s) and %s (%s) use different image repositories: the promoted digest must exist where %s pulls", from.Name, from.Image, to.Name, to.Image, to.Name))
	}
	return from, to, errors.Join(errs...)
}
