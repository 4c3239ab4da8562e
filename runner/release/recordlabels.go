package release

import (
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"time"

	hrelease "helm.sh/helm/v3/pkg/release"
)

// What ringg-ci records with each revision besides its outcome, for
// history. They are labels of the Helm record, like the outcome: written in
// the same write as the record's status (a run killed between two writes
// leaves no record whose labels disagree with it), kept and pruned with the
// record (history reaches as far back as Helm's history, pipeline.MaxHistory
// revisions), and readable by anyone who may read the release, with no
// other object or permission. A label value holds at most 63 characters of
// [A-Za-z0-9._-]: the holder is shortened to fit, and the gate's verdict
// table stays in the run's output and job summary, its outcome here.
const (
	// LabelCommit is the commit the image was built from (promote and
	// rollback carry the one of the revision they take the image from).
	LabelCommit = "ringg-ci/commit"
	// LabelBy is who ran the verb (the lock's holder), shortened to fit a
	// label; a proven record's description names it in full.
	LabelBy = "ringg-ci/by"
	// LabelSettled is when the record's outcome was decided, in Unix
	// milliseconds: with the record's deploy time, how long its rollout
	// took.
	LabelSettled = "ringg-ci/settled"
	// LabelGate is what promote's gate checked before it upgraded stable
	// (GateLabel).
	LabelGate = "ringg-ci/gate"
)

// labelValueRE is what Kubernetes accepts as a label value.
var labelValueRE = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)

// labelValue makes s a valid label value: runs of other characters become
// one '_', and a value longer than 63 loses its middle, so both ends (a run
// id, an actor) survive.
func labelValue(s string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.TrimSpace(s) {
		ok := r < 128 && (r == '-' || r == '.' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		if !ok {
			if !under {
				b.WriteByte('_')
			}
			under = true
			continue
		}
		under = false
		b.WriteRune(r)
	}
	v := b.String()
	if len(v) > 63 {
		v = v[:30] + "..." + v[len(v)-30:]
	}
	return strings.Trim(v, "-._")
}

// recordExtras are the labels of a record besides target, verb and
// outcome: the commit, and for promote the gate.
func recordExtras(commit, gate string) map[string]string {
	out := map[string]string{}
	if v := labelValue(commit); v != "" {
		out[LabelCommit] = v
	}
	if gate != "" {
		out[LabelGate] = gate
	}
	return out
}

// replacing returns labels for an upgrade: Helm merges the previous
// record's labels into the new record's, so each of ringg-ci's per-record
// labels the new record lacks is set to "null", which Helm drops: a
// rollback must not inherit the gate of the promote before it.
func replacing(labels map[string]string) map[string]string {
	out := maps.Clone(labels)
	for _, k := range []string{LabelCommit, LabelGate, LabelSettled, LabelBy} {
		if _, ok := out[k]; !ok {
			out[k] = "null"
		}
	}
	return out
}

// withExtras adds labels to every spec desire computes.
func withExtras(desire func(history) (spec, error), labels map[string]string) func(history) (spec, error) {
	return func(h history) (spec, error) {
		sp, err := desire(h)
		sp.labels = maps.Clone(labels)
		return sp, err
	}
}

// commitOf reads the commit a record was labelled with.
func commitOf(rel *hrelease.Release) string {
	if rel == nil {
		return ""
	}
	return rel.Labels[LabelCommit]
}

// settledOf reads when a record's outcome was decided; zero when unknown.
func settledOf(rel *hrelease.Release) time.Time {
	s, err := strconv.ParseInt(rel.Labels[LabelSettled], 10, 64)
	if err != nil || s <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(s)
}

// descriptionRE reads a proven record's description: "<verb> <digest> by <holder>".
var descriptionRE = regexp.MustCompile(`^(deploy|promote|rollback|restore) sha256:[0-9a-f]+ by (.+)$`)

// holderOf says who wrote a record: the holder its description names in
// full, else its label.
func holderOf(rel *hrelease.Release) string {
	if m := descriptionRE.FindStringSubmatch(rel.Info.Description); m != nil {
		return m[2]
	}
	return rel.Labels[LabelBy]
}

// GateLabel is the gate's outcome as a label: how long the canary soaked,
// how many rounds of calls passed and how many metric queries did
// ("none" when not configured), e.g. "soak-120s.calls-6.metrics-3".
func GateLabel(g *Gate) string {
	if g == nil {
		return ""
	}
	calls, metrics := "none", "none"
	if g.Calls != nil {
		calls = strconv.Itoa(g.CallRounds)
	}
	if g.Metrics != nil {
		metrics = strconv.Itoa(len(g.Metrics.Rows))
	}
	return fmt.Sprintf("soak-%ds.calls-%s.metrics-%s", int(g.Soak.Round(time.Second).Seconds()), calls, metrics)
}

// gateText reads a gate label for a person: "soak 2m0s, 6 rounds of calls,
// 3 metric queries passed".
func gateText(label string) string {
	var soak, calls, metrics string
	if _, err := fmt.Sscanf(strings.NewReplacer(".", " ", "-", " ").Replace(label), "soak %s calls %s metrics %s", &soak, &calls, &metrics); err != nil {
		return label
	}
	var parts []string
	if d, err := time.ParseDuration(soak); err == nil {
		parts = append(parts, "soak "+d.String())
	}
	if calls == "none" {
		parts = append(parts, "no calls configured")
	} else {
		parts = append(parts, calls+" rounds of calls passed")
	}
	if metrics == "none" {
		parts = append(parts, "no metrics configured")
	} else {
		parts = append(parts, metrics+" metric queries passed")
	}
	return strings.Join(parts, ", ")
}
