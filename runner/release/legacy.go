package release

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	hrelease "helm.sh/helm/v3/pkg/release"
)

// The pipeline ringg-ci replaces (GitHub Actions running `helm upgrade` with
// the chart k8s/dv-pipecat) wrote release records that ringg-ci must tell
// from its own: they name the image by tag, hold whatever -f and --set gave
// them (secrets included: the old workflow passed two with --set, and its
// chart rendered them into the Deployment's env), and their chart is not
// ours. ringg-ci reads such records (plan, status, the canary's rollback to
// what stable runs) but never copies their values or rolls back to them.

// Origin says which pipeline wrote a release record.
type Origin string

// The origins of a record.
const (
	// OriginRinggCI: values are exactly the chart's values files plus what
	// ringg-ci computes (image digest, Secret names).
	OriginRinggCI Origin = "ringg-ci"
	// OriginOldPipeline: anything else, in practice the records the old
	// workflows wrote (image.tag, no digest, values given with -f and --set).
	OriginOldPipeline Origin = "old-pipeline"
)

// originOf classifies a record. ringg-ci's records always pin image.digest,
// never set image.tag, and hold only values their own chart's schema
// (additionalProperties: false) accepts; the old pipeline's records have no
// digest and their chart has no schema.
func originOf(rel *hrelease.Release) Origin {
	if rel == nil || digestOf(rel) == "" || imageTagOf(rel) != "" || rel.Chart == nil || len(rel.Chart.Schema) == 0 {
		return OriginOldPipeline
	}
	if len(foreignPaths(rel.Config, rel.Chart.Schema)) > 0 {
		return OriginOldPipeline
	}
	return OriginRinggCI
}

// imageTagOf reads the image tag a record was given; the old pipeline set
// it with --set image.tag=<sha>.
func imageTagOf(rel *hrelease.Release) string {
	if rel == nil {
		return ""
	}
	m, _ := rel.Config["image"].(map[string]any)
	switch t := m["tag"].(type) {
	case string:
		return t
	case float64, int, int64, bool:
		return fmt.Sprint(t)
	}
	return ""
}

// chartOf names a record's chart as name-version.
func chartOf(rel *hrelease.Release) string {
	if rel == nil || rel.Chart == nil || rel.Chart.Metadata == nil {
		return "unknown chart"
	}
	return rel.Chart.Metadata.Name + "-" + rel.Chart.Metadata.Version
}

// OldRecord describes a record the old pipeline wrote, without any value.
type OldRecord struct {
	Revision int    `json:"revision"`
	Status   string `json:"status"`
	Chart    string `json:"chart"`
	ImageTag string `json:"imageTag,omitempty"`
	// Values counts the values the record holds (given with -f and --set):
	// any of them may be a secret.
	Values int `json:"values"`
	// Foreign names (never shows) the values the chart ringg-ci deploys has
	// no place for, such as the old workflow's --set secrets; empty when the
	// chart was not at hand.
	Foreign []string `json:"foreign,omitempty"`
}

// old lists the records that ringg-ci did not write, oldest first. schema,
// when given, is the deployed chart's values schema: the values it has no
// place for are named.
func (h history) old(schema []byte) []OldRecord {
	var out []OldRecord
	for _, rel := range h {
		if originOf(rel) != OriginOldPipeline {
			continue
		}
		r := OldRecord{Revision: rel.Version, Status: string(rel.Info.Status), Chart: chartOf(rel), ImageTag: imageTagOf(rel), Values: len(leaves(rel.Config))}
		if len(schema) > 0 {
			r.Foreign = foreignPaths(rel.Config, schema)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b OldRecord) int { return a.Revision - b.Revision })
	return out
}

// oldRevisions are the revisions of the records ringg-ci did not write.
func (h history) oldRevisions() []int {
	var out []int
	for _, o := range h.old(nil) {
		out = append(out, o.Revision)
	}
	return out
}

// revisionList writes revisions as "1, 2 and 5".
func revisionList(rs []int) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = strconv.Itoa(r)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// seg is one step of a path into a values tree: a map key, or a list index.
type seg struct {
	key   string
	index int
	list  bool
}

// valuePath is the path of one value, written as Helm users read it:
// ingress.annotations["kubernetes.io/ingress.class"], env[0].value.
type valuePath []seg

var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

func (p valuePath) String() string {
	var b strings.Builder
	for i, s := range p {
		switch {
		case s.list:
			fmt.Fprintf(&b, "[%d]", s.index)
		case plainKey.MatchString(s.key):
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.key)
		default:
			fmt.Fprintf(&b, "[%q]", s.key)
		}
	}
	return b.String()
}

// leaf is one scalar of a values tree (or an empty map or list, which is a
// value of its own in Helm: it replaces a default).
type leaf struct {
	path  valuePath
	value any
}

