package release

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	hrelease "helm.sh/helm/v3/pkg/release"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
)

// History reads every revision Helm keeps of the planned targets' releases
// (they share a cluster), what each was and what became of it, and derives
// the delivery measures the records allow. It changes nothing.
type History struct {
	Clients Clients
	Plan    pipeline.StatusPlan
	// Since keeps only revisions applied within this long; zero keeps every
	// revision Helm still has.
	Since time.Duration
}

// The outcomes history tells apart.
const (
	HistoryProven      = "proven"
	HistoryFailed      = "failed"
	HistoryRolledBack  = "rolled back"
	HistoryInterrupted = "interrupted"
	HistoryPending     = "pending"
	HistoryUnknown     = "unknown"
)

// Revision is one revision of a release: who, what, when, how long its
// rollout took, and what became of it.
type Revision struct {
	Revision int    `json:"revision"`
	Verb     string `json:"verb,omitempty"`
	Origin   Origin `json:"origin"`
	// Outcome is proven, failed (its rollout failed and the release was
	// returned to its last good revision), rolled back (proven, then undone
	// by a rollback), interrupted, pending or unknown.
	Outcome string `json:"outcome"`
	Status  string `json:"status"`
	Holder  string `json:"holder,omitempty"`
	Digest  string `json:"digest,omitempty"`
	// ImageTag is the image tag of a revision the old pipeline wrote.
	ImageTag    string               `json:"imageTag,omitempty"`
	Commit      string               `json:"commit,omitempty"`
	SecretNames pipeline.SecretNames `json:"secretNames"`
	// Applied is when Helm applied the revision; Settled when its outcome
	// was decided (zero when not recorded).
	Applied time.Time `json:"applied"`
	Settled time.Time `json:"settled,omitzero"`
	// Rollout is Settled - Applied, for a proven or failed rollout.
	Rollout time.Duration `json:"-"`
	// Gate is what promote's gate checked, for a promote.
	Gate string `json:"gate,omitempty"`
	// UndoneBy is the revision that returned the release from this one: the
	// restore after a failed rollout, or a rollback.
	UndoneBy    int    `json:"undoneBy,omitempty"`
	Description string `json:"description,omitempty"`
}

// MarshalJSON writes the rollout's duration as text.
func (r Revision) MarshalJSON() ([]byte, error) {
	type plain Revision
	return pipeline.MarshalWithDurations(plain(r), map[string]time.Duration{"rollout": r.Rollout})
}

// Measures are the four DORA measures of a target over a window, as far as
// its records allow.
type Measures struct {
	// Window is the span the measures cover: Since, or back to the oldest
	// revision kept.
	Window time.Duration `json:"-"`
	// Changes counts the deploys and promotes applied in the window whose
	// outcome is known; Proven those that were proven (and not rolled back
	// later).
	Changes int `json:"changes"`
	Proven  int `json:"proven"`
	// DeploysPerDay is Proven over the window in days.
	DeploysPerDay float64 `json:"deploysPerDay"`
	// Failed counts the changes whose rollout failed or that were rolled
	// back; ChangeFailureRate is Failed / Changes.
	Failed            int     `json:"failed"`
	ChangeFailureRate float64 `json:"changeFailureRate"`
	// Restores are the times from applying a change that failed to the
	// moment a good revision was proven again; TimeToRestore is their
	// median.
	Restores      []time.Duration `json:"-"`
	TimeToRestore time.Duration   `json:"-"`
	// NotMeasured names what the records cannot give.
	NotMeasured []string `json:"notMeasured"`
}

// MarshalJSON writes durations as text.
func (m Measures) MarshalJSON() ([]byte, error) {
	type plain Measures
	text := func(d time.Duration) string {
		if d == 0 {
			return ""
		}
		return d.Round(time.Second).String()
	}
	var restores []string
	for _, d := range m.Restores {
		restores = append(restores, text(d))
	}
	return json.Marshal(struct {
		plain
		Window        string   `json:"window,omitempty"`
		TimeToRestore string   `json:"timeToRestore,omitempty"`
		Restores      []string `json:"restores,omitempty"`
	}{plain(m), text(m.Window), text(m.TimeToRestore), restores})
}

