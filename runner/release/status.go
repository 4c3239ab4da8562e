package release

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/utils/ptr"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
)

// Status reads the state of targets that share a cluster.
type Status struct {
	Clients Clients
	Plan    pipeline.StatusPlan
}

// TargetStatus is one target's release and what its pods run.
type TargetStatus struct {
	Target      targets.Name `json:"target"`
	Release     string       `json:"release"`
	Namespace   string       `json:"namespace"`
	Installed   bool         `json:"installed"`
	Revision    int          `json:"revision,omitempty"`
	Status      string       `json:"status,omitempty"`
	Description string       `json:"description,omitempty"`
	Digest      string       `json:"digest,omitempty"`
	// ImageTag is set for a record the old pipeline wrote (a tag, no digest).
	ImageTag string `json:"imageTag,omitempty"`
	// Origin says which pipeline wrote the record shown.
	Origin Origin `json:"origin,omitempty"`
	// Outcome is the shown record's rollout outcome; a record newer than it
	// that did not serve is Later.
	Outcome Outcome `json:"outcome,omitempty"`
	// Later is a record newer than the deployed one shown (a failed
	// upgrade whose release was returned to the deployed record), if any.
	Later       *LaterRecord         `json:"later,omitempty"`
	SecretNames pipeline.SecretNames `json:"secretNames"`
	// OldRecords are the revisions the old pipeline wrote that history still
	// keeps: their values may hold secrets.
	OldRecords []int `json:"oldRecords,omitempty"`
	// Running are the digests the pods run (one when settled).
	Running []string   `json:"running,omitempty"`
	Ready   int        `json:"ready"`
	Desired int32      `json:"desired"`
	Pods    []PodImage `json:"pods,omitempty"`
}

// LaterRecord is a release record newer than the one that describes what
// runs: a failed, interrupted or pending revision.
type LaterRecord struct {
	Revision    int     `json:"revision"`
	Status      string  `json:"status"`
	Outcome     Outcome `json:"outcome"`
	Description string  `json:"description,omitempty"`
}

// Promotion compares a promoted target with its destination.
type Promotion struct {
	From targets.Name `json:"from"`
	To   targets.Name `json:"to"`
	// SameDigest is true when both run exactly one digest, the same one.
	SameDigest bool `json:"sameDigest"`
}

// StatusReport is the state of the planned targets.
type StatusReport struct {
	// Clusters name the clusters read, in the order of Targets'.
	Clusters   []string       `json:"clusters,omitempty"`
	Targets    []TargetStatus `json:"targets"`
	Promotions []Promotion    `json:"promotions,omitempty"`
	// Warnings need a person: records of the old pipeline still kept.
	Warnings []string `json:"warnings,omitempty"`
}

// String renders the status for a person, one line per target.
func (s StatusReport) String() string {
	var b strings.Builder
	for _, c := range s.Clusters {
		fmt.Fprintf(&b, "cluster: %s\n", c)
	}
	for _, t := range s.Targets {
		if !t.Installed {
			fmt.Fprintf(&b, "%-8s release %s in %s: not installed\n", t.Target, t.Release, t.Namespace)
			continue
		}
		img := shortDigest(t.Digest)
		if t.Origin == OriginOldPipeline {
			img = fmt.Sprintf("tag %q (written by the old pipeline)", t.ImageTag)
		}
		state := t.Status
		if t.Outcome != "" && t.Outcome != OutcomeUnknown {
			state += ", " + string(t.Outcome)
		}
		fmt.Fprintf(&b, "%-8s release %s in %s: revision %d %s, %d/%d pods ready, image %s (running %s)\n",
			t.Target, t.Release, t.Namespace, t.Revision, state, t.Ready, t.Desired, img, shortList(t.Running))
		if l := t.Later; l != nil {
			fmt.Fprintf(&b, "%-8s   later revision %d %s (%s): %s\n", "", l.Revision, l.Status, l.Outcome, strings.Join(strings.Fields(l.Description), " "))
		}
	}
	for _, p := range s.Promotions {
		verdict := "run the same digest"
		if !p.SameDigest {
			verdict = "run different digests"
		}
		fmt.Fprintf(&b, "%s and %s %s\n", p.From, p.To, verdict)
	}
	for _, w := range s.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	return b.String()
}

