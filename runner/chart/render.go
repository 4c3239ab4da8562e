package chart

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"sigs.k8s.io/yaml"
)

// DefaultKubeVersion is the Kubernetes version charts are rendered for when
// RenderOptions.KubeVersion is empty: the version of the client libraries.
const DefaultKubeVersion = "v1.37.2"

// DefaultNamespace is used when RenderOptions.Namespace is empty.
const DefaultNamespace = "default"

// RenderOptions say which release a chart is rendered for.
type RenderOptions struct {
	// Release is the Helm release name (required).
	Release string
	// Namespace of the release; DefaultNamespace when empty.
	Namespace string
	// KubeVersion the templates see as .Capabilities.KubeVersion and the
	// chart's kubeVersion constraint is checked against; DefaultKubeVersion
	// when empty.
	KubeVersion string
	// Logger receives Helm's warnings; discarded when nil.
	Logger *slog.Logger
}

// Manifests is a rendered release.
type Manifests struct {
	// Text is the manifest as Helm stores it in the release record: every
	// document preceded by `---` and its `# Source:` template.
	Text string
	// Docs are the documents of Text, sorted by kind then name.
	Docs []Doc
	// Notes is the rendered NOTES.txt.
	Notes string
}

// Doc is one Kubernetes object of a rendered release.
type Doc struct {
	APIVersion string
	Kind       string
	Name       string
	// Source is the chart template that produced the object.
	Source string
	// YAML is the object's text.
	YAML string
}

// Find returns the documents of the given kind.
func (m Manifests) Find(kind string) []Doc {
	var out []Doc
	for _, d := range m.Docs {
		if d.Kind == kind {
			out = append(out, d)
		}
	}
	return out
}

// Kinds lists the kinds of the documents, one entry per document, in Docs
// order.
func (m Manifests) Kinds() []string {
	out := make([]string, len(m.Docs))
	for i, d := range m.Docs {
		out[i] = d.Kind
	}
	return out
}

// Render renders ch with the user values vals (from Values) for a release,
// as `helm template` would: client only, no cluster, no network. The chart's
// values.schema.json and its fail checks apply; their errors name the value
// at fault.
func Render(ch *chart.Chart, vals map[string]any, opts RenderOptions) (Manifests, error) {
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if opts.KubeVersion == "" {
		opts.KubeVersion = DefaultKubeVersion
	}
	what := fmt.Sprintf("render chart %s for release %s in %s", ch.Name(), opts.Release, opts.Namespace)
	if opts.Release == "" {
		return Manifests{}, fmt.Errorf("%s: no release name: set RenderOptions.Release", what)
	}
	kv, err := chartutil.ParseKubeVersion(opts.KubeVersion)
	if err != nil {
		return Manifests{}, fmt.Errorf("%s: kube version %q: %w: use a version like %s", what, opts.KubeVersion, err, DefaultKubeVersion)
	}

	cfg := &action.Configuration{Log: helmLog(opts.Logger)}
	install := action.NewInstall(cfg)
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.IncludeCRDs = true
	install.ReleaseName = opts.Release
	install.Namespace = opts.Namespace
	install.KubeVersion = kv

	rel, err := install.Run(ch, vals)
	if err != nil {
		if strings.Contains(err.Error(), "values don't meet the specifications of the schema") {
			return Manifests{}, fmt.Errorf("%s: %w: fix the values named above (the keys and types allowed are in the chart's values.schema.json)", what, err)
		}
		return Manifests{}, fmt.Errorf("%s: %w", what, err)
	}
	docs, err := parse(rel.Manifest)
	if err != nil {
		return Manifests{}, fmt.Errorf("%s: %w", what, err)
	}
	return Manifests{Text: rel.Manifest, Docs: docs, Notes: rel.Info.Notes}, nil
}

// helmLog adapts l to the printf-style logger v3 actions call unconditionally.
func helmLog(l *slog.Logger) action.DebugLog {
	if l == nil {
		l = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return func(format string, v ...any) {
		l.Debug(fmt.Sprintf(format, v...), "component", "helm")
	}
}

var (
	docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)
	sourceLine   = regexp.MustCompile(`(?m)^# Source: (.*)$`)
)

// parse splits a manifest into its documents.
func parse(manifest string) ([]Doc, error) {
	var docs []Doc
	for _, part := range docSeparator.Split(manifest, -1) {
		text := strings.TrimSpace(part)
		if text == "" {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(text), &head); err != nil {
			return nil, fmt.Errorf("parse rendered document %.80q: %w: fix the template that produced it", text, err)
		}
		if head.Kind == "" {
			continue // a template that rendered only comments
		}
		d := Doc{APIVersion: head.APIVersion, Kind: head.Kind, Name: head.Metadata.Name, YAML: text + "\n"}
		if m := sourceLine.FindStringSubmatch(text); m != nil {
			d.Source = m[1]
		}
		docs = append(docs, d)
	}
	slices.SortStableFunc(docs, func(a, b Doc) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
	})
	return docs, nil
}
