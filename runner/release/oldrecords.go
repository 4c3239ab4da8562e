package release

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"helm.sh/helm/v3/pkg/storage/driver"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/chart"
	"github.com/ringg/ringg-ci/runner/lock"
	"github.com/ringg/ringg-ci/runner/secrets"
)

// ErrNotTakenOver means the old pipeline's records cannot go yet: the
// release's deployed revision is still one of them.
var ErrNotTakenOver = errors.New("not taken over yet")

// Takeover reports how far a release was taken over from the old
// pipeline and, when the plan says so, deletes the revisions the old
// pipeline wrote once ringg-ci's revision is the deployed one. Nothing is
// deleted in a dry run (the default).
type Takeover struct {
	Clients Clients
	Plan    pipeline.TakeoverPlan
	Options Options
}

// TakeoverState is what the takeover command found and did.
type TakeoverState struct {
	Target    targets.Name `json:"target"`
	Release   string       `json:"release"`
	Namespace string       `json:"namespace"`
	Installed bool         `json:"installed"`
	// Revision, Status and Origin describe the deployed revision (the last
	// one when none is deployed).
	Revision int    `json:"revision,omitempty"`
	Status   string `json:"status,omitempty"`
	Origin   Origin `json:"origin,omitempty"`
	// TakenOver is true once ringg-ci's revision is the deployed one.
	TakenOver  bool        `json:"takenOver"`
	OldRecords []OldRecord `json:"oldRecords,omitempty"`
	// Deleted are the revisions deleted by this run.
	Deleted []int `json:"deleted,omitempty"`
	DryRun  bool  `json:"dryRun"`
	// FixedSecrets are the old pipeline's fixed-name Secrets and what still
	// reads them.
	FixedSecrets []FixedSecret `json:"fixedSecrets,omitempty"`
	// OldReplicaSets are the release Deployment's ReplicaSets, scaled to
	// zero, that run an image by tag: the old chart's pod templates, whose
	// env holds what the old workflow passed with --set.
	OldReplicaSets []string `json:"oldReplicaSets,omitempty"`
}

// FixedSecret is one of the Secrets the old pipeline wrote with kubectl
// under a fixed name.
type FixedSecret struct {
	Name string `json:"name"`
	// ReadBy lists the Deployments and Pods in the namespace that read it.
	ReadBy []string `json:"readBy,omitempty"`
}

// Summary is the report for a person.
func (s *TakeoverState) Summary() string { return s.String() }

// String is the report for a person.
func (s *TakeoverState) String() string {
	var b strings.Builder
	if !s.Installed {
		fmt.Fprintf(&b, "%s: release %s in %s is not installed: nothing to take over\n", s.Target, s.Release, s.Namespace)
		return b.String()
	}
	fmt.Fprintf(&b, "%s: release %s in %s: revision %d %s, written by %s", s.Target, s.Release, s.Namespace, s.Revision, s.Status, map[Origin]string{OriginRinggCI: "ringg-ci", OriginOldPipeline: "the old pipeline"}[s.Origin])
	if s.TakenOver {
		b.WriteString(": taken over\n")
	} else {
		b.WriteString(": not taken over yet (deploy it, or for stable promote the canary, with ringg-ci)\n")
	}
	if len(s.OldRecords) == 0 {
		b.WriteString("old records: none; history holds only ringg-ci's revisions\n")
	} else {
		fmt.Fprintf(&b, "old records: %d revisions the old pipeline wrote; their values, and the manifests rendered from them, may hold the secrets its workflow passed with --set:\n", len(s.OldRecords))
		for _, o := range s.OldRecords {
			fmt.Fprintf(&b, "  revision %d  %-10s  chart %s  image tag %q  %d values", o.Revision, o.Status, o.Chart, o.ImageTag, o.Values)
			if len(o.Foreign) > 0 {
				fmt.Fprintf(&b, ", %d the chart has no place for: %s", len(o.Foreign), strings.Join(o.Foreign, ", "))
			}
			if slices.Contains(s.Deleted, o.Revision) {
				b.WriteString("  (deleted)")
			}
			b.WriteString("\n")
		}
	}
	switch {
	case len(s.Deleted) > 0:
		fmt.Fprintf(&b, "deleted revisions %s; `helm rollback` to them is no longer possible\n", revisionList(s.Deleted))
	case len(s.OldRecords) > 0 && s.DryRun && s.TakenOver:
		b.WriteString("dry run: nothing deleted; delete them with --delete-old-records\n")
	case len(s.OldRecords) > 0 && s.DryRun:
		b.WriteString("dry run: nothing deleted; they can go once the takeover succeeded\n")
	}
	if len(s.OldReplicaSets) > 0 {
		fmt.Fprintf(&b, "replica sets %s keep the old chart's pod template (its env held the values passed with --set); the Deployment keeps them for `kubectl rollout undo`: "+
			"delete them by hand once going back is no longer an option: kubectl -n %s delete replicaset %s\n",
			strings.Join(s.OldReplicaSets, ", "), s.Namespace, strings.Join(s.OldReplicaSets, " "))
	}
	for _, f := range s.FixedSecrets {
		if len(f.ReadBy) > 0 {
			fmt.Fprintf(&b, "secret %s (fixed name, written by the old pipeline): read by %s\n", f.Name, strings.Join(f.ReadBy, ", "))
		} else {
			fmt.Fprintf(&b, "secret %s (fixed name, written by the old pipeline): read by nothing in %s; ringg-ci never changes or deletes it: "+
				"delete it by hand (kubectl -n %s delete secret %s) once going back to the old pipeline is no longer an option\n", f.Name, s.Namespace, s.Namespace, f.Name)
		}
	}
	return b.String()
}

