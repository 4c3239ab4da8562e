package release

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	hrelease "helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"

	"github.com/ringg/ringg-ci/ci/targets"
)

// The release state ringg-ci keeps next to Helm's status, as labels of every
// record it writes (Helm stores a record's custom labels on the record's
// Secret and in the record itself, in the same write as its status). Helm's
// deployed/superseded say which record was applied last, not whether its pods
// ever all became Ready: a run killed while it watched leaves a record that
// Helm later marks superseded like any other. ringg-ci decides from these
// labels instead: the last good revision, the failure path, recovery of an
// interrupted run, the default rollback and promote's gate (docs/operations.md,
// "Release states").
const (
	// LabelTarget names the target a record belongs to (staging, canary,
	// stable): a run for another target refuses the release.
	LabelTarget = "ringg-ci/target"
	// LabelOutcome is the record's Outcome.
	LabelOutcome = "ringg-ci/outcome"
	// LabelVerb is what wrote the record: deploy, promote, rollback, or
	// restore (the failure path returning to the last good revision).
	LabelVerb = "ringg-ci/verb"
)

// Outcome is what became of a record's rollout.
type Outcome string

// The outcomes of a record.
const (
	// OutcomePending: stored, its rollout being watched by the run holding
	// the release's lock. Without a holder it is an interrupted run's.
	OutcomePending Outcome = "pending"
	// OutcomeProven: every new pod became Ready and the old ones went away.
	OutcomeProven Outcome = "proven"
	// OutcomeFailed: its rollout failed; the run returned the release to its
	// last good revision.
	OutcomeFailed Outcome = "failed"
	// OutcomeInterrupted: a run was killed, or lost its lock, while the
	// record was pending; the next run marked it so.
	OutcomeInterrupted Outcome = "interrupted"
	// OutcomeUnknown: a record ringg-ci did not label, whose description
	// does not tell either.
	OutcomeUnknown Outcome = "unknown"
)

// Verbs as LabelVerb records them.
const (
	verbDeploy   = "deploy"
	verbPromote  = "promote"
	verbRollback = "rollback"
	verbRestore  = "restore"
)

// outcomeOf reads a record's outcome: its label, or for a record an older
// ringg-ci wrote before the labels existed, its description and status
// (that version described a record by its verb and digest only once its
// rollout was proven). The old pipeline's records have none: Unknown.
func outcomeOf(rel *hrelease.Release) Outcome {
	if o := Outcome(rel.Labels[LabelOutcome]); o != "" {
		return o
	}
	if originOf(rel) != OriginRinggCI {
		return OutcomeUnknown
	}
	d, st := rel.Info.Description, rel.Info.Status
	switch {
	case strings.HasPrefix(d, "interrupted while"):
		return OutcomeInterrupted
	case strings.HasPrefix(d, "rollout failed") || strings.HasPrefix(d, "rollback rollout failed"):
		return OutcomeFailed
	case strings.HasPrefix(d, "waiting for the rollout"):
		if st.IsPending() {
			return OutcomePending
		}
		return OutcomeInterrupted
	case st != hrelease.StatusDeployed && st != hrelease.StatusSuperseded:
		return OutcomeUnknown
	case strings.HasPrefix(d, "deploy sha256:") || strings.HasPrefix(d, "promote sha256:") ||
		strings.HasPrefix(d, "rollback sha256:") || strings.HasPrefix(d, "Rollback to "):
		return OutcomeProven
	}
	return OutcomeUnknown
}

// targetOfRecord is the target a record is labelled with, or "".
func targetOfRecord(rel *hrelease.Release) targets.Name {
	return targets.Name(rel.Labels[LabelTarget])
}

// good reports whether a record describes something that served: a ringg-ci
// record whose rollout was proven, or a record of the old pipeline that Helm
// deployed (it ran until ringg-ci took over).
func good(rel *hrelease.Release) bool {
	if originOf(rel) == OriginOldPipeline {
		return rel.Info.Status == hrelease.StatusDeployed || rel.Info.Status == hrelease.StatusSuperseded
	}
	return outcomeOf(rel) == OutcomeProven
}

// recordLabels are the labels of a record ringg-ci writes for target t.
func recordLabels(t targets.Name, verb string, o Outcome) map[string]string {
	return map[string]string{LabelTarget: string(t), LabelVerb: verb, LabelOutcome: string(o)}
}

// history is a release's records as one read of them, in any order.
type history []*hrelease.Release

