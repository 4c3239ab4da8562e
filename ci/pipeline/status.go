package pipeline

import (
	"errors"
	"fmt"

	"github.com/ringg/ringg-ci/ci/targets"
)

// StatusPlan lists the targets whose state is read; they share a cluster.
type StatusPlan struct {
	Targets []targets.Target `json:"targets"`
}

// NewStatus builds a status plan for the named targets, which must share a
// cluster (one connection reads them all).
func NewStatus(names []targets.Name, o targets.Overrides) (StatusPlan, error) {
	var errs []error
	var p StatusPlan
	if len(names) == 0 {
		return p, errors.New("invalid status: no target given: name one or more of staging, canary, stable")
	}
	for _, n := range names {
		t, err := targets.Get(n)
		t, found := resolve(t, err, o, &errs)
		if !found {
			continue
		}
		if len(p.Targets) > 0 && p.Targets[0].Cluster != t.Cluster {
			errs = append(errs, fmt.Errorf("target %s is in cluster %s, %s in %s: ask for one cluster's targets at a time", t.Name, t.Cluster.Name, p.Targets[0].Name, p.Targets[0].Cluster.Name))
		}
		p.Targets = append(p.Targets, t)
	}
	if err := errors.Join(errs...); err != nil {
		return StatusPlan{}, fmt.Errorf("invalid status: %w", err)
	}
	return p, nil
}
