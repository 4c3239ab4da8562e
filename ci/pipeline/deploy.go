package pipeline

import (
	"errors"
	"fmt"
	"time"

	"github.com/ringg/ringg-ci/ci/targets"
)

// DeployInput is what a run passes to deploy (or to plan) a branch.
type DeployInput struct {
	// Branch selects the target.
	Branch    string
	Overrides targets.Overrides
	// ChartDir is the chart's directory.
	ChartDir string
	// Image is repository@sha256:… or a bare digest in the target's repository.
	Image string
	// NewSecrets are the names of the Secret bundle this run applies; nil keeps
	// the names the release has now.
	NewSecrets *SecretNames
	// Timeout overrides the rollout timeout; zero derives it from the rendered
	// Deployment (see RolloutTimeout).
	Timeout time.Duration
	// Holder names this run in the lock (shown to a concurrent run).
	Holder string
	// StandIn says the image is built from the stand-in chatbot
	// (examples/chatbot), which may go to a sandbox or a test registry but
	// never to a target's own repository.
	StandIn bool
	// Commit is the commit the image was built from, recorded with the
	// release (history shows it); empty when unknown.
	Commit string
}

// ErrStandIn refuses the stand-in chatbot for a target's own repository.
var ErrStandIn = errors.New("the stand-in chatbot never goes to a real target")

// DeployPlan upgrades (or installs) one target's release. Its values are
// exactly the chart's values.yaml, ValuesFiles in order, then
// ComputedValues(Image, names) where names are SecretNames or, when Secrets
// is SecretsCurrent, those the release has when the deploy runs.
type DeployPlan struct {
	Target      targets.Target `json:"target"`
	ChartDir    string         `json:"chartDir"`
	ValuesFiles []string       `json:"valuesFiles"`
	Image       Image          `json:"image"`
	Secrets     SecretsSource  `json:"secrets"`
	SecretNames SecretNames    `json:"secretNames"`
	// Timeout is zero when the rollout math over the rendered Deployment decides.
	Timeout    time.Duration `json:"timeout"`
	Holder     string        `json:"holder"`
	MaxHistory int           `json:"maxHistory"`
	// Commit is the commit the image was built from; empty when unknown.
	Commit string `json:"commit,omitempty"`
}

// MarshalJSON writes durations as text ("9m30s").
func (p DeployPlan) MarshalJSON() ([]byte, error) {
	type plain DeployPlan
	return MarshalWithDurations(plain(p), map[string]time.Duration{"timeout": p.Timeout})
}

// NewDeploy builds the plan of a deploy, reporting every problem at once.
func NewDeploy(in DeployInput) (DeployPlan, error) {
	var errs []error
	t, err := targets.ForBranch(in.Branch)
	t, _ = resolve(t, err, in.Overrides, &errs)
	p := DeployPlan{Target: t, ChartDir: in.ChartDir, ValuesFiles: t.ValuesFiles, Timeout: in.Timeout, MaxHistory: MaxHistory, Secrets: SecretsCurrent}
	if err := checkChartDir(in.ChartDir); err != nil {
		errs = append(errs, err)
	}
	img, err := ParseImage(in.Image, t.Image)
	if err != nil {
		errs = append(errs, err)
	} else if t.Image != "" && img.Repository != t.Image {
		errs = append(errs, fmt.Errorf("image %s is not in the repository of target %s (%s): publish to %s or fix the override", img, t.Name, t.Image, t.Image))
	}
	p.Image = img
	if in.StandIn {
		if err := RefuseStandIn(t); err != nil {
			errs = append(errs, err)
		}
	}
	if in.NewSecrets != nil {
		if err := in.NewSecrets.Validate(); err != nil {
			errs = append(errs, err)
		}
		p.Secrets, p.SecretNames = SecretsNew, *in.NewSecrets
	}
	if err := checkTimeout("timeout", in.Timeout); err != nil {
		errs = append(errs, err)
	}
	if in.Commit != "" {
		if err := ValidateCommit(in.Commit); err != nil {
			errs = append(errs, err)
		}
		p.Commit = in.Commit
	}
	p.Holder = shortHolder(in.Holder)
	if err := errors.Join(errs...); err != nil {
		return DeployPlan{}, fmt.Errorf("invalid deploy of branch %q: %w", in.Branch, err)
	}
	return p, nil
}

// RefuseStandIn refuses the stand-in chatbot for t when t's image repository
// is the target's own (no override points it at a sandbox or test registry).
func RefuseStandIn(t targets.Target) error {
	real, err := targets.Get(t.Name)
	if err != nil || t.Image != real.Image {
		return nil
	}
	return fmt.Errorf("%w: the source is the stand-in (examples/chatbot, the module's default), and target %s pushes to %s; "+
		"pass --source with the chatbot's own source: in its repository's workflow `dagger -m github.com/ringg/ringg-ci@<version> call --source . deploy …`, "+
		"on a laptop `--source <the chatbot repository>` (docs/app-repository.md)", ErrStandIn, t.Name, t.Image)
}