// readHistory reads a release's records; none when it is not installed. A
// failed read is an error, never "no records": a run that took a release
// with history for a first install would uninstall it on failure.
func readHistory(cfg *action.Configuration, name string) (history, error) {
	hist, err := cfg.Releases.History(name)
	if err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, fmt.Errorf("read history of release %s: %w; check access to the cluster and run again", name, err)
	}
	return hist, nil
}

// last is the newest record, deployed is the newest deployed one; nil when
// there is none.
func (h history) last() *hrelease.Release {
	return h.newest(func(*hrelease.Release) bool { return true })
}
func (h history) deployed() *hrelease.Release {
	return h.newest(func(r *hrelease.Release) bool { return r.Info.Status == hrelease.StatusDeployed })
}

// current is the record that describes what runs: the last good one, else
// the deployed one, else the last.
func (h history) current() *hrelease.Release {
	for _, r := range []*hrelease.Release{h.lastGood(), h.deployed()} {
		if r != nil {
			return r
		}
	}
	return h.last()
}

// lastGood is the newest record that served (see good); nil when none did.
func (h history) lastGood() *hrelease.Release { return h.newest(good) }

// pending is the newest record when a run left it pending: Helm's status
// says an operation is in progress, or its outcome was never decided. With
// the release's lock held, no run is working on it.
func (h history) pending() *hrelease.Release {
	rel := h.last()
	if rel == nil || (!rel.Info.Status.IsPending() && outcomeOf(rel) != OutcomePending) {
		return nil
	}
	return rel
}

// neverGood reports whether nothing in the release's history ever served,
// so that uninstalling it loses nothing: every record is ringg-ci's and
// known not to be good. A record that cannot be classified counts as good.
func (h history) neverGood() bool {
	for _, r := range h {
		if good(r) || originOf(r) == OriginOldPipeline || outcomeOf(r) == OutcomeUnknown {
			return false
		}
	}
	return true
}

// owner is the target the newest labelled record belongs to, and that
// record's revision; "" when no record is labelled.
func (h history) owner() (targets.Name, int) {
	rel := h.newest(func(r *hrelease.Release) bool { return targetOfRecord(r) != "" })
	if rel == nil {
		return "", 0
	}
	return targetOfRecord(rel), rel.Version
}

func (h history) newest(keep func(*hrelease.Release) bool) *hrelease.Release {
	var out *hrelease.Release
	for _, r := range h {
		if keep(r) && (out == nil || r.Version > out.Version) {
			out = r
		}
	}
	return out
}

func (h history) get(revision int) *hrelease.Release {
	return h.newest(func(r *hrelease.Release) bool { return r.Version == revision })
}

// revisions lists the revisions kept, oldest first.
func (h history) revisions() []int {
	var out []int
	for _, r := range h {
		out = append(out, r.Version)
	}
	slices.Sort(out)
	return out
}

// goodRevisions lists the revisions that served, oldest first.
func (h history) goodRevisions() []int {
	var out []int
	for _, r := range h {
		if good(r) {
			out = append(out, r.Version)
		}
	}
	slices.Sort(out)
	return out
}

// ErrNothingToRollBackTo means a release has no good revision to return to.
var ErrNothingToRollBackTo = errors.New("no good revision to roll back to")

// ErrNeverProven means a rollback was asked to return to a revision whose
// rollout never completed.
var ErrNeverProven = errors.New("revision was never proven")

// rollbackTarget decides which record a rollback returns to. Given a
// revision, that one, if it served. Otherwise: when something newer than the
// last good revision failed or was interrupted, the last good revision
// (back to what served); when the last good revision is the newest record,
// the newest good revision before it that runs something else (the one
// before the current).
func (h history) rollbackTarget(revision int) (*hrelease.Release, error) {
	name := ""
	if l := h.last(); l != nil {
		name = l.Name
	} else {
		return nil, fmt.Errorf("%w: the release has no history", ErrNothingToRollBackTo)
	}
	if revision > 0 {
		rel := h.get(revision)
		if rel == nil {
			return nil, fmt.Errorf("release %s has no revision %d (kept: %s): pick one of those", name, revision, revisionList(h.revisions()))
		}
		if !good(rel) {
			return nil, fmt.Errorf("%w: revision %d of release %s is %s (%s): roll back to one that served (%s)",
				ErrNeverProven, revision, name, outcomeOf(rel), rel.Info.Status, orNoneList(h.goodRevisions()))
		}
		return rel, nil
	}
	lg := h.lastGood()
	if lg == nil {
		return nil, fmt.Errorf("%w: no revision of release %s ever completed its rollout: deploy a working image instead", ErrNothingToRollBackTo, name)
	}
	if h.last().Version != lg.Version {
		return lg, nil
	}
	before := h.newest(func(r *hrelease.Release) bool {
		return r.Version < lg.Version && good(r) && r.Manifest != lg.Manifest
	})
	if before == nil {
		return nil, fmt.Errorf("%w: release %s has no good revision before %d that runs something else (good: %s): deploy the image you want instead",
			ErrNothingToRollBackTo, name, lg.Version, orNoneList(h.goodRevisions()))
	}
	return before, nil
}

