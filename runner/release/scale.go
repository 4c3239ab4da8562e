package release

import (
	"context"
	"fmt"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/lock"
	"github.com/ringg/ringg-ci/runner/ops"
)

// ErrScaleRefused means a manual scale was refused; nothing changed.
var ErrScaleRefused = ops.ErrRefused

// Scale sets a target's replica count by hand, under the release's lock.
type Scale struct {
	Clients  Clients
	Target   targets.Target
	Replicas int
	// Force allows a cut of more than a quarter of the pods in one step.
	Force   bool
	Holder  string
	Options Options
	Scale   ops.ScaleOptions
}

// Run refuses a release that belongs to another target or whose newest
// revision never served (an interrupted or failed run: roll back or deploy
// first), a count below the PodDisruptionBudget's floor, and a cut of more
// than a quarter without Force; then scales with the lock held, so that no
// deploy or rollback runs meanwhile.
func (s *Scale) Run(ctx context.Context) (ops.ScaleResult, error) {
	t := s.Target
	what := fmt.Sprintf("scale %s (release %s in %s) to %d", t.Name, t.Release, t.Namespace, s.Replicas)
	c, err := s.Clients.withDefaults()
	if err != nil {
		return ops.ScaleResult{}, err
	}
	cfg, err := c.helmConfig(t.Namespace)
	if err != nil {
		return ops.ScaleResult{}, fmt.Errorf("%s: %w", what, err)
	}
	s.Options.hearRecords(cfg)
	held, unlock, err := takeLock(ctx, c, lock.Options{Namespace: t.Namespace, Release: t.Release, Holder: s.Holder, TTL: s.Options.LockTTL})
	if err != nil {
		return ops.ScaleResult{}, fmt.Errorf("%s: %w", what, err)
	}
	defer unlock()
	s.Options.step(StepLocked)
	h, err := readHistory(cfg, t.Release)
	if err != nil {
		return ops.ScaleResult{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := h.checkOwner(t, fingerprint{}, c.Cluster); err != nil {
		return ops.ScaleResult{}, fmt.Errorf("%s: %w", what, err)
	}
	rel := h.last()
	if rel == nil {
		return ops.ScaleResult{}, fmt.Errorf("%s: %w: release %s is not installed: deploy %s first", what, ErrScaleRefused, t.Release, t.Name)
	}
	if !good(rel) {
		return ops.ScaleResult{}, fmt.Errorf("%s: %w: revision %d of release %s is %s (%s), not a revision that served: roll back or deploy first",
			what, ErrScaleRefused, rel.Version, t.Release, outcomeOf(rel), rel.Info.Status)
	}
	live, err := c.Kube.AppsV1().Deployments(t.Namespace).Get(ctx, t.Release, metav1.GetOptions{})
	if err != nil {
		return ops.ScaleResult{}, fmt.Errorf("%s: read deployment %s: %w", what, t.Release, err)
	}
	current := ptr.Deref(live.Spec.Replicas, 1)
	var chartReplicas int32
	if dep := manifestDeployment(rel.Manifest); dep != nil {
		chartReplicas = int32(rolloutParams(dep).Replicas)
	}
	if err := checkScale(current, int32(s.Replicas), chartReplicas, pdbOf(rel.Manifest), s.Force); err != nil {
		return ops.ScaleResult{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := held.Check(); err != nil {
		return ops.ScaleResult{}, fmt.Errorf("%s: %w", what, err)
	}
	opts := s.Scale
	opts.Logger = c.Logger
	res, err := ops.Scale(ctx, c.Kube, t, s.Replicas, opts)
	if err == nil {
		s.Options.step(StepScaled)
	}
	return res, err
}

// checkScale decides whether a manual change from current to want replicas
// may go ahead: never below the floor the release's PodDisruptionBudget
// keeps (of the chart's count), and a cut of more than a quarter of the pods
// in one step only with force (a typo of 6 for 60).
func checkScale(current, want, chartReplicas int32, pdb *policyv1.PodDisruptionBudget, force bool) error {
	if pdb != nil && chartReplicas > 0 {
		if floor, ok := pdbFloor(pdb, chartReplicas); ok && want < floor {
			return fmt.Errorf("%w: %d is below the floor of %d its PodDisruptionBudget %s keeps of %d pods: scale to %d or more, or change the PodDisruptionBudget in the values file and deploy",
				ErrScaleRefused, want, floor, pdb.Name, chartReplicas, floor)
		}
	}
	if cut := current - want; cut > 0 && 4*cut > current && !force {
		return fmt.Errorf("%w: going from %d to %d removes %d pods, more than a quarter at once: pass --force if that is what you mean",
			ErrScaleRefused, current, want, cut)
	}
	return nil
}

// pdbFloor is how many of replicas pods a PodDisruptionBudget keeps, as the
// disruption controller computes it (percentages round up).
func pdbFloor(pdb *policyv1.PodDisruptionBudget, replicas int32) (int32, bool) {
	switch {
	case pdb.Spec.MinAvailable != nil:
		v, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, int(replicas), true)
		return int32(v), err == nil
	case pdb.Spec.MaxUnavailable != nil:
		v, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, int(replicas), true)
		return max(replicas-int32(v), 0), err == nil
	}
	return 0, false
}

// pdbOf reads the PodDisruptionBudget of a release record's manifest.
func pdbOf(manifest string) *policyv1.PodDisruptionBudget {
	for _, o := range objects(manifest) {
		if o.kind != "PodDisruptionBudget" {
			continue
		}
		var pdb policyv1.PodDisruptionBudget
		if yaml.Unmarshal([]byte(o.yaml), &pdb) == nil {
			return &pdb
		}
	}
	return nil
}