// leadTimeNotMeasured says why lead time for changes is not measured.
const leadTimeNotMeasured = "lead time for changes: the records name each change's commit, not when it was committed; " +
	"take the commit times from git (git show -s --format=%cI COMMIT) to measure it"

// TargetHistory is one target's kept revisions, newest first, and its
// measures.
type TargetHistory struct {
	Target    targets.Name `json:"target"`
	Release   string       `json:"release"`
	Namespace string       `json:"namespace"`
	// Kept is how many revisions Helm keeps in all; Revisions are those in
	// the window.
	Kept      int        `json:"kept"`
	Revisions []Revision `json:"revisions"`
	Measures  Measures   `json:"measures"`
}

// HistoryReport is the history of the planned targets.
type HistoryReport struct {
	Cluster string          `json:"cluster,omitempty"`
	Since   time.Duration   `json:"-"`
	Targets []TargetHistory `json:"targets"`
}

// MarshalJSON writes since as text.
func (h HistoryReport) MarshalJSON() ([]byte, error) {
	type plain HistoryReport
	return pipeline.MarshalWithDurations(plain(h), map[string]time.Duration{"since": h.Since})
}

// Merge appends another cluster's targets.
func (h *HistoryReport) Merge(o *HistoryReport) {
	h.Targets = append(h.Targets, o.Targets...)
	if o.Cluster != "" && !strings.Contains(h.Cluster, o.Cluster) {
		h.Cluster = strings.TrimPrefix(h.Cluster+"; "+o.Cluster, "; ")
	}
}

// Run reads every planned target's release history.
func (hs *History) Run(ctx context.Context) (*HistoryReport, error) {
	c, err := hs.Clients.withDefaults()
	if err != nil {
		return nil, err
	}
	out := &HistoryReport{Cluster: c.Cluster, Since: hs.Since}
	for _, t := range hs.Plan.Targets {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		cfg, err := c.helmConfig(t.Namespace)
		if err != nil {
			return out, fmt.Errorf("history of %s: %w", t.Name, err)
		}
		h, err := readHistory(cfg, t.Release)
		if err != nil {
			return out, fmt.Errorf("history of %s (release %s in %s): %w", t.Name, t.Release, t.Namespace, err)
		}
		out.Targets = append(out.Targets, chronicle(h, t, c.Now(), hs.Since))
	}
	return out, nil
}

// verbOf is what wrote a record: its label, or for records written before
// the label, the start of its description.
func verbOf(rel *hrelease.Release) string {
	if v := rel.Labels[LabelVerb]; v != "" {
		return v
	}
	if originOf(rel) != OriginRinggCI {
		return ""
	}
	for _, v := range []string{verbDeploy, verbPromote, verbRollback, verbRestore} {
		if strings.HasPrefix(rel.Info.Description, v+" ") {
			return v
		}
	}
	return ""
}