// orNoneList writes revisions as revisionList does, or "none".
func orNoneList(rs []int) string {
	if len(rs) == 0 {
		return "none"
	}
	return revisionList(rs)
}

// ErrWrongTarget means a run reached a release that belongs to another
// target: a kubeconfig or context that reaches another cluster than meant.
var ErrWrongTarget = errors.New("release belongs to another target")

// fingerprint is what tells targets apart on a release that carries no
// target label (the old pipeline's, or an older ringg-ci's): the image
// repository its Deployment runs from and its Ingress hosts.
type fingerprint struct {
	Repository string
	Hosts      []string
}

// fingerprintOf reads a manifest's fingerprint.
func fingerprintOf(manifest string) fingerprint {
	var fp fingerprint
	if dep := manifestDeployment(manifest); dep != nil && len(dep.Spec.Template.Spec.Containers) > 0 {
		fp.Repository = repositoryOf(dep.Spec.Template.Spec.Containers[0].Image)
	}
	for _, obj := range objects(manifest) {
		if obj.kind == "Ingress" {
			fp.Hosts = append(fp.Hosts, ingressHosts(parseObject(obj.yaml))...)
		}
	}
	slices.Sort(fp.Hosts)
	fp.Hosts = slices.Compact(fp.Hosts)
	return fp
}

// repositoryOf strips the digest and tag of an image reference.
func repositoryOf(ref string) string {
	if at := strings.Index(ref, "@"); at >= 0 {
		ref = ref[:at]
	}
	if colon := strings.LastIndex(ref, ":"); colon > strings.LastIndex(ref, "/") {
		ref = ref[:colon]
	}
	return ref
}

// differs names how a release's fingerprint differs from a target's; ""
// when nothing both know differs.
func (fp fingerprint) differs(want fingerprint) string {
	var why []string
	if fp.Repository != "" && want.Repository != "" && fp.Repository != want.Repository {
		why = append(why, fmt.Sprintf("it runs images from %s, the target deploys %s", fp.Repository, want.Repository))
	}
	if len(fp.Hosts) > 0 && len(want.Hosts) > 0 && !slices.Equal(fp.Hosts, want.Hosts) {
		why = append(why, fmt.Sprintf("its Ingress serves %s, the target's serves %s", strings.Join(fp.Hosts, ", "), strings.Join(want.Hosts, ", ")))
	}
	return strings.Join(why, "; ")
}

// checkOwner refuses a release that belongs to another target than t: its
// records say so, or, when none is labelled, the record that runs does not
// look like t's (want, from t's own rendered manifest; zero when unknown).
// cluster names what the run reached, for the person who reads the error.
func (h history) checkOwner(t targets.Target, want fingerprint, cluster string) error {
	where := fmt.Sprintf("release %s in namespace %s of %s", t.Release, t.Namespace, orUnknown(cluster))
	if owner, rev := h.owner(); owner != "" {
		if owner == t.Name {
			return nil
		}
		return fmt.Errorf("%w: %s belongs to target %s (revision %d says so), not %s: this connection reaches %s's cluster; "+
			"check the kubeconfig, its context or --cluster (status shows which cluster a run reaches) and run again for the right cluster",
			ErrWrongTarget, where, owner, rev, t.Name, owner)
	}
	rel := h.current()
	if rel == nil {
		return nil
	}
	if why := fingerprintOf(rel.Manifest).differs(want); why != "" {
		return fmt.Errorf("%w: %s (revision %d, written before ringg-ci labelled its records) does not look like %s's: %s; "+
			"this connection probably reaches another target's cluster: check the kubeconfig, its context or --cluster and run again",
			ErrWrongTarget, where, rel.Version, t.Name, why)
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "an unnamed cluster"
	}
	return s
}