// Run reads the release's history and, unless it is a dry run, deletes
// the old pipeline's revisions under the release's lock.
func (t *Takeover) Run(ctx context.Context) (*TakeoverState, error) {
	c, err := t.Clients.withDefaults()
	if err != nil {
		return nil, err
	}
	p := t.Plan
	tg := p.Target
	what := fmt.Sprintf("takeover of %s (release %s in %s)", tg.Name, tg.Release, tg.Namespace)
	var schema []byte
	if p.ChartDir != "" {
		ch, err := chart.Load(p.ChartDir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		schema = ch.Schema
	}
	cfg, err := c.helmConfig(tg.Namespace)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	t.Options.hearRecords(cfg)
	st := &TakeoverState{Target: tg.Name, Release: tg.Release, Namespace: tg.Namespace, DryRun: !p.DeleteOldRecords}
	read := func() error {
		hist, err := readHistory(cfg, tg.Release)
		if err != nil {
			return err
		}
		rel := hist.current()
		if rel == nil {
			st.Installed = false
			return nil
		}
		st.Installed = true
		if err := hist.checkOwner(tg, fingerprint{}, c.Cluster); err != nil {
			return err
		}
		st.Revision, st.Status, st.Origin = rel.Version, string(rel.Info.Status), originOf(rel)
		// Taken over: what runs is a proven ringg-ci revision, and nothing
		// newer failed or is pending.
		st.TakenOver = st.Origin == OriginRinggCI && good(rel) && hist.last().Version == rel.Version
		st.OldRecords = hist.old(schema)
		return nil
	}
	if err := read(); err != nil {
		return st, fmt.Errorf("%s: %w", what, err)
	}
	if st.FixedSecrets, err = fixedSecrets(ctx, c, tg.Namespace); err != nil {
		return st, fmt.Errorf("%s: %w", what, err)
	}
	if st.OldReplicaSets, err = oldReplicaSets(ctx, c, tg.Namespace, tg.Release); err != nil {
		return st, fmt.Errorf("%s: %w", what, err)
	}
	if !p.DeleteOldRecords || len(st.OldRecords) == 0 {
		return st, nil
	}
	if !st.TakenOver && st.Origin == OriginRinggCI {
		return st, fmt.Errorf("%s: %w: revision %d (%s) is not a proven ringg-ci revision with nothing newer pending or failed: "+
			"deploy or roll back until status shows it proven, then delete the old records", what, ErrNotTakenOver, st.Revision, st.Status)
	}
	if !st.TakenOver {
		return st, fmt.Errorf("%s: %w: revision %d (%s) was written by the old pipeline and is what runs; deleting the old records now would leave no way back: "+
			"take the release over first (deploy the canary, promote it to stable), check it with status, then delete them", what, ErrNotTakenOver, st.Revision, st.Status)
	}
	held, unlock, err := takeLock(ctx, c, lock.Options{Namespace: tg.Namespace, Release: tg.Release, Holder: p.Holder, TTL: t.Options.LockTTL})
	if err != nil {
		return st, fmt.Errorf("%s: %w", what, err)
	}
	defer unlock()
	t.Options.step(StepLocked)
	// Read again under the lock: a rollback may have run meanwhile.
	if err := read(); err != nil {
		return st, fmt.Errorf("%s: %w", what, err)
	}
	if !st.TakenOver {
		return st, fmt.Errorf("%s: %w: revision %d (%s) is now the deployed one; run the takeover again once ringg-ci's revision is deployed", what, ErrNotTakenOver, st.Revision, st.Status)
	}
	var errs []error
	for _, o := range st.OldRecords {
		if o.Status == "deployed" || strings.HasPrefix(o.Status, "pending") {
			continue
		}
		if err := held.Check(); err != nil {
			errs = append(errs, err)
			break
		}
		if _, err := cfg.Releases.Delete(tg.Release, o.Revision); err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
			errs = append(errs, fmt.Errorf("delete revision %d: %w", o.Revision, err))
			continue
		}
		st.Deleted = append(st.Deleted, o.Revision)
		c.Logger.Info("deleted a revision the old pipeline wrote", "release", tg.Release, "revision", o.Revision)
	}
	if err := errors.Join(errs...); err != nil {
		return st, fmt.Errorf("%s: %w; check that the CI identity may delete Secrets in %s, and run it again", what, err, tg.Namespace)
	}
	return st, nil
}

