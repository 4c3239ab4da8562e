package pipeline

import (
	"errors"
	"fmt"
	"time"

	"github.com/ringg/ringg-ci/ci/targets"
)

// RollbackMode says how a rollback chooses what to go back to.
type RollbackMode string

// The rollback modes.
const (
	// ToRevision rolls back to Revision, or to the last revision deployed
	// before the current one.
	ToRevision RollbackMode = "revision"
	// ToPromoted upgrades a promoted target (canary) to the image and Secret
	// names its promotion target (stable) runs, with its own values files.
	ToPromoted RollbackMode = "promoted-image"
)

// RollbackInput is what a run passes to roll back.
type RollbackInput struct {
	Target    targets.Name
	Overrides targets.Overrides
	// Revision to return to; zero means the previous one (or, for a target
	// that promotes to another, that target's image).
	Revision int
	// ChartDir is needed by the ToPromoted mode; the ToRevision mode renders
	// the target's values from it to recognise the target's release, and to
	// return to a revision the old pipeline wrote through its takeover record.
	ChartDir string
	Timeout  time.Duration
	Holder   string
}

// RollbackPlan returns a target to a known good state.
type RollbackPlan struct {
	Target targets.Target `json:"target"`
	Mode   RollbackMode   `json:"mode"`
	// Revision is zero for the previous deployed revision (ToRevision only).
	Revision int `json:"revision,omitempty"`
	// Source is the target whose image a ToPromoted rollback takes.
	Source      *targets.Target `json:"source,omitempty"`
	ChartDir    string          `json:"chartDir,omitempty"`
	ValuesFiles []string        `json:"valuesFiles,omitempty"`
	Timeout     time.Duration   `json:"timeout"`
	Holder      string          `json:"holder"`
	MaxHistory  int             `json:"maxHistory"`
}

// MarshalJSON writes durations as text.
func (p RollbackPlan) MarshalJSON() ([]byte, error) {
	type plain RollbackPlan
	return MarshalWithDurations(plain(p), map[string]time.Duration{"timeout": p.Timeout})
}

// NewRollback builds the plan of a rollback, reporting every problem at once.
func NewRollback(in RollbackInput) (RollbackPlan, error) {
	var errs []error
	t, err := targets.Get(in.Target)
	t, _ = resolve(t, err, in.Overrides, &errs)
	p := RollbackPlan{Target: t, Mode: ToRevision, Revision: in.Revision, Timeout: in.Timeout, MaxHistory: MaxHistory}
	if in.Revision < 0 {
		errs = append(errs, fmt.Errorf("revision %d is negative: pass 0 for the previous revision", in.Revision))
	}
	if in.Revision == 0 && t.PromotesTo != "" {
		p.Mode = ToPromoted
		src, err := targets.Get(t.PromotesTo)
		if err != nil {
			errs = append(errs, err)
		} else {
			src = src.With(in.Overrides)
			p.Source = &src
			if src.Cluster != t.Cluster || src.Namespace != t.Namespace {
				errs = append(errs, fmt.Errorf("targets %s and %s are in different clusters or namespaces: roll %s back to a revision instead", t.Name, src.Name, t.Name))
			}
		}
		if err := checkChartDir(in.ChartDir); err != nil {
			errs = append(errs, fmt.Errorf("rolling %s back to the image %s runs: %w", t.Name, t.PromotesTo, err))
		}
	}
	p.ChartDir, p.ValuesFiles = in.ChartDir, t.ValuesFiles
	if err := checkTimeout("timeout", in.Timeout); err != nil {
		errs = append(errs, err)
	}
	p.Holder = shortHolder(in.Holder)
	if err := errors.Join(errs...); err != nil {
		return RollbackPlan{}, fmt.Errorf("invalid rollback of %q: %w", in.Target, err)
	}
	return p, nil
}