// leaves flattens a values tree, in key order.
func leaves(v any) []leaf {
	var out []leaf
	var walk func(p valuePath, v any)
	walk = func(p valuePath, v any) {
		switch t := v.(type) {
		case map[string]any:
			if len(t) == 0 && len(p) > 0 {
				out = append(out, leaf{slices.Clone(p), t})
				return
			}
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				walk(append(p, seg{key: k}), t[k])
			}
		case []any:
			if len(t) == 0 {
				out = append(out, leaf{slices.Clone(p), t})
				return
			}
			for i, e := range t {
				walk(append(p, seg{index: i, list: true}), e)
			}
		default:
			out = append(out, leaf{slices.Clone(p), v})
		}
	}
	walk(nil, v)
	return out
}

// foreignPaths names the values of config that a chart's JSON schema has no
// place for: keys its objects do not declare where they allow no others.
func foreignPaths(config map[string]any, schema []byte) []string {
	root := parseSchema(schema)
	if len(config) == 0 || root == nil {
		return nil
	}
	var out []string
	for _, l := range leaves(config) {
		if !schemaAllows(root, l.path) {
			out = append(out, l.path.String())
		}
	}
	return out
}

// schemaAllows walks a JSON schema along a path: a key the schema's object
// neither declares nor allows through additionalProperties is refused;
// anything a schema does not constrain is allowed. anyOf allows what any of
// its branches allows.
func schemaAllows(node map[string]any, p valuePath) bool {
	for i, s := range p {
		if node == nil {
			return true
		}
		if alts, ok := node["anyOf"].([]any); ok {
			for _, a := range alts {
				if am, ok := a.(map[string]any); ok && schemaAllows(am, p[i:]) {
					return true
				}
			}
			return false
		}
		if s.list {
			node, _ = node["items"].(map[string]any)
			continue
		}
		if props, ok := node["properties"].(map[string]any); ok {
			if next, ok := props[s.key].(map[string]any); ok {
				node = next
				continue
			}
		}
		switch ap := node["additionalProperties"].(type) {
		case bool:
			if !ap {
				return false
			}
			node = nil
		case map[string]any:
			node = ap
		default:
			node = nil
		}
	}
	return true
}

// redactor hides values of an old record wherever a plan shows its
// manifest: the old pipeline's --set values (secrets among them) were
// rendered into the Deployment's env.
type redactor struct {
	whole map[string]bool // a YAML scalar equal to one of these is hidden
	parts []string        // long values, hidden wherever they appear
}

// hidden replaces a value a plan must not show.
const hidden = "(hidden)"

// newRedactor collects the string values of an old record that may be
// secrets: those the chart ringg-ci deploys has no place for (the old
// workflow's --set secrets), and env values no values file of ringg-ci sets
// to the same. Other values are chart settings (hosts, annotations, sizes)
// that a plan must show.
func newRedactor(config map[string]any, schema []byte, planned map[string]any) *redactor {
	r := &redactor{whole: map[string]bool{}}
	root := parseSchema(schema)
	inPlan := map[string]any{}
	for _, l := range leaves(planned) {
		inPlan[l.path.String()] = l.value
	}
	for _, l := range leaves(config) {
		s, ok := l.value.(string)
		if !ok || s == "" {
			continue
		}
		ps := l.path.String()
		now, set := inPlan[ps]
		foreign := root != nil && !schemaAllows(root, l.path)
		if foreign || isEnvValue(ps) && (!set || now != l.value) {
			r.whole[s] = true
			if len(s) >= 8 {
				r.parts = append(r.parts, s)
			}
		}
	}
	// Longest first, so a value containing another is hidden whole.
	slices.SortFunc(r.parts, func(a, b string) int { return len(b) - len(a) })
	return r
}

var envValuePath = regexp.MustCompile(`(^|\.)env\[[^\]]*\]\.value$`)

func isEnvValue(path string) bool { return envValuePath.MatchString(path) }

// text hides every collected value in a text.
func (r *redactor) text(s string) string {
	if r == nil {
		return s
	}
	for _, p := range r.parts {
		s = strings.ReplaceAll(s, p, hidden)
	}
	return s
}

// manifest hides collected values in a YAML manifest, line by line: a
// scalar equal to one is replaced whole (short values too), a long one
// wherever it appears.
func (r *redactor) manifest(m string) string {
	if r == nil || (len(r.whole) == 0 && len(r.parts) == 0) {
		return m
	}
	lines := strings.Split(m, "\n")
	for i, line := range lines {
		lines[i] = r.line(line)
	}
	return strings.Join(lines, "\n")
}

func (r *redactor) line(line string) string {
	head, val := line, ""
	if k := strings.Index(line, ": "); k >= 0 {
		head, val = line[:k+2], line[k+2:]
	} else if t := strings.TrimLeft(line, " "); strings.HasPrefix(t, "- ") {
		k := len(line) - len(t) + 2
		head, val = line[:k], line[k:]
	}
	if val != "" && r.whole[unquote(val)] {
		return head + hidden
	}
	return r.text(line)
}

// unquote reads a YAML scalar as written in a rendered manifest.
func unquote(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"') {
		if s, err := strconv.Unquote(v); err == nil {
			return s
		}
	}
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return strings.ReplaceAll(v[1:len(v)-1], "''", "'")
	}
	return v
}