// chronicle turns a release's records into its history and measures at now:
// which revision undid which, what failed, how long restoring took. It does
// no I/O.
func chronicle(h history, t targets.Target, now time.Time, since time.Duration) TargetHistory {
	th := TargetHistory{Target: t.Name, Release: t.Release, Namespace: t.Namespace, Kept: len(h)}
	recs := slices.Clone([]*hrelease.Release(h))
	slices.SortFunc(recs, func(a, b *hrelease.Release) int { return a.Version - b.Version })
	all := make([]Revision, len(recs))
	for i, rel := range recs {
		r := Revision{
			Revision: rel.Version, Verb: verbOf(rel), Origin: originOf(rel), Status: string(rel.Info.Status),
			Holder: holderOf(rel), Digest: digestOf(rel), Commit: commitOf(rel), SecretNames: secretNamesOf(rel),
			Applied: rel.Info.LastDeployed.Time, Settled: settledOf(rel), Description: strings.Join(strings.Fields(rel.Info.Description), " "),
		}
		if r.Origin == OriginOldPipeline {
			r.ImageTag = imageTagOf(rel)
		}
		if g := rel.Labels[LabelGate]; g != "" {
			r.Gate = gateText(g)
		}
		switch o := outcomeOf(rel); {
		case r.Origin == OriginOldPipeline && good(rel):
			r.Outcome = HistoryProven
		case o == OutcomeProven:
			r.Outcome = HistoryProven
		case o == OutcomeFailed:
			r.Outcome = HistoryFailed
		case o == OutcomeInterrupted:
			r.Outcome = HistoryInterrupted
		case o == OutcomePending:
			r.Outcome = HistoryPending
		default:
			r.Outcome = HistoryUnknown
		}
		if !r.Settled.IsZero() && !r.Applied.IsZero() && (r.Outcome == HistoryProven || r.Outcome == HistoryFailed) {
			r.Rollout = r.Settled.Sub(r.Applied)
		}
		all[i] = r
	}
	// A restore undoes the failed revision before it; a rollback undoes the
	// newest proven change before it, which was running when it ran.
	for i, r := range all {
		if r.Outcome != HistoryProven {
			continue
		}
		switch r.Verb {
		case verbRestore:
			if i > 0 && all[i-1].Outcome == HistoryFailed {
				all[i-1].UndoneBy = r.Revision
			}
		case verbRollback:
			for j := i - 1; j >= 0; j-- {
				if all[j].Outcome == HistoryProven && all[j].UndoneBy == 0 && all[j].Verb != verbRollback && all[j].Verb != verbRestore {
					all[j].Outcome, all[j].UndoneBy = HistoryRolledBack, r.Revision
					break
				}
				if all[j].Outcome == HistoryProven || all[j].Outcome == HistoryRolledBack {
					break
				}
			}
		}
	}
	start := time.Time{}
	if since > 0 {
		start = now.Add(-since)
	}
	var window []Revision
	for _, r := range all {
		if !r.Applied.Before(start) {
			window = append(window, r)
		}
	}
	th.Measures = measure(all, window, start, now)
	slices.Reverse(window)
	th.Revisions = window
	if th.Revisions == nil {
		th.Revisions = []Revision{}
	}
	return th
}

