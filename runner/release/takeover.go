package release

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	helmchart "helm.sh/helm/v3/pkg/chart"
	hrelease "helm.sh/helm/v3/pkg/release"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/ringg/ringg-ci/ci/targets"
)

// ErrTakeoverRefused means the first ringg-ci run over a release the old
// pipeline wrote would silently change something its users rely on (an
// Ingress annotation such as the static IP's name, the port the Service
// targets...): the error names each one and the value to set.
var ErrTakeoverRefused = errors.New("takeover refused")

// TakeoverChanges is what the first ringg-ci run does to a release the old
// pipeline wrote: what the old release holds that ringg-ci will not carry,
// and what changes on the live objects.
type TakeoverChanges struct {
	// Revision is the old pipeline's record the run replaces.
	Revision int    `json:"revision"`
	Status   string `json:"status"`
	Chart    string `json:"chart"`
	ImageTag string `json:"imageTag,omitempty"`
	// Running is the digest the pods run (their image IDs), when they all run
	// one.
	Running string `json:"running,omitempty"`
	// LiveSecrets are the Secrets the live pods read; PlannedSecrets those
	// the release will read.
	LiveSecrets    []string `json:"liveSecrets,omitempty"`
	PlannedSecrets []string `json:"plannedSecrets,omitempty"`
	// Values are the old record's values ringg-ci does not set as they are.
	Values []ValueFate `json:"values,omitempty"`
	// Fields are the fields of the old manifest the run removes or changes.
	Fields []FieldChange `json:"fields,omitempty"`
	// Refusals are the changes a deploy or promote refuses to make.
	Refusals []Refusal `json:"refusals,omitempty"`
	// SetIn is the values file the refusals ask to edit.
	SetIn string `json:"setIn,omitempty"`
	// OldRecords are the revisions the old pipeline wrote.
	OldRecords []int `json:"oldRecords,omitempty"`
}

// ValueFate is one value of the old record and what becomes of it. The old
// value is never shown: the old pipeline passed secrets as values.
type ValueFate struct {
	Path string `json:"path"`
	Fate string `json:"fate"`
}

// FieldChange is one field of an object of the old release that the run
// removes or changes. Live is empty when it may hold a secret.
type FieldChange struct {
	Object  string `json:"object"`
	Path    string `json:"path"`
	Change  string `json:"change"`
	Live    string `json:"live,omitempty"`
	Planned string `json:"planned,omitempty"`
}

// Refusal is a change to a live object that users rely on, which a
// takeover refuses until a values file keeps it (or, for what no value
// controls, the chart does).
type Refusal struct {
	Object string `json:"object"`
	// What would happen, e.g. `annotation "x" ("v") would be removed`.
	What string `json:"what"`
	// Path and Value are the chart value that keeps the live state; Path is
	// empty when no value can.
	Path  []string `json:"path,omitempty"`
	Value any      `json:"value,omitempty"`
	// Fix says what to do when no value can keep it.
	Fix string `json:"fix,omitempty"`
}

// setting writes a refusal's value as path: value.
func (r Refusal) setting() string {
	if len(r.Path) == 0 {
		return r.Fix
	}
	p := make(valuePath, len(r.Path))
	for i, k := range r.Path {
		p[i] = seg{key: k}
	}
	v, _ := yaml.Marshal(r.Value)
	return p.String() + ": " + strings.TrimSpace(string(v))
}