func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	if d == "" {
		return "unknown"
	}
	return d
}

func shortList(ds []string) string {
	if len(ds) == 0 {
		return "no pods"
	}
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = shortDigest(d)
	}
	return strings.Join(out, ", ")
}

// Run reads every planned target. It changes nothing.
func (s *Status) Run(ctx context.Context) (*StatusReport, error) {
	c, err := s.Clients.withDefaults()
	if err != nil {
		return nil, err
	}
	out := &StatusReport{}
	if c.Cluster != "" {
		out.Clusters = []string{c.Cluster}
	}
	for _, t := range s.Plan.Targets {
		ts, err := targetStatus(ctx, c, t)
		if err != nil {
			return out, fmt.Errorf("status of %s (release %s in %s): %w", t.Name, t.Release, t.Namespace, err)
		}
		out.Targets = append(out.Targets, ts)
		if w := oldRecordsWarning(ts); w != "" {
			out.Warnings = append(out.Warnings, w)
		}
	}
	for _, from := range out.Targets {
		for _, to := range out.Targets {
			ft := targetOf(s.Plan.Targets, from.Target)
			if ft.PromotesTo != to.Target {
				continue
			}
			same := len(from.Running) == 1 && len(to.Running) == 1 && from.Running[0] == to.Running[0]
			out.Promotions = append(out.Promotions, Promotion{From: from.Target, To: to.Target, SameDigest: same})
		}
	}
	return out, nil
}

func targetOf(ts []targets.Target, n targets.Name) targets.Target {
	for _, t := range ts {
		if t.Name == n {
			return t
		}
	}
	return targets.Target{}
}

func targetStatus(ctx context.Context, c Clients, t targets.Target) (TargetStatus, error) {
	ts := TargetStatus{Target: t.Name, Release: t.Release, Namespace: t.Namespace}
	cfg, err := c.helmConfig(t.Namespace)
	if err != nil {
		return ts, err
	}
	hist, err := readHistory(cfg, t.Release)
	if err != nil {
		return ts, err
	}
	rel := hist.last()
	if rel == nil {
		return ts, nil
	}
	// What runs is described by the last good record; a newer one failed,
	// was interrupted or is pending (e.g. returned from to an old
	// pipeline's record, which is restored without a record of its own).
	if cur := hist.current(); cur.Version < rel.Version {
		ts.Later = &LaterRecord{Revision: rel.Version, Status: string(rel.Info.Status), Outcome: outcomeOf(rel), Description: rel.Info.Description}
		rel = cur
	}
	ts.Installed = true
	ts.Revision, ts.Status, ts.Description, ts.Outcome = rel.Version, string(rel.Info.Status), rel.Info.Description, outcomeOf(rel)
	ts.Digest, ts.SecretNames = digestOf(rel), secretNamesOf(rel)
	ts.Origin = originOf(rel)
	if ts.Origin == OriginOldPipeline {
		ts.ImageTag = imageTagOf(rel)
	}
	ts.OldRecords = hist.oldRevisions()
	w, err := observe(ctx, c.Kube, rel)
	if err != nil {
		return ts, err
	}
	ts.Pods = w.pods
	ts.Running = digests(w.pods)
	for _, p := range w.pods {
		if p.Ready {
			ts.Ready++
		}
	}
	if w.deployment != nil {
		ts.Desired = ptr.Deref(w.deployment.Spec.Replicas, 1)
	}
	return ts, nil
}

// oldRecordsWarning says what to do about the old pipeline's records a
// target's release still keeps.
func oldRecordsWarning(t TargetStatus) string {
	if len(t.OldRecords) == 0 {
		return ""
	}
	what := fmt.Sprintf("release %s in %s (%s) keeps revisions %s written by the old pipeline; their values may hold secrets it passed with --set",
		t.Release, t.Namespace, t.Target, revisionList(t.OldRecords))
	if t.Origin == OriginOldPipeline {
		return what + ": take the release over (deploy or promote it with ringg-ci), then delete them with the takeover command's --delete-old-records"
	}
	return what + fmt.Sprintf(": delete them with `ringg-ci takeover --target %s` (a dry run), then the same with --delete-old-records", t.Target)
}
