package release

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/kube"
)

// Record is what one run of a mutating verb (deploy, promote, rollback)
// did, whether it succeeded or failed: where, the revisions before and
// after, the image and Secrets, how the rollout went over time, what failed
// and why in the words of the kubelet and the app, what was rolled back, and
// the commands that reproduce it. Markdown renders it for a person and a
// GitHub job summary; its JSON is for machines.
type Record struct {
	Verb string `json:"verb"`
	OK   bool   `json:"ok"`
	// Error is the run's error; empty on success.
	Error     string `json:"error,omitempty"`
	Target    string `json:"target,omitempty"`
	Release   string `json:"release,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Cluster   string `json:"cluster,omitempty"`
	// Before is the last good revision when the run started; After the
	// release's revision when it ended (0 when a failed first install was
	// uninstalled).
	Before int `json:"revisionBefore,omitempty"`
	After  int `json:"revisionAfter,omitempty"`
	// Status and Outcome are After's (deployed/proven, failed...).
	Status      string               `json:"status,omitempty"`
	Outcome     Outcome              `json:"outcome,omitempty"`
	Image       string               `json:"image,omitempty"`
	Digest      string               `json:"digest,omitempty"`
	SecretNames pipeline.SecretNames `json:"secretNames"`
	// Canary is what promote's gate saw, and Gate what it checked beyond
	// that (the soak, the synthetic calls, the metrics' verdict).
	Canary *Canary `json:"canary,omitempty"`
	Gate   *Gate   `json:"gate,omitempty"`
	// Timeline is the rollout over time, one moment per change.
	Timeline []Moment `json:"timeline,omitempty"`
	// Failures are the failed rollouts: the run's, then a rollback's.
	Failures []Failure `json:"failures,omitempty"`
	// RolledBack says where a failed run returned the release.
	RolledBack *RolledBack `json:"rolledBack,omitempty"`
	// Reproduce are the commands that show or replay the run.
	Reproduce []string      `json:"reproduce,omitempty"`
	Duration  time.Duration `json:"-"`
	result    summarizer
}

type summarizer interface{ Summary() string }

// MarshalJSON writes the duration as text.
func (r Record) MarshalJSON() ([]byte, error) {
	type plain Record
	return pipeline.MarshalWithDurations(plain(r), map[string]time.Duration{"duration": r.Duration})
}

// Moment is the rollout at one time of the run.
type Moment struct {
	// At is the time since the run's watch began.
	At    time.Duration `json:"-"`
	Phase string        `json:"phase"`
	Wave  int           `json:"wave,omitempty"`
	Waves int           `json:"waves,omitempty"`
	kube.RolloutProgress
}

// MarshalJSON writes the time as text.
func (m Moment) MarshalJSON() ([]byte, error) {
	type plain Moment
	return pipeline.MarshalWithDurations(plain(m), map[string]time.Duration{"at": m.At})
}

// Failure is one failed rollout: its Deployment, why it failed and the
// pods' explanation.
type Failure struct {
	// Phase is "rollout", or "rollback" for the return to the last good
	// revision.
	Phase       string            `json:"phase"`
	Deployment  string            `json:"deployment"`
	Cause       string            `json:"cause"`
	Detail      string            `json:"detail,omitempty"`
	Pods        string            `json:"pods"`
	Explanation *kube.Explanation `json:"explanation,omitempty"`
}

// RolledBack says where a failed run left the release.
type RolledBack struct {
	Failed int `json:"failedRevision"`
	// To is the good revision returned to, recorded again as As.
	To int `json:"to,omitempty"`
	As int `json:"as,omitempty"`
	// Uninstalled: no revision ever served, so the release was removed.
	Uninstalled bool `json:"uninstalled,omitempty"`
}

// Timeline collects a run's progress reports, keeping one per change.
type Timeline struct {
	mu      sync.Mutex
	moments []Moment
}

// maxMoments bounds a timeline; the middle of a long one is thinned.
const maxMoments = 120

// Add notes a progress report when it differs from the last one.
func (t *Timeline) Add(p Progress) {
	m := Moment{At: p.Elapsed, Phase: p.Phase, Wave: p.Wave, Waves: p.Waves, RolloutProgress: p.RolloutProgress}
	m.Elapsed, m.Idle, m.Stall = 0, 0, 0
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.moments); n > 0 {
		last := t.moments[n-1]
		last.At = m.At
		if last == m {
			return
		}
	}
	t.moments = append(t.moments, m)
	if len(t.moments) > maxMoments {
		// Keep the first and last quarters whole, every other moment between.
		var thin []Moment
		for i, mo := range t.moments {
			if i < maxMoments/4 || i >= len(t.moments)-maxMoments/4 || i%2 == 0 {
				thin = append(thin, mo)
			}
		}
		t.moments = thin
	}
}

// Moments returns the timeline so far.
func (t *Timeline) Moments() []Moment {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Moment(nil), t.moments...)
}

// RecordInput is what a record is made of.
type RecordInput struct {
	Verb   string
	Target targets.Target
	// Result is the verb's: a *Result, a *PromoteResult, or nil when it
	// failed before it started.
	Result    summarizer
	Err       error
	Timeline  *Timeline
	Reproduce []string
}

// NewRecord makes the record of a run.
func NewRecord(in RecordInput) Record {
	rec := Record{Verb: in.Verb, OK: in.Err == nil, Target: string(in.Target.Name), Release: in.Target.Release,
		Namespace: in.Target.Namespace, Timeline: in.Timeline.Moments(), Reproduce: in.Reproduce}
	if in.Err != nil {
		rec.Error = oneLine(in.Err)
	}
	var res *Result
	switch r := in.Result.(type) {
	case *Result:
		if r != nil {
			res, rec.result = r, r
		}
	case *PromoteResult:
		if r != nil {
			rec.Canary, rec.Gate, res = &r.Canary, r.Gate, r.Result
			// A refusal shows the gate's verdict: the calls per pod and
			// the metrics table are what a person reads to decide.
			if r.Result != nil || r.Preview != nil || r.Refusal != "" {
				rec.result = r
			}
		}
	}
	if res != nil {
		rec.Target, rec.Release, rec.Namespace, rec.Cluster = string(res.Target), res.Release, res.Namespace, res.Cluster
		rec.Before, rec.After, rec.Status, rec.Outcome = res.Previous, res.Revision, res.Status, res.Outcome
		rec.Image, rec.Digest, rec.SecretNames, rec.Duration = res.Image, res.Digest, res.SecretNames, res.Duration
		if res.Failed > 0 {
			rb := &RolledBack{Failed: res.Failed}
			switch {
			case res.Status == "uninstalled":
				rb.Uninstalled = true
			case errors.Is(in.Err, ErrRolledBack):
				rb.To, rb.As = res.Previous, res.Revision
			}
			rec.RolledBack = rb
		}
	}
	for i, re := range rolloutErrors(in.Err) {
		phase := "rollout"
		if i > 0 {
			phase = "rollback"
		}
		rec.Failures = append(rec.Failures, Failure{Phase: phase, Deployment: re.Deployment, Cause: fmt.Sprint(re.Cause), Detail: re.Detail,
			Pods: re.Progress.String(), Explanation: re.Explanation})
	}
	return rec
}

// rolloutErrors finds every rollout error in err's tree, in order: the
// run's own, then a rollback's.
func rolloutErrors(err error) []*kube.RolloutError {
	var out []*kube.RolloutError
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if re, ok := e.(*kube.RolloutError); ok {
			out = append(out, re)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// Markdown renders the record for a person and a GitHub job summary: on
// success the verb's summary; on failure what failed and why first, then
// where the release was left; then the timeline and the commands that
// reproduce the run.
func (r Record) Markdown() string {
	var b strings.Builder
	if !r.OK {
		title := fmt.Sprintf("### %s %s failed", r.Verb, r.Target)
		if r.Target == "" {
			title = fmt.Sprintf("### %s failed before it started", r.Verb)
		}
		switch rb := r.RolledBack; {
		case rb != nil && rb.Uninstalled:
			title += fmt.Sprintf(": revision %d never served, the release was uninstalled", rb.Failed)
		case rb != nil && rb.To > 0:
			title += fmt.Sprintf(": revision %d rolled back to revision %d (recorded as %d)", rb.Failed, rb.To, rb.As)
		}
		fmt.Fprintf(&b, "%s\n\n```\n%s\n```\n\n", title, r.Error)
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "#### Why the %s of deployment %s failed: %s\n\n%s", f.Phase, f.Deployment, f.Cause, f.Pods)
			if f.Detail != "" {
				b.WriteString("; " + f.Detail)
			}
			b.WriteString("\n\n")
			if f.Explanation != nil {
				b.WriteString(f.Explanation.Markdown())
			}
		}
	}
	if r.result != nil {
		b.WriteString(r.result.Summary())
	}
	if len(r.Timeline) > 0 {
		b.WriteString("\n#### Rollout timeline\n\n| at | phase | wave | ready | updated | old | draining | pending |\n|---|---|---|---|---|---|---|---|\n")
		for _, m := range r.Timeline {
			wave := ""
			if m.Waves > 0 {
				wave = fmt.Sprintf("%d/%d", m.Wave, m.Waves)
			}
			pending := ""
			if m.Pending > 0 {
				pending = fmt.Sprint(m.Pending)
				if m.PendingReason != "" {
					pending += " (" + m.PendingReason + ")"
				}
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %d/%d | %d/%d | %d | %d | %s |\n", roundFor(m.At, time.Minute), m.Phase, wave,
				m.Ready, m.Desired, m.Updated, m.Desired, m.Old, m.Draining, strings.ReplaceAll(pending, "|", "/"))
		}
	}
	if len(r.Reproduce) > 0 {
		b.WriteString("\n#### Reproduce\n\n```sh\n")
		for _, c := range r.Reproduce {
			b.WriteString(c + "\n")
		}
		b.WriteString("```\n")
	}
	return b.String()
}
