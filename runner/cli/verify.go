package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"sigs.k8s.io/yaml"

	"github.com/ringg/ringg-ci/ci/command"
	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/analysis"
	"github.com/ringg/ringg-ci/runner/ops"
	"github.com/ringg/ringg-ci/runner/release"
)

// verification adds --verification (a document replacing the target's
// calls, metrics or both) and --prometheus-url.
func (f flags) verification() flags {
	o := &f.r.overrides
	f.Func(command.Verification, "YAML or JSON file replacing the target's synthetic calls (calls:), metric queries (metrics:) or both; repeatable, a later file replacing the parts it has (docs/operations.md, \"Judging the canary\")", func(path string) error {
		b, err := f.r.env.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read the verification document: %w", err)
		}
		v, err := parseVerification(b)
		if err != nil {
			return fmt.Errorf("verification document %s: %w", path, err)
		}
		if o.Verification != nil {
			v = o.Verification.Over(v)
		}
		o.Verification = &v
		return nil
	})
	f.StringVar(&o.MetricsURL, command.PrometheusURL, "", "Prometheus API to read the metrics from, instead of the target's (default: Google Managed Service for Prometheus of the cluster's project)")
	return f
}

// parseVerification reads a verification document, YAML or JSON. A field
// it does not know is refused: a misspelt threshold must not read as none.
func parseVerification(b []byte) (targets.Verification, error) {
	var v targets.Verification
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return v, err
	}
	if err := strictJSON(j, &v); err != nil {
		return v, err
	}
	return v, v.Validate()
}

// strictJSON decodes b into v, refusing fields v does not have.
func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// metricsCheck is the promote gate's analysis of from against the target it
// promotes to, as from's verification says; nil when no queries are
// configured. The managed service is read with the Google credentials of
// identity's target.
func (r *runner) metricsCheck(ctx context.Context, from, identity targets.Target) (*release.MetricsCheck, error) {
	m := from.Verification.Metrics
	if m == nil || len(m.Queries) == 0 {
		return nil, nil
	}
	url := from.MetricsURL()
	var ts oauth2.TokenSource
	if analysis.IsGoogle(url) {
		var err error
		if ts, err = r.tokenSource(ctx, identity); err != nil {
			return nil, fmt.Errorf("the metrics of %s are read from Google Managed Service for Prometheus (%s), which needs Google credentials: %w", from.Name, url, err)
		}
	}
	return &release.MetricsCheck{Metrics: *m, Query: analysis.NewClient(ctx, url, ts, identity.Identity.ServiceAccount), URL: url}, nil
}

// VerifyReport is what verify found on a target's pods.
type VerifyReport struct {
	Calls   *ops.CallReport   `json:"calls,omitempty"`
	Metrics *analysis.Verdict `json:"metrics,omitempty"`
	Notes   []string          `json:"notes,omitempty"`
}

// String renders the report for a person.
func (v VerifyReport) String() string {
	var b strings.Builder
	if v.Calls != nil {
		b.WriteString(v.Calls.String())
	}
	if v.Metrics != nil {
		b.WriteString(v.Metrics.String())
	}
	for _, n := range v.Notes {
		fmt.Fprintf(&b, "%s\n", n)
	}
	return b.String()
}

func runVerify(ctx context.Context, r *runner, args []string) error {
	var target string
	var window time.Duration
	f := r.flags(command.Verify).target().cluster().verification().output()
	f.StringVar(&target, command.TargetName, "", "target whose pods to verify: staging, canary or stable")
	f.duration(&window, command.Window, 10*time.Minute, "how far back the metrics are compared with the target it promotes to")
	t, c, err := r.operation(ctx, f, &target, args)
	if err != nil {
		return err
	}
	rep := VerifyReport{}
	var errs []error
	if calls := t.Verification.Calls; calls != nil {
		cr, err := ops.Calls(ctx, c.Config, c.Kube, t, ops.CallOptions{Calls: *calls, Logger: c.Logger})
		rep.Calls = &cr
		if err != nil {
			errs = append(errs, err)
		}
	} else {
		rep.Notes = append(rep.Notes, fmt.Sprintf("calls: none configured for %s", t.Name))
	}
	to, toErr := targets.Get(t.PromotesTo)
	switch mc, err := r.metricsCheck(ctx, t, t); {
	case err != nil:
		errs = append(errs, err)
	case mc == nil:
		rep.Notes = append(rep.Notes, fmt.Sprintf("metrics: none configured for %s", t.Name))
	case toErr != nil:
		errs = append(errs, toErr)
	default:
		now := c.Now
		if now == nil {
			now = time.Now
		}
		step := mc.Metrics.Interval
		if step <= 0 {
			step = targets.DefaultMetricsInterval
		}
		end := now()
		w := analysis.Window{Start: end.Add(-window), End: end, Step: min(step, window)}
		tr := analysis.Tracks{Canary: t.Track, Baseline: to.Track, Namespace: t.Namespace}
		v := analysis.Judge(analysis.Observe(ctx, mc.Query, mc.Metrics.Queries, tr, w), tr, w)
		v.URL = mc.URL
		rep.Metrics = &v
		if !v.Passed() {
			errs = append(errs, fmt.Errorf("metrics of %s over the last %s: %s failed their threshold against %s", t.Name, window, strings.Join(v.FailedQueries(), ", "), to.Name))
		}
	}
	if err := r.print(rep.String(), rep); err != nil {
		return err
	}
	if len(errs) > 0 {
		return fmt.Errorf("verify %s: %w", t.Name, joinErrs(errs))
	}
	return nil
}

func joinErrs(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	var parts []string
	for _, e := range errs {
		parts = append(parts, e.Error())
	}
	return fmt.Errorf("%s", strings.Join(parts, "; "))
}

func runHistory(ctx context.Context, r *runner, args []string) error {
	var names []targets.Name
	var since time.Duration
	f := r.flags(command.History).target().cluster().output()
	f.targets(&names)
	f.Func(command.Since, "only revisions applied within this long, e.g. 30d or 12h (default: every revision Helm keeps)", func(s string) error {
		d, err := parseSince(s)
		since = d
		return err
	})
	if err := f.parse(args); err != nil {
		return err
	}
	out := &release.HistoryReport{Since: since}
	err := r.perCluster(ctx, names, func(c release.Clients, plan pipeline.StatusPlan) error {
		part, err := (&release.History{Clients: c, Plan: plan, Since: since}).Run(ctx)
		if err == nil {
			out.Merge(part)
		}
		return err
	})
	if err != nil {
		return err
	}
	return r.print(out.String(), out)
}

// parseSince reads a span such as 30d, 12h or 90m.
func parseSince(s string) (time.Duration, error) {
	bad := fmt.Errorf("want a span such as 30d, 12h or 90m, not %q", s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, bad
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, bad
	}
	return d, nil
}
