package analysis

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ringg/ringg-ci/ci/targets"
)

// Tracks names the pods a query compares: the canary's track (version
// label), the baseline's, and their namespace.
type Tracks struct {
	Canary, Baseline, Namespace string
}

// Observation is what one query returned for both tracks.
type Observation struct {
	Query    targets.Query
	Canary   []Series
	Baseline []Series
	// Err is set when either query failed.
	Err error
}

// Observe runs every query for the canary's pods and the baseline's over w.
func Observe(ctx context.Context, q Querier, queries []targets.Query, tr Tracks, w Window) []Observation {
	out := make([]Observation, len(queries))
	for i, query := range queries {
		o := Observation{Query: query}
		var cerr, berr error
		o.Canary, cerr = q.QueryRange(ctx, query.Expand(tr.Canary, tr.Namespace), w)
		if cerr == nil {
			o.Baseline, berr = q.QueryRange(ctx, query.Expand(tr.Baseline, tr.Namespace), w)
		}
		if err := firstErr(cerr, berr); err != nil {
			o.Err = err
		}
		out[i] = o
	}
	return out
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// Row is one line of the verdict table: a query, the canary's and the
// baseline's values at the sample that decided (the worst failing one, or
// the last), its threshold, and how many samples passed.
type Row struct {
	Query     string    `json:"query"`
	Canary    float64   `json:"-"`
	Baseline  float64   `json:"-"`
	At        time.Time `json:"at,omitzero"`
	Threshold string    `json:"threshold"`
	Samples   int       `json:"samples"`
	Failed    int       `json:"failed"`
	Passed    bool      `json:"passed"`
	// Note says why the query could not be judged, when it could not.
	Note string `json:"note,omitempty"`
}

// MarshalJSON writes the values as text: they may be NaN or infinite,
// which JSON numbers cannot be.
func (r Row) MarshalJSON() ([]byte, error) {
	type plain Row
	return json.Marshal(struct {
		plain
		Canary   string `json:"canary"`
		Baseline string `json:"stable"`
	}{plain(r), r.canaryText(), r.baselineText()})
}

func (r Row) canaryText() string {
	if r.Samples == 0 {
		return "-"
	}
	return formatValue(r.Canary)
}

func (r Row) baselineText() string {
	if r.Samples == 0 {
		return "-"
	}
	return formatValue(r.Baseline)
}

// Verdict is the metrics' judgement of a canary over a window.
type Verdict struct {
	// URL is the API the queries ran against.
	URL string `json:"url,omitempty"`
	// Canary and Baseline are the tracks compared.
	Canary   string        `json:"canary"`
	Baseline string        `json:"baseline"`
	Start    time.Time     `json:"start,omitzero"`
	End      time.Time     `json:"end,omitzero"`
	Step     time.Duration `json:"-"`
	Rows     []Row         `json:"rows"`
}

// MarshalJSON writes the step as text.
func (v Verdict) MarshalJSON() ([]byte, error) {
	type plain Verdict
	return json.Marshal(struct {
		plain
		Step string `json:"step,omitempty"`
	}{plain(v), durationText(v.Step)})
}

func durationText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// Passed reports whether every query passed.
func (v Verdict) Passed() bool {
	for _, r := range v.Rows {
		if !r.Passed {
			return false
		}
	}
	return true
}

// FailedQueries names the queries that failed.
func (v Verdict) FailedQueries() []string {
	var out []string
	for _, r := range v.Rows {
		if !r.Passed {
			out = append(out, r.Query)
		}
	}
	return out
}

// Judge decides each query from what was observed: at every sample time
// where both tracks have a value, the canary's must be within the query's
// threshold of the baseline's; a query passes when every such sample did.
// It does no I/O.
func Judge(obs []Observation, tr Tracks, w Window) Verdict {
	v := Verdict{Canary: tr.Canary, Baseline: tr.Baseline, Start: w.Start, End: w.End, Step: w.Step}
	for _, o := range obs {
		v.Rows = append(v.Rows, judgeQuery(o, tr))
	}
	return v
}

func judgeQuery(o Observation, tr Tracks) Row {
	q := o.Query
	r := Row{Query: q.Name, Threshold: thresholdText(q, tr.Baseline)}
	one := func(track string, ss []Series) (Series, string) {
		switch len(ss) {
		case 0:
			return Series{}, fmt.Sprintf("no data for the %s pods (version=%q): check the query's labels; a rate of a counter that never moved is no series (add `or vector(0)`)", track, track)
		case 1:
			return ss[0], ""
		}
		return Series{}, fmt.Sprintf("returns %d series for the %s pods: aggregate it to one, e.g. sum(...)", len(ss), track)
	}
	if o.Err != nil {
		r.Note = o.Err.Error()
		return r
	}
	canary, note := one(tr.Canary, o.Canary)
	baseline, bnote := one(tr.Baseline, o.Baseline)
	if note == "" {
		note = bnote
	}
	if note != "" {
		r.Note = note
		return r
	}
	base := map[int64]float64{}
	for _, p := range baseline.Points {
		base[p.T.UnixMilli()] = p.V
	}
	worst := math.Inf(-1)
	for _, p := range canary.Points {
		b, ok := base[p.T.UnixMilli()]
		if !ok || math.IsNaN(b) || math.IsNaN(p.V) {
			continue // no comparison at this sample (0/0, or a gap)
		}
		r.Samples++
		excess := p.V - limit(q, b)
		failed := excess > 1e-9*math.Max(1, math.Abs(limit(q, b)))
		if failed {
			r.Failed++
		}
		// Show the worst failing sample, or the last one when none failed.
		if (failed && excess > worst) || (r.Failed == 0) {
			r.Canary, r.Baseline, r.At = p.V, b, p.T
			if failed {
				worst = excess
			}
		}
	}
	if r.Samples == 0 {
		r.Note = fmt.Sprintf("no sample where both the %s and the %s pods have a value", tr.Canary, tr.Baseline)
		return r
	}
	r.Passed = r.Failed == 0
	return r
}

// limit is the highest canary value q allows against a baseline value b.
func limit(q targets.Query, b float64) float64 {
	l := math.Inf(1)
	if q.MaxRatio > 0 {
		l = math.Min(l, q.MaxRatio*b)
	}
	if q.MaxIncrease != nil {
		l = math.Min(l, b+*q.MaxIncrease)
	}
	return l
}

func thresholdText(q targets.Query, baseline string) string {
	var parts []string
	if q.MaxRatio > 0 {
		parts = append(parts, fmt.Sprintf("<= %s x %s", formatValue(q.MaxRatio), baseline))
	}
	if q.MaxIncrease != nil {
		parts = append(parts, fmt.Sprintf("<= %s + %s", baseline, formatValue(*q.MaxIncrease)))
	}
	return strings.Join(parts, " and ")
}

func formatValue(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', 4, 64)
}

// String is the verdict table for a person.
func (v Verdict) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "metrics: %s vs %s, %s", v.Canary, v.Baseline, v.span())
	if v.URL != "" {
		fmt.Fprintf(&b, " from %s", v.URL)
	}
	if v.Passed() {
		fmt.Fprintf(&b, ": %d queries passed\n", len(v.Rows))
	} else {
		fmt.Fprintf(&b, ": %d of %d queries failed\n", len(v.FailedQueries()), len(v.Rows))
	}
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "QUERY\tCANARY\tSTABLE\tTHRESHOLD\tRESULT\n")
	for _, r := range v.Rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Query, r.canaryText(), r.baselineText(), r.Threshold, r.result())
	}
	w.Flush()
	return b.String()
}

// Markdown is the verdict table for a job summary.
func (v Verdict) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Metrics, %s vs %s, %s:\n\n", v.Canary, v.Baseline, v.span())
	b.WriteString("| query | canary | stable | threshold | result |\n|---|---|---|---|---|\n")
	for _, r := range v.Rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", cell(r.Query), r.canaryText(), r.baselineText(), cell(r.Threshold), cell(r.result()))
	}
	return b.String()
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func (r Row) result() string {
	switch {
	case r.Note != "":
		return "FAIL: " + r.Note
	case r.Passed:
		return fmt.Sprintf("pass (%d samples)", r.Samples)
	}
	return fmt.Sprintf("FAIL: %d of %d samples over the threshold (worst at %s)", r.Failed, r.Samples, r.At.UTC().Format(time.TimeOnly))
}

func (v Verdict) span() string {
	if v.Start.IsZero() {
		return "no window"
	}
	return fmt.Sprintf("sampled every %s over %s", v.Step, v.End.Sub(v.Start).Round(time.Second))
}