// refusalsYAML is the values that keep every refused change, as YAML to
// paste into a values file.
func refusalsYAML(rs []Refusal) string {
	root := map[string]any{}
	for _, r := range rs {
		if len(r.Path) == 0 {
			continue
		}
		m := root
		for _, k := range r.Path[:len(r.Path)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
		m[r.Path[len(r.Path)-1]] = r.Value
	}
	if len(root) == 0 {
		return ""
	}
	b, _ := yaml.Marshal(root)
	return string(b)
}

// refusalError is the error of a refused takeover.
func refusalError(rel *hrelease.Release, rs []Refusal, setIn string) error {
	var what, set []string
	for _, r := range rs {
		what = append(what, r.Object+" "+r.What)
		set = append(set, r.setting())
	}
	return fmt.Errorf("%w: release %s revision %d was written by the old pipeline, and this run would change what its live objects have: %s; "+
		"keep them by setting, in %s: %s (to change them on purpose, take over with them kept first and change them in a later deploy)",
		ErrTakeoverRefused, rel.Name, rel.Version, strings.Join(what, "; "), setIn, strings.Join(set, "; "))
}

// takeoverBase is the record a run over an old-pipeline release starts
// from (current); nil when ringg-ci wrote it or the release does not exist.
func (h history) takeoverBase() *hrelease.Release {
	if rel := h.current(); rel != nil && originOf(rel) == OriginOldPipeline {
		return rel
	}
	return nil
}

// guardTakeover refuses, before anything changes, a run over a release the
// old pipeline wrote that would change what its users rely on.
func (j *job) guardTakeover(ctx context.Context) error {
	hist, err := readHistory(j.cfg, j.target.Release)
	if err != nil {
		return err
	}
	base := hist.takeoverBase()
	if base == nil {
		return nil
	}
	sp, err := j.desire(hist)
	if err != nil {
		return err
	}
	rs, err := refusals(ctx, j.c, j.target, base.Manifest, sp.r.manifests.Text)
	if err != nil || len(rs) == 0 {
		return err
	}
	red := newRedactor(base.Config, sp.chart.Schema, sp.values)
	return takeoverErr{msg: red.text(refusalError(base, rs, setIn(j.target)).Error())}
}

// takeoverErr keeps ErrTakeoverRefused visible to errors.Is after the
// message went through the redactor.
type takeoverErr struct{ msg string }

func (e takeoverErr) Error() string { return e.msg }
func (e takeoverErr) Unwrap() error { return ErrTakeoverRefused }

// setIn is the values file that configures a target's Service and Ingress.
func setIn(t targets.Target) string {
	if len(t.ValuesFiles) == 0 {
		return "the chart's values"
	}
	return t.ValuesFiles[0]
}

// takeoverOf describes the takeover of the old record base, one of hist, by
// a run that renders planned (manifest) from vals.
func takeoverOf(ctx context.Context, c Clients, hist history, t targets.Target, base *hrelease.Release, ch *helmchart.Chart, vals map[string]any, planned string) (*TakeoverChanges, *redactor, error) {
	red := newRedactor(base.Config, ch.Schema, vals)
	tk := &TakeoverChanges{Revision: base.Version, Status: string(base.Info.Status), Chart: chartOf(base), ImageTag: imageTagOf(base), SetIn: setIn(t)}
	w, err := observe(ctx, c.Kube, base)
	if err != nil {
		return nil, red, err
	}
	tk.Running, _ = oneDigest(digests(w.pods))
	if w.deployment != nil {
		tk.LiveSecrets = secretRefs(&w.deployment.Spec.Template.Spec)
	}
	if d := manifestDeployment(planned); d != nil {
		tk.PlannedSecrets = secretRefs(&d.Spec.Template.Spec)
	}
	digest, _ := nested(vals, "image", "digest").(string)
	tk.Values = valueFates(base.Config, vals, ch, digest)
	tk.Fields = fieldChanges(base.Manifest, planned, red)
	if tk.Refusals, err = refusals(ctx, c, t, base.Manifest, planned); err != nil {
		return nil, red, err
	}
	for i, r := range tk.Refusals {
		tk.Refusals[i].What = red.text(r.What)
		if s, ok := r.Value.(string); ok {
			tk.Refusals[i].Value = red.text(s)
		}
	}
	tk.OldRecords = hist.oldRevisions()
	return tk, red, nil
}

func nested(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

// secretRefs lists the Secrets a pod spec reads, env first, sorted within.
func secretRefs(spec *corev1.PodSpec) []string {
	var env, vols []string
	for _, c := range spec.Containers {
		for _, ef := range c.EnvFrom {
			if ef.SecretRef != nil && !slices.Contains(env, ef.SecretRef.Name) {
				env = append(env, ef.SecretRef.Name)
			}
		}
	}
	for _, v := range spec.Volumes {
		if v.Secret != nil && !slices.Contains(vols, v.Secret.SecretName) {
			vols = append(vols, v.Secret.SecretName)
		}
	}
	slices.Sort(env)
	slices.Sort(vols)
	return append(env, vols...)
}

// valueFates says what becomes of each value of the old record that the
// run does not set as it is. Old values are never shown (the old pipeline
// passed secrets as values); new ones are, except env values.
func valueFates(old, planned map[string]any, ch *helmchart.Chart, digest string) []ValueFate {
	root := parseSchema(ch.Schema)
	inPlan, defaults := map[string]any{}, map[string]any{}
	for _, l := range leaves(planned) {
		inPlan[l.path.String()] = l.value
	}
	for _, l := range leaves(ch.Values) {
		defaults[l.path.String()] = l.value
	}
	same := func(a, b any) bool { return scalar(a) == scalar(b) }
	var out []ValueFate
	for _, l := range leaves(old) {
		p := l.path.String()
		now, set := inPlan[p]
		def, hasDefault := defaults[p]
		var fate string
		switch {
		case p == "image.tag":
			fate = "replaced: the image is pinned by digest"
			if digest != "" {
				fate += " (image.digest " + digest + ")"
			}
		case set && same(now, l.value):
			continue
		case set && isEnvValue(p):
			fate = "changed (both values hidden)"
		case set:
			fate = "changed: now " + scalar(now)
		case root != nil && !schemaAllows(root, l.path):
			fate = "dropped: the chart ringg-ci deploys has no such value (value hidden)"
		case hasDefault && same(def, l.value):
			fate = "kept: the chart's default is the same"
		case hasDefault && !isEnvValue(p):
			fate = "dropped: no values file sets it; the chart's default " + scalar(def) + " applies"
		default:
			fate = "dropped: no values file sets it"
		}
		out = append(out, ValueFate{Path: p, Fate: fate})
	}
	return out
}

// parseSchema reads a chart's values.schema.json; nil when it has none.
func parseSchema(b []byte) map[string]any {
	var root map[string]any
	if len(b) == 0 || yaml.Unmarshal(b, &root) != nil {
		return nil
	}
	return root
}

// scalar writes a value for a person: strings quoted, the rest as YAML.
func scalar(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSpace(string(b))
}

// fieldChanges lists, object by object, the fields of the old manifest the
// planned one removes or changes (added fields show in the diff). Env
// values are never shown; other old values go through the redactor.
func fieldChanges(old, planned string, red *redactor) []FieldChange {
	plannedObjs := map[string]map[string]any{}
	for _, o := range objects(planned) {
		plannedObjs[o.kind+"/"+o.name] = parseObject(o.yaml)
	}
	var out []FieldChange
	for _, o := range objects(old) {
		if o.kind == "Secret" {
			continue
		}
		key := o.kind + "/" + o.name
		now, ok := plannedObjs[key]
		if !ok {
			out = append(out, FieldChange{Object: key, Path: "", Change: "deleted"})
			continue
		}
		was := objectFields(parseObject(o.yaml))
		is := objectFields(now)
		paths := slices.Sorted(maps.Keys(was))
		for _, p := range paths {
			v := was[p]
			nv, set := is[p]
			secret := isEnvValue(p)
			switch {
			case !set:
				fc := FieldChange{Object: key, Path: p, Change: "removed"}
				if !secret {
					fc.Live = red.text(v)
				}
				out = append(out, fc)
			case nv != v:
				fc := FieldChange{Object: key, Path: p, Change: "changed"}
				if !secret {
					fc.Live, fc.Planned = red.text(v), nv
				}
				out = append(out, fc)
			}
		}
	}
	return out
}

func parseObject(doc string) map[string]any {
	var m map[string]any
	_ = yaml.Unmarshal([]byte(doc), &m)
	return m
}

// objectFields flattens an object into field paths and scalar texts. List
// items are named by their name, host, path or key when they have one, so
// that the same container, env variable or port is compared across charts.
func objectFields(obj map[string]any) map[string]string {
	out := map[string]string{}
	var walk func(p string, v any)
	walk = func(p string, v any) {
		switch t := v.(type) {
		case map[string]any:
			if len(t) == 0 {
				out[p] = "{}"
			}
			for k, e := range t {
				if plainKey.MatchString(k) {
					walk(joinPath(p, k), e)
				} else {
					walk(p+fmt.Sprintf("[%q]", k), e)
				}
			}
		case []any:
			if len(t) == 0 {
				out[p] = "[]"
			}
			for i, e := range t {
				walk(p+"["+itemKey(e, i)+"]", e)
			}
		default:
			out[p] = scalar(t)
		}
	}
	walk("", obj)
	return out
}

func joinPath(p, k string) string {
	if p == "" {
		return k
	}
	return p + "." + k
}

func itemKey(e any, i int) string {
	if m, ok := e.(map[string]any); ok {
		for _, k := range []string{"containerPort", "port", "name", "host", "path", "key"} {
			if v, ok := m[k]; ok {
				if s, ok := v.(string); ok {
					return s
				}
				return fmt.Sprint(v)
			}
		}
	}
	return fmt.Sprint(i)
}

// refusals compares, for the objects users reach the app through, the live
// state with what the planned manifest would leave. old is the manifest of
// the record the run replaces: Helm's upgrade removes what it set and the
// planned manifest does not, and keeps what others (a controller, a person)
// added to the live object.
func refusals(ctx context.Context, c Clients, t targets.Target, old, planned string) ([]Refusal, error) {
	oldObjs := map[string]object{}
	for _, o := range objects(old) {
		oldObjs[o.kind+"/"+o.name] = o
	}
	plannedObjs := map[string]object{}
	for _, o := range objects(planned) {
		plannedObjs[o.kind+"/"+o.name] = o
	}
	keys := slices.Sorted(maps.Keys(oldObjs))
	for k := range plannedObjs {
		if _, ok := oldObjs[k]; !ok {
			keys = append(keys, k)
		}
	}
	var out []Refusal
	for _, key := range keys {
		o, p := oldObjs[key], plannedObjs[key]
		kind, name, _ := strings.Cut(key, "/")
		if kind != "Service" && kind != "Ingress" && kind != "Deployment" {
			continue
		}
		var orig, plan map[string]any
		if o.yaml != "" {
			orig = parseObject(o.yaml)
		}
		if p.yaml != "" {
			plan = parseObject(p.yaml)
		}
		live, err := liveObject(ctx, c, t.Namespace, kind, name)
		if err != nil {
			return nil, err
		}
		if live == nil {
			continue // nothing live to lose
		}
		out = append(out, guard(key, live, orig, plan)...)
	}
	return out, nil
}

// liveObject reads a Service, Ingress or Deployment as a map; nil when it
// does not exist.
func liveObject(ctx context.Context, c Clients, ns, kind, name string) (map[string]any, error) {
	var obj runtime.Object
	var err error
	switch kind {
	case "Service":
		obj, err = c.Kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	case "Ingress":
		obj, err = c.Kube.NetworkingV1().Ingresses(ns).Get(ctx, name, metav1.GetOptions{})
	case "Deployment":
		var d *appsv1.Deployment
		d, err = c.Kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		obj = d
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the live %s %s in %s: %w", kind, name, ns, err)
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("read the live %s %s: %w", kind, name, err)
	}
	return m, nil
}

// guard lists the refused changes to one object.
func guard(key string, live, orig, planned map[string]any) []Refusal {
	kind, _, _ := strings.Cut(key, "/")
	var out []Refusal
	if planned == nil {
		if orig == nil {
			return nil
		}
		r := Refusal{Object: key, What: "would be deleted (the new chart does not render it)"}
		switch kind {
		case "Service":
			r.Path, r.Value = []string{"service", "create"}, true
		case "Ingress":
			r.Path, r.Value = []string{"ingress", "enabled"}, true
		default:
			r.Fix = "render it from the chart"
		}
		return []Refusal{r}
	}
	valuesKey := map[string]string{"Service": "service", "Ingress": "ingress"}[kind]
	if valuesKey != "" {
		out = append(out, annotationRefusals(key, valuesKey, live, orig, planned)...)
	}
	switch kind {
	case "Ingress":
		lc, pc := str(live, "spec", "ingressClassName"), str(planned, "spec", "ingressClassName")
		if lc != "" && lc != pc && (pc != "" || str(orig, "spec", "ingressClassName") != "") {
			out = append(out, Refusal{Object: key, What: fmt.Sprintf("ingressClassName %q would become %q", lc, pc), Path: []string{"ingress", "className"}, Value: lc})
		}
		have := ingressHosts(planned)
		for _, h := range ingressHosts(orig) {
			if !slices.Contains(have, h) && slices.Contains(ingressHosts(live), h) {
				out = append(out, Refusal{Object: key, What: fmt.Sprintf("host %q would be removed", h), Fix: fmt.Sprintf("add host %q with its paths to ingress.hosts", h)})
			}
		}
	case "Service":
		lt, pt := str(live, "spec", "type"), str(planned, "spec", "type")
		if pt == "" {
			pt = "ClusterIP"
		}
		if lt != "" && lt != pt {
			out = append(out, Refusal{Object: key, What: fmt.Sprintf("type %s would become %s", lt, pt), Path: []string{"service", "type"}, Value: lt})
		}
		out = append(out, portRefusals(key, live, planned)...)
		ls, ps := fmt.Sprint(nested(live, "spec", "selector")), fmt.Sprint(nested(planned, "spec", "selector"))
		if ls != ps {
			out = append(out, Refusal{Object: key, What: fmt.Sprintf("selector %s would become %s", ls, ps),
				Fix: "the chart's Service selects by app name (dv-pipecat.serviceSelectorLabels); make it select what the live one does"})
		}
	case "Deployment":
		ls, ps := fmt.Sprint(nested(live, "spec", "selector")), fmt.Sprint(nested(planned, "spec", "selector"))
		if ls != ps {
			out = append(out, Refusal{Object: key, What: fmt.Sprintf("selector %s would become %s, which the API server refuses (a Deployment's selector cannot change)", ls, ps),
				Fix: "keep the chart's selector labels (dv-pipecat.selectorLabels) equal to the live ones"})
		}
	}
	return out
}

// annotationRefusals: a live annotation the planned object changes, or
// removes while the old manifest set it (Helm's merge keeps annotations
// others added).
func annotationRefusals(key, valuesKey string, live, orig, planned map[string]any) []Refusal {
	la, oa, pa := stringMap(live, "metadata", "annotations"), stringMap(orig, "metadata", "annotations"), stringMap(planned, "metadata", "annotations")
	var out []Refusal
	for _, k := range slices.Sorted(maps.Keys(la)) {
		v := la[k]
		pv, set := pa[k]
		_, managed := oa[k]
		switch {
		case set && pv != v:
			out = append(out, Refusal{Object: key, What: fmt.Sprintf("annotation %q (%q) would become %q", k, v, pv), Path: []string{valuesKey, "annotations", k}, Value: v})
		case !set && managed:
			out = append(out, Refusal{Object: key, What: fmt.Sprintf("annotation %q (%q) would be removed", k, v), Path: []string{valuesKey, "annotations", k}, Value: v})
		}
	}
	return out
}

// portRefusals compares the Service's ports by port number: the port the
// Service targets decides which pods receive traffic (a named target port
// reaches only pods whose container port has that name).
func portRefusals(key string, live, planned map[string]any) []Refusal {
	lps, pps := ports(live), ports(planned)
	var out []Refusal
	for _, lp := range lps {
		i := slices.IndexFunc(pps, func(p svcPort) bool { return p.port == lp.port })
		if i < 0 {
			if len(lps) == 1 && len(pps) == 1 {
				out = append(out, Refusal{Object: key, What: fmt.Sprintf("port %s would become %s", lp.port, pps[0].port), Path: []string{"service", "port"}, Value: number(lp.port)})
				continue
			}
			out = append(out, Refusal{Object: key, What: fmt.Sprintf("port %s would be removed", lp.port), Fix: "render the port from the chart"})
			continue
		}
		if pt := pps[i].target; pt != lp.target {
			out = append(out, Refusal{Object: key, What: fmt.Sprintf("targetPort %s of port %s would become %s", lp.target, lp.port, pt), Path: []string{"service", "targetPort"}, Value: number(lp.target)})
		}
	}
	return out
}

type svcPort struct{ port, target string }

func ports(obj map[string]any) []svcPort {
	list, _ := nested(obj, "spec", "ports").([]any)
	var out []svcPort
	for _, e := range list {
		m, _ := e.(map[string]any)
		p := svcPort{port: portText(m["port"]), target: portText(m["targetPort"])}
		if p.target == "" {
			p.target = p.port // the API server's default
		}
		out = append(out, p)
	}
	return out
}

// portText writes a port number or name as the API shows it: 8765 whether
// it came as an int64, a float64 or a string.
func portText(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case float64:
		return fmt.Sprint(int64(t))
	default:
		return fmt.Sprint(t)
	}
}

// number returns a port as an int when it is one, so the values file gets
// 8765, not "8765".
func number(s string) any {
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err == nil && fmt.Sprint(n) == s {
		return n
	}
	return s
}

func str(m map[string]any, keys ...string) string {
	s, _ := nested(m, keys...).(string)
	return s
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func stringMap(m map[string]any, keys ...string) map[string]string {
	out := map[string]string{}
	mm, _ := nested(m, keys...).(map[string]any)
	for k, v := range mm {
		out[k] = fmt.Sprint(v)
	}
	return out
}

func ingressHosts(m map[string]any) []string {
	rules, _ := nested(m, "spec", "rules").([]any)
	var out []string
	for _, r := range rules {
		if h := str(asMap(r), "host"); h != "" {
			out = append(out, h)
		}
	}
	return out
}

// String is the takeover section of a plan.
func (tk *TakeoverChanges) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\ntakeover: revision %d (%s) was written by the old pipeline with chart %s", tk.Revision, tk.Status, tk.Chart)
	if tk.ImageTag != "" {
		fmt.Fprintf(&b, ", image tag %q", tk.ImageTag)
	}
	if tk.Running != "" {
		fmt.Fprintf(&b, "; its pods run %s", tk.Running)
	} else {
		b.WriteString("; its pods run no single known digest")
	}
	b.WriteString("\n")
	if len(tk.LiveSecrets) > 0 || len(tk.PlannedSecrets) > 0 {
		fmt.Fprintf(&b, "secrets: the live pods read %s; the release will read %s\n", orNone(tk.LiveSecrets), orNone(tk.PlannedSecrets))
	}
	if len(tk.OldRecords) > 0 {
		fmt.Fprintf(&b, "old records: revisions %s hold the old pipeline's values (secrets passed with --set among them); "+
			"once the takeover succeeded, delete them with the takeover command and its --delete-old-records flag\n", revisionList(tk.OldRecords))
	}
	if len(tk.Values) > 0 {
		b.WriteString("values of the old release that this run does not keep as they are:\n")
		w := 0
		for _, v := range tk.Values {
			w = max(w, len(v.Path))
		}
		for _, v := range tk.Values {
			fmt.Fprintf(&b, "  %-*s  %s\n", w, v.Path, v.Fate)
		}
	}
	if len(tk.Fields) > 0 {
		b.WriteString("fields of the old release's objects that this run removes or changes (added ones are in the diff below):\n")
		for _, f := range tk.Fields {
			switch {
			case f.Change == "deleted":
				fmt.Fprintf(&b, "  %s: deleted\n", f.Object)
			case f.Change == "removed" && f.Live == "":
				fmt.Fprintf(&b, "  %s %s: removed (value hidden)\n", f.Object, f.Path)
			case f.Change == "removed":
				fmt.Fprintf(&b, "  %s %s: removed (was %s)\n", f.Object, f.Path, f.Live)
			case f.Live == "" && f.Planned == "":
				fmt.Fprintf(&b, "  %s %s: changed (values hidden)\n", f.Object, f.Path)
			default:
				fmt.Fprintf(&b, "  %s %s: %s -> %s\n", f.Object, f.Path, f.Live, f.Planned)
			}
		}
	}
	if len(tk.Refusals) > 0 {
		fmt.Fprintf(&b, "REFUSED: a deploy or promote of this plan stops before changing anything, because it would change what users rely on:\n")
		for _, r := range tk.Refusals {
			fmt.Fprintf(&b, "  %s %s\n", r.Object, r.What)
		}
		if y := refusalsYAML(tk.Refusals); y != "" {
			fmt.Fprintf(&b, "keep them by adding to %s:\n", tk.SetIn)
			for _, line := range strings.Split(strings.TrimSuffix(y, "\n"), "\n") {
				b.WriteString("  " + line + "\n")
			}
		}
		for _, r := range tk.Refusals {
			if len(r.Path) == 0 && r.Fix != "" {
				fmt.Fprintf(&b, "  and: %s\n", r.Fix)
			}
		}
	} else {
		b.WriteString("nothing users rely on changes: Ingress annotations, class and hosts, the Service's ports, type, annotations and selector, and the selectors stay as they are\n")
	}
	return b.String()
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
