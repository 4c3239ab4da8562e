package release

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pmezard/go-difflib/difflib"
	"helm.sh/helm/v3/pkg/action"
	hrelease "helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/runner/kube"
	"github.com/ringg/ringg-ci/runner/secrets"
)

// Plan shows what a deploy would change, changing nothing: it renders the
// release, submits every object to the API server as a dry-run apply, and
// diffs the result against the live release's manifest.
type Plan struct {
	Clients Clients
	Plan    pipeline.DeployPlan
	// Secrets is the bundle the deploy would apply, if any.
	Secrets *secrets.Bundle
}

// Change says what a deploy does to one object.
type Change string

// The changes of an object.
const (
	Create    Change = "create"
	Update    Change = "update"
	Delete    Change = "delete"
	Unchanged Change = "unchanged"
)

// ObjectChange is one object of the release and what would happen to it.
type ObjectChange struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Change Change `json:"change"`
	// Diff is a unified line diff of the manifest; never set for Secrets,
	// whose content is shown only as changed or unchanged.
	Diff string `json:"diff,omitempty"`
}

// PlanResult is what a deploy would do.
type PlanResult struct {
	Target    string `json:"target"`
	Release   string `json:"release"`
	Namespace string `json:"namespace"`
	// Cluster names the cluster the plan was made against.
	Cluster string `json:"cluster,omitempty"`
	// LiveRevision is the revision diffed against; zero when the release
	// does not exist yet.
	LiveRevision int                  `json:"liveRevision"`
	LiveStatus   string               `json:"liveStatus,omitempty"`
	Image        string               `json:"image"`
	SecretNames  pipeline.SecretNames `json:"secretNames"`
	// Secrets are the bundle's Secrets and whether they exist already.
	Secrets []secrets.Status `json:"secrets,omitempty"`
	Objects []ObjectChange   `json:"objects"`
	Timeout time.Duration    `json:"timeout"`
	// Takeover is set when the live release was written by the old pipeline:
	// what its first ringg-ci run drops, changes or refuses to change.
	Takeover *TakeoverChanges `json:"takeover,omitempty"`
}

// MarshalJSON writes the timeout as text.
func (r PlanResult) MarshalJSON() ([]byte, error) {
	type plain PlanResult
	return pipeline.MarshalWithDurations(plain(r), map[string]time.Duration{"timeout": r.Timeout})
}

// Changed reports whether the deploy would change any object.
func (r PlanResult) Changed() bool {
	return slices.ContainsFunc(r.Objects, func(o ObjectChange) bool { return o.Change != Unchanged })
}

// String is the plan for a person: one line per object, then the diffs.
func (r PlanResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: release %s in %s", r.Target, r.Release, r.Namespace)
	if r.Cluster != "" {
		fmt.Fprintf(&b, " of %s", r.Cluster)
	}
	if r.LiveRevision > 0 {
		fmt.Fprintf(&b, " (live revision %d, %s)\n", r.LiveRevision, r.LiveStatus)
	} else {
		b.WriteString(" (not installed yet)\n")
	}
	fmt.Fprintf(&b, "image %s, rollout timeout %s\n", r.Image, r.Timeout)
	for _, s := range r.Secrets {
		fmt.Fprintf(&b, "secret %s (%s): %s\n", s.Name, s.Kind, s.State)
	}
	if r.Takeover != nil {
		b.WriteString(r.Takeover.String())
	}
	for _, o := range r.Objects {
		fmt.Fprintf(&b, "%-9s %s/%s\n", o.Change, o.Kind, o.Name)
	}
	for _, o := range r.Objects {
		if o.Diff != "" {
			fmt.Fprintf(&b, "\n--- %s/%s (live)\n+++ %s/%s (planned)\n%s", o.Kind, o.Name, o.Kind, o.Name, o.Diff)
		}
	}
	return b.String()
}