// fixedSecrets lists the old pipeline's fixed-name Secrets that exist in
// namespace and what reads them.
func fixedSecrets(ctx context.Context, c Clients, namespace string) ([]FixedSecret, error) {
	var out []FixedSecret
	for _, name := range []string{secrets.DefaultAppEnv, secrets.DefaultGCPCreds} {
		_, err := c.Kube.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get secret %s in %s: %w", name, namespace, err)
		}
		out = append(out, FixedSecret{Name: name})
	}
	if len(out) == 0 {
		return nil, nil
	}
	deps, err := c.Kube.AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list deployments in %s: %w", namespace, err)
	}
	pods, err := c.Kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list pods in %s: %w", namespace, err)
	}
	for i := range out {
		for _, d := range deps.Items {
			if slices.Contains(secretRefs(&d.Spec.Template.Spec), out[i].Name) {
				out[i].ReadBy = append(out[i].ReadBy, "Deployment/"+d.Name)
			}
		}
		n := 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && slices.Contains(secretRefs(&p.Spec), out[i].Name) {
				n++
			}
		}
		if n > 0 {
			out[i].ReadBy = append(out[i].ReadBy, fmt.Sprintf("%d pods", n))
		}
	}
	return out, nil
}

// oldReplicaSets lists the ReplicaSets of a release's Deployment (named
// after the release, as both charts name it) that are scaled to zero and run
// an image by tag, which ringg-ci never deploys.
func oldReplicaSets(ctx context.Context, c Clients, namespace, release string) ([]string, error) {
	list, err := c.Kube.AppsV1().ReplicaSets(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list replica sets in %s: %w", namespace, err)
	}
	var out []string
	for _, rs := range list.Items {
		owned := slices.ContainsFunc(rs.OwnerReferences, func(o metav1.OwnerReference) bool { return o.Kind == "Deployment" && o.Name == release })
		if !owned || rs.Spec.Replicas == nil || *rs.Spec.Replicas != 0 {
			continue
		}
		if slices.ContainsFunc(rs.Spec.Template.Spec.Containers, func(ct corev1.Container) bool { return digestIn(ct.Image) == "" }) {
			out = append(out, rs.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}