// measure derives the DORA measures from the revisions of a window (all is
// every revision, oldest first: a restore may be found after the window's
// last change).
func measure(all, window []Revision, start, now time.Time) Measures {
	m := Measures{NotMeasured: []string{leadTimeNotMeasured}}
	if start.IsZero() && len(window) > 0 {
		start = window[0].Applied
	}
	if !start.IsZero() {
		m.Window = now.Sub(start)
	}
	for _, r := range window {
		if r.Verb != verbDeploy && r.Verb != verbPromote {
			continue
		}
		switch r.Outcome {
		case HistoryProven:
			m.Changes++
			m.Proven++
		case HistoryFailed, HistoryRolledBack:
			m.Changes++
			m.Failed++
			if d, ok := restoredAfter(all, r); ok {
				m.Restores = append(m.Restores, d)
			}
		}
	}
	if days := m.Window.Hours() / 24; days > 0 {
		m.DeploysPerDay = float64(m.Proven) / days
	}
	if m.Changes > 0 {
		m.ChangeFailureRate = float64(m.Failed) / float64(m.Changes)
	}
	if len(m.Restores) > 0 {
		ds := slices.Clone(m.Restores)
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		m.TimeToRestore = ds[len(ds)/2]
		if len(ds)%2 == 0 {
			m.TimeToRestore = (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
		}
	}
	return m
}

// restoredAfter is how long after the failed change f was applied a good
// revision was proven again: the revision that undid it, or else the next
// proven one.
func restoredAfter(all []Revision, f Revision) (time.Duration, bool) {
	for _, r := range all {
		if r.Revision <= f.Revision || r.Outcome != HistoryProven || r.Settled.IsZero() {
			continue
		}
		if f.UndoneBy != 0 && r.Revision != f.UndoneBy {
			continue
		}
		return r.Settled.Sub(f.Applied), true
	}
	return 0, false
}

// String renders the history for a person: per target, a table of its
// revisions, newest first, and its measures.
func (h HistoryReport) String() string {
	var b strings.Builder
	if h.Cluster != "" {
		fmt.Fprintf(&b, "cluster: %s\n", h.Cluster)
	}
	for i, t := range h.Targets {
		if i > 0 {
			b.WriteString("\n")
		}
		span := "every kept revision"
		if h.Since > 0 {
			span = "applied within " + sinceText(h.Since)
		}
		fmt.Fprintf(&b, "%s: release %s in %s, %d of %d kept revisions (%s)\n", t.Target, t.Release, t.Namespace, len(t.Revisions), t.Kept, span)
		if len(t.Revisions) > 0 {
			w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "REV\tAPPLIED (UTC)\tVERB\tOUTCOME\tROLLOUT\tIMAGE\tCOMMIT\tSECRETS\tBY\tGATE")
			for _, r := range t.Revisions {
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Revision, r.Applied.UTC().Format("2006-01-02 15:04:05"),
					dash(r.Verb), outcomeText(r), durationCell(r.Rollout), imageCell(r), dash(shortCommit(r.Commit)), secretsCell(r.SecretNames),
					dash(shortText(r.Holder, 48)), dash(r.Gate))
			}
			w.Flush()
		}
		b.WriteString(t.Measures.text(t.Target))
	}
	return b.String()
}

func (m Measures) text(t targets.Name) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s over %s: ", t, durationCell(m.Window))
	if m.Changes == 0 {
		b.WriteString("no deploy or promote with a known outcome\n")
	} else {
		fmt.Fprintf(&b, "deploy frequency %.2f/day (%d proven of %d changes); change failure rate %.0f%% (%d failed or rolled back)",
			m.DeploysPerDay, m.Proven, m.Changes, 100*m.ChangeFailureRate, m.Failed)
		if len(m.Restores) > 0 {
			fmt.Fprintf(&b, "; time to restore: median %s over %d", durationCell(m.TimeToRestore), len(m.Restores))
		}
		b.WriteString("\n")
	}
	for _, n := range m.NotMeasured {
		fmt.Fprintf(&b, "  not measured: %s\n", n)
	}
	return b.String()
}

func outcomeText(r Revision) string {
	if r.UndoneBy != 0 {
		return fmt.Sprintf("%s (undone by %d)", r.Outcome, r.UndoneBy)
	}
	return r.Outcome
}

func imageCell(r Revision) string {
	if r.ImageTag != "" {
		return "tag " + r.ImageTag
	}
	return shortDigest(r.Digest)
}

// secretsCell names the Secrets by their content hash: what tells one
// version from another.
func secretsCell(n pipeline.SecretNames) string {
	var parts []string
	for _, s := range []struct{ kind, name string }{{"app", n.AppEnv}, {"creds", n.GCPCreds}} {
		if s.name == "" {
			continue
		}
		h := s.name[strings.LastIndex(s.name, "-")+1:]
		if h == s.name {
			h = s.name
		}
		parts = append(parts, s.kind+" "+h)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

func shortText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func durationCell(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d >= 48*time.Hour:
		return sinceText(d)
	case d >= time.Minute:
		return d.Round(time.Second).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// sinceText writes whole days as "30d".
func sinceText(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	if d >= 48*time.Hour {
		return fmt.Sprintf("%.1fd", d.Hours()/24)
	}
	return d.String()
}