// Run renders the release exactly as a deploy would, dry-runs it against the
// cluster and returns the changes.
func (p *Plan) Run(ctx context.Context) (*PlanResult, error) {
	c, err := p.Clients.withDefaults()
	if err != nil {
		return nil, err
	}
	d := Deploy{Clients: c, Plan: p.Plan, Secrets: p.Secrets}
	j, err := d.job(c)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	if err := j.prepare(ctx); err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	res, err := preview(ctx, j, p.Secrets)
	if err != nil {
		return res, fmt.Errorf("plan %s (release %s in %s): %w", j.target.Name, j.target.Release, j.target.Namespace, err)
	}
	res.Timeout = j.timeout
	return res, nil
}

// preview renders j with Helm's server-side dry run, submits each object
// as a dry-run server-side apply, and diffs against the live release.
func preview(ctx context.Context, j *job, bundle *secrets.Bundle) (*PlanResult, error) {
	c, cfg, t := j.c, j.cfg, j.target
	res := &PlanResult{Target: string(t.Name), Release: t.Release, Namespace: t.Namespace, Cluster: c.Cluster}
	hist, err := readHistory(cfg, t.Release)
	if err != nil {
		return res, err
	}
	live, base := hist.last(), hist.current()
	sp, err := j.desire(hist)
	if err != nil {
		return res, err
	}
	vals := sp.values
	res.Image, res.SecretNames = sp.image.String(), sp.names
	if bundle != nil {
		if res.Secrets, err = secrets.Describe(ctx, c.Kube, *bundle); err != nil {
			return res, err
		}
	}
	var planned *hrelease.Release
	if live == nil {
		in := action.NewInstall(cfg)
		in.ReleaseName, in.Namespace = t.Release, t.Namespace
		in.DryRun, in.DryRunOption = true, "server"
		in.DisableOpenAPIValidation = true
		planned, err = in.RunWithContext(ctx, sp.chart, vals)
	} else {
		res.LiveRevision, res.LiveStatus = base.Version, string(base.Info.Status)
		if live.Info.Status.IsPending() {
			// Helm refuses to dry-run over a pending record; render from scratch.
			in := action.NewInstall(cfg)
			in.ReleaseName, in.Namespace = t.Release, t.Namespace
			in.DryRun, in.DryRunOption, in.Replace = true, "server", true
			in.DisableOpenAPIValidation = true
			planned, err = in.RunWithContext(ctx, sp.chart, vals)
		} else {
			up := action.NewUpgrade(cfg)
			up.Namespace = t.Namespace
			up.DryRun, up.DryRunOption = true, "server"
			up.DisableOpenAPIValidation = true
			planned, err = up.RunWithContext(ctx, t.Release, sp.chart, vals)
		}
	}
	if err != nil {
		return res, fmt.Errorf("helm dry run: %s", oneLine(err))
	}
	if err := dryRunApply(ctx, c, t.Namespace, planned.Manifest); err != nil {
		return res, err
	}
	liveManifest := ""
	if base != nil {
		liveManifest = base.Manifest
	}
	if base := hist.takeoverBase(); base != nil {
		tk, red, err := takeoverOf(ctx, c, hist, t, base, sp.chart, vals, planned.Manifest)
		if err != nil {
			return res, err
		}
		res.Takeover = tk
		// The old pipeline's manifest holds the values it was given, secrets
		// passed with --set among them.
		liveManifest = red.manifest(liveManifest)
	}
	res.Objects = diffManifests(liveManifest, planned.Manifest)
	return res, nil
}

