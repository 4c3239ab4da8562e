package release

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/ops"
)

// Summary renders what a deploy or rollback did as Markdown, for a person and
// for a GitHub job summary: where, which image, which revision, how many pods.
func (r *Result) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s: release %s revision %d %s\n\n", r.Target, r.Release, r.Revision, r.Status)
	b.WriteString("| | |\n|---|---|\n")
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "| %s | %s |\n", k, v)
		}
	}
	row("namespace", r.Namespace)
	row("cluster", r.Cluster)
	if r.Failed > 0 {
		row("failed revision", fmt.Sprint(r.Failed))
	}
	if r.Image != "" {
		row("image", "`"+r.Image+"`")
	} else if r.Digest != "" {
		row("digest", "`"+r.Digest+"`")
	}
	row("pods", r.Pods.String())
	if r.Previous > 0 {
		row("previous revision", fmt.Sprint(r.Previous))
	}
	row("secrets", secretsLine(r))
	row("recovered", r.Recovered)
	if r.Calls != nil {
		row("synthetic calls", callsLine(r.Calls))
	}
	if len(r.Pruned) > 0 {
		row("pruned secret versions", strings.Join(r.Pruned, ", "))
	}
	row("took", fmt.Sprintf("%s (timeout %s)", r.Duration.Round(time.Second), r.Timeout.Round(time.Second)))
	return b.String()
}

// secretsLine names the Secrets a release uses and, for a new bundle, what
// applying it did; never their data.
func secretsLine(r *Result) string {
	state := map[string]string{}
	for _, s := range r.SecretsApplied {
		state[s.Name] = string(s.State)
	}
	var parts []string
	for _, n := range []string{r.SecretNames.AppEnv, r.SecretNames.GCPCreds} {
		if n == "" {
			continue
		}
		if st := state[n]; st != "" {
			n += " (" + st + ")"
		}
		parts = append(parts, "`"+n+"`")
	}
	return strings.Join(parts, ", ")
}

// callsLine is one round of synthetic calls in a line.
func callsLine(r *ops.CallReport) string {
	if bad := r.Failed(); len(bad) > 0 {
		return fmt.Sprintf("%d of %d pods failed (ws `%s`, held %s): %s", len(bad), len(r.Pods), r.Endpoint, r.Hold, strings.Join(bad, "; "))
	}
	return fmt.Sprintf("%d/%d pods held %s on ws `%s`", len(r.Pods), len(r.Pods), r.Hold, r.Endpoint)
}

// Summary renders what promote observed on the canary — the gate's verdict,
// calls and metrics tables included — and what it did to stable (or, for a
// dry run, would do) as Markdown.
func (p *PromoteResult) Summary() string {
	var b strings.Builder
	c := p.Canary
	verdict := fmt.Sprintf("no restarts during %s", c.Soak.Round(time.Second))
	if p.Refusal != "" {
		verdict = "REFUSED"
	}
	fmt.Fprintf(&b, "### promote: canary %s revision %d runs `%s` on %d pods, %s\n\n",
		c.Release, c.Revision, orUnknownDigest(c.Digest), len(c.Pods), verdict)
	if p.Refusal != "" {
		fmt.Fprintf(&b, "%s\n\n", p.Refusal)
	}
	if g := p.Gate; g != nil {
		b.WriteString(g.Markdown())
	}
	switch {
	case p.Result != nil:
		b.WriteString(p.Result.Summary())
	case p.Preview != nil:
		b.WriteString("Dry run: nothing changed. A promote would do this:\n\n```\n")
		b.WriteString(p.Preview.String())
		b.WriteString("```\n")
	}
	return b.String()
}

func orUnknownDigest(d string) string {
	if d == "" {
		return "no known digest"
	}
	return d
}

// Markdown is the gate's verdict for a job summary: how long it waited,
// the calls of the last (or failed) round, the metrics' verdict table.
func (g *Gate) Markdown() string {
	var b strings.Builder
	if g.Waited > 0 {
		fmt.Fprintf(&b, "Waited %s for the canary to settle.\n\n", g.Waited.Round(time.Second))
	}
	if g.Calls != nil {
		fmt.Fprintf(&b, "Synthetic calls: %d rounds passed; the last round: %s\n\n```\n%s```\n\n", g.CallRounds, callsLine(g.Calls), g.Calls.String())
	} else {
		b.WriteString("Synthetic calls: none configured.\n\n")
	}
	switch {
	case g.Metrics != nil:
		b.WriteString(g.Metrics.Markdown())
		b.WriteString("\n")
	case g.MetricsNote != "":
		fmt.Fprintf(&b, "Metrics: %s.\n\n", g.MetricsNote)
	}
	return b.String()
}

// Merge appends other's clusters, targets and promotions: the status of targets read
// through different clusters.
func (s *StatusReport) Merge(other *StatusReport) {
	s.Clusters = append(s.Clusters, other.Clusters...)
	s.Targets = append(s.Targets, other.Targets...)
	s.Promotions = append(s.Promotions, other.Promotions...)
	s.Warnings = append(s.Warnings, other.Warnings...)
}

// RunningImage returns repository@digest of the image t's release runs,
// for a plan that keeps the image as it is: the digest its record pins, or,
// for a record the old pipeline wrote (a tag, no digest), the one digest its
// pods run according to their image IDs.
func RunningImage(ctx context.Context, c Clients, t targets.Target) (string, error) {
	c, err := c.withDefaults()
	if err != nil {
		return "", err
	}
	ts, err := targetStatus(ctx, c, t)
	if err != nil {
		return "", fmt.Errorf("read the image release %s in %s runs: %w", t.Release, t.Namespace, err)
	}
	switch {
	case !ts.Installed:
		return "", fmt.Errorf("release %s in %s is not installed: pass --image REPOSITORY@sha256:… to plan with", t.Release, t.Namespace)
	case ts.Digest != "":
		return t.Image + "@" + ts.Digest, nil
	}
	if d, ok := oneDigest(ts.Running); ok {
		return t.Image + "@" + d, nil
	}
	return "", fmt.Errorf("release %s in %s records no digest (revision %d, image tag %q) and its pods do not run one known digest (%s): pass --image REPOSITORY@sha256:… to plan with",
		t.Release, t.Namespace, ts.Revision, ts.ImageTag, shortList(ts.Running))
}
