package pipeline

import (
	"errors"
	"fmt"

	"github.com/ringg/ringg-ci/ci/targets"
)

// TakeoverInput is what a run passes to finish taking a release over from
// the old pipeline.
type TakeoverInput struct {
	Target    targets.Name
	Overrides targets.Overrides
	// ChartDir, when set, names the values of the old records that the
	// chart has no place for (the old workflow's --set secrets).
	ChartDir string
	// DeleteOldRecords deletes the old pipeline's revisions; without it the
	// run only reports (a dry run).
	DeleteOldRecords bool
	Holder           string
}

// TakeoverPlan reports how far a release was taken over from the old
// pipeline and, when DeleteOldRecords is set and ringg-ci's revision is the
// deployed one, deletes the revisions the old pipeline wrote: their values,
// and the manifests rendered from them, hold the secrets its workflow passed
// with --set.
type TakeoverPlan struct {
	Target           targets.Target `json:"target"`
	ChartDir         string         `json:"chartDir,omitempty"`
	DeleteOldRecords bool           `json:"deleteOldRecords"`
	Holder           string         `json:"holder"`
}

// NewTakeover builds the plan, reporting every problem at once.
func NewTakeover(in TakeoverInput) (TakeoverPlan, error) {
	var errs []error
	t, err := targets.Get(in.Target)
	t, _ = resolve(t, err, in.Overrides, &errs)
	p := TakeoverPlan{Target: t, ChartDir: in.ChartDir, DeleteOldRecords: in.DeleteOldRecords, Holder: shortHolder(in.Holder)}
	if err := errors.Join(errs...); err != nil {
		return TakeoverPlan{}, fmt.Errorf("invalid takeover of %q: %w", in.Target, err)
	}
	return p, nil
}