// dryRunApply submits every object of a manifest to the API server as a
// server-side apply with dryRun=All: admission, validation and immutable
// fields are checked by the server, nothing is stored. Every failure is
// reported at once.
func dryRunApply(ctx context.Context, c Clients, namespace, manifest string) error {
	getter := kube.NewGetter(c.Config, namespace)
	mapper, err := getter.ToRESTMapper()
	if err != nil {
		return fmt.Errorf("server-side dry run: %w", err)
	}
	cfg, _ := getter.ToRESTConfig()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("server-side dry run: %w", err)
	}
	var errs []error
	for _, o := range objects(manifest) {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(o.yaml), &u.Object); err != nil {
			errs = append(errs, fmt.Errorf("%s/%s: %w", o.kind, o.name, err))
			continue
		}
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s/%s: the cluster does not serve %s: %w", o.kind, o.name, gvk, err))
			continue
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == "namespace" {
			ri = dyn.Resource(m.Resource).Namespace(namespace)
		}
		if _, err := ri.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "ringg-ci-plan", Force: true, DryRun: []string{metav1.DryRunAll}}); err != nil {
			errs = append(errs, fmt.Errorf("%s/%s: %w", o.kind, o.name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("the API server rejects the planned release: %w; fix the chart or values", err)
	}
	return nil
}

type object struct{ kind, name, yaml string }

// objects splits a manifest into its objects, sorted by kind and name.
func objects(manifest string) []object {
	var out []object
	for _, doc := range releaseutil.SplitManifests(manifest) {
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if yaml.Unmarshal([]byte(doc), &head) != nil || head.Kind == "" {
			continue
		}
		out = append(out, object{kind: head.Kind, name: head.Metadata.Name, yaml: strings.TrimSpace(doc) + "\n"})
	}
	slices.SortFunc(out, func(a, b object) int {
		if c := strings.Compare(a.kind, b.kind); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return out
}

// diffManifests compares two manifests object by object.
func diffManifests(live, planned string) []ObjectChange {
	old := map[string]object{}
	for _, o := range objects(live) {
		old[o.kind+"/"+o.name] = o
	}
	var out []ObjectChange
	for _, o := range objects(planned) {
		key := o.kind + "/" + o.name
		ch := ObjectChange{Kind: o.kind, Name: o.name}
		prev, ok := old[key]
		delete(old, key)
		switch {
		case !ok:
			ch.Change = Create
			if o.kind != "Secret" {
				ch.Diff = lineDiff("", o.yaml)
			}
		case prev.yaml == o.yaml:
			ch.Change = Unchanged
		default:
			ch.Change = Update
			if o.kind != "Secret" {
				ch.Diff = lineDiff(prev.yaml, o.yaml)
			}
		}
		out = append(out, ch)
	}
	for _, o := range objects(live) {
		if _, gone := old[o.kind+"/"+o.name]; gone {
			out = append(out, ObjectChange{Kind: o.kind, Name: o.name, Change: Delete})
		}
	}
	return out
}

// lineDiff is a unified-style diff of two texts (all lines, no hunks):
// unchanged lines start with " ", removed with "-", added with "+", and runs
// of more than six unchanged lines are folded.
func lineDiff(before, after string) string {
	x, y := splitLines(before), splitLines(after)
	type line struct {
		op   byte
		text string
	}
	var lines []line
	add := func(op byte, texts []string) {
		for _, t := range texts {
			lines = append(lines, line{op, t})
		}
	}
	// No junk heuristics: in a manifest, a line repeated often is no less a
	// change than any other.
	for _, c := range difflib.NewMatcherWithJunk(x, y, false, nil).GetOpCodes() {
		switch c.Tag {
		case 'e':
			add(' ', x[c.I1:c.I2])
		case 'd':
			add('-', x[c.I1:c.I2])
		case 'i':
			add('+', y[c.J1:c.J2])
		case 'r':
			add('-', x[c.I1:c.I2])
			add('+', y[c.J1:c.J2])
		}
	}
	const context = 3
	var b strings.Builder
	for k := 0; k < len(lines); {
		if lines[k].op != ' ' {
			b.WriteString(string(lines[k].op) + lines[k].text + "\n")
			k++
			continue
		}
		end := k
		for end < len(lines) && lines[end].op == ' ' {
			end++
		}
		run := lines[k:end]
		if len(run) > 2*context {
			lead, trail := context, context
			if k == 0 {
				lead = 0
			}
			if end == len(lines) {
				trail = 0
			}
			for _, l := range run[:lead] {
				b.WriteString(" " + l.text + "\n")
			}
			fmt.Fprintf(&b, "@@ %d unchanged lines @@\n", len(run)-lead-trail)
			for _, l := range run[len(run)-trail:] {
				b.WriteString(" " + l.text + "\n")
			}
		} else {
			for _, l := range run {
				b.WriteString(" " + l.text + "\n")
			}
		}
		k = end
	}
	return b.String()
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
