package targets

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Verification is how a target's pods are judged beyond what Kubernetes
// sees: synthetic calls on every pod, and metrics compared with the pods of
// the track it promotes to. A nil part is not checked.
type Verification struct {
	Calls   *Calls   `json:"calls,omitempty"`
	Metrics *Metrics `json:"metrics,omitempty"`
}

// Calls is the synthetic call placed on each pod through the API server:
// a WebSocket opened on the app's port, held for Hold with the exchange the
// app expects, then closed cleanly (docs/app-contract.md, clause 13).
type Calls struct {
	// Path is the WebSocket's path on the app's port.
	Path string
	// Send is the first message (text) the call sends; empty sends nothing.
	Send string
	// Expect is text the app's first answer must contain; empty with Send
	// accepts any answer, empty without Send expects none: the call only
	// has to stay open.
	Expect string
	// Hold is how long each call is held open before it is closed.
	Hold time.Duration
}

// DefaultCallHold is how long a synthetic call is held when a target does
// not say.
const DefaultCallHold = 10 * time.Second

// DefaultMetricsInterval is how often metrics are sampled over a soak when a
// target does not say.
const DefaultMetricsInterval = 30 * time.Second

// Metrics compares a target's pods with the pods of the track it promotes
// to, through PromQL queries against a Prometheus-compatible HTTP API.
type Metrics struct {
	// URL is the API's base (…/api/v1 is appended); empty means Google
	// Managed Service for Prometheus in the cluster's project, read with the
	// run's Google token (MetricsURL).
	URL string
	// Interval is the step at which queries are sampled over the soak.
	Interval time.Duration
	// Queries are the checks; none means metrics are not configured.
	Queries []Query
}

// Query is one PromQL check. Expr names the pods it measures with the
// placeholders $track (the pods' version label: canary or stable) and
// $namespace, and must return one series (aggregate it: sum(...)). Lower
// is better: the check fails when the canary's value exceeds the baseline's
// by more than a threshold; write a higher-is-better measure as its
// complement (1 - success rate).
type Query struct {
	Name string `json:"name"`
	Expr string `json:"expr"`
	// MaxRatio fails the check when canary > MaxRatio × baseline (0 = not
	// checked). With a baseline of 0 any positive canary value exceeds it.
	MaxRatio float64 `json:"maxRatio,omitempty"`
	// MaxIncrease, when set, fails the check when canary − baseline >
	// *MaxIncrease (0 means: never above the baseline).
	MaxIncrease *float64 `json:"maxIncrease,omitempty"`
}

// MetricsURL is the Prometheus API base the target's metrics are read from:
// Metrics.URL, or Google Managed Service for Prometheus in the cluster's
// project.
func (t Target) MetricsURL() string {
	if m := t.Verification.Metrics; m != nil && m.URL != "" {
		return m.URL
	}
	return GoogleManagedPrometheus(t.Cluster.Project)
}

// GoogleManagedPrometheus is the Prometheus-compatible API of Google
// Managed Service for Prometheus for a project.
func GoogleManagedPrometheus(project string) string {
	return "https://monitoring.googleapis.com/v1/projects/" + project + "/location/global/prometheus"
}

// Placeholders a query's expression names its pods with.
const (
	PlaceholderTrack     = "$track"
	PlaceholderNamespace = "$namespace"
)

// Expand returns q's expression for the pods of track in namespace.
func (q Query) Expand(track, namespace string) string {
	return strings.NewReplacer(PlaceholderTrack, track, PlaceholderNamespace, namespace).Replace(q.Expr)
}

// Validate reports every problem of v at once.
func (v Verification) Validate() error {
	var errs []error
	if c := v.Calls; c != nil {
		if !strings.HasPrefix(c.Path, "/") {
			errs = append(errs, fmt.Errorf("calls: path %q must start with /, e.g. /pc/v1/ws", c.Path))
		}
		if c.Hold <= 0 {
			errs = append(errs, fmt.Errorf("calls: hold %s must be positive, e.g. 10s", c.Hold))
		}
	}
	if m := v.Metrics; m != nil {
		if m.URL != "" {
			if u, err := url.Parse(m.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, fmt.Errorf("metrics: url %q is not an http(s) URL of a Prometheus API, e.g. http://localhost:9090", m.URL))
			}
		}
		if m.Interval < 0 {
			errs = append(errs, fmt.Errorf("metrics: interval %s is negative", m.Interval))
		}
		seen := map[string]bool{}
		for i, q := range m.Queries {
			what := fmt.Sprintf("metrics: query %d (%s)", i+1, q.Name)
			switch {
			case strings.TrimSpace(q.Name) == "":
				errs = append(errs, fmt.Errorf("metrics: query %d has no name: name it for the verdict table", i+1))
			case seen[q.Name]:
				errs = append(errs, fmt.Errorf("%s: the name is used twice", what))
			}
			seen[q.Name] = true
			if !strings.Contains(q.Expr, PlaceholderTrack) {
				errs = append(errs, fmt.Errorf("%s: expr names no %s: select the pods with a label such as version=%q", what, PlaceholderTrack, PlaceholderTrack))
			}
			if q.MaxRatio < 0 {
				errs = append(errs, fmt.Errorf("%s: maxRatio %g is negative", what, q.MaxRatio))
			}
			if q.MaxRatio == 0 && q.MaxIncrease == nil {
				errs = append(errs, fmt.Errorf("%s: no threshold: set maxRatio or maxIncrease", what))
			}
		}
	}
	return errors.Join(errs...)
}

// calls is Calls as JSON and YAML write it: the hold as text ("10s").
type callsJSON struct {
	Path   string `json:"path"`
	Send   string `json:"send,omitempty"`
	Expect string `json:"expect,omitempty"`
	Hold   string `json:"hold,omitempty"`
}

// MarshalJSON writes the hold as text.
func (c Calls) MarshalJSON() ([]byte, error) {
	return json.Marshal(callsJSON{Path: c.Path, Send: c.Send, Expect: c.Expect, Hold: durationText(c.Hold)})
}

// UnmarshalJSON reads the hold as text ("10s"); a missing hold is
// DefaultCallHold.
func (c *Calls) UnmarshalJSON(b []byte) error {
	var in callsJSON
	if err := strictJSON(b, &in); err != nil {
		return fmt.Errorf("calls: %w", err)
	}
	hold, err := parseDuration("calls: hold", in.Hold, DefaultCallHold)
	if err != nil {
		return err
	}
	*c = Calls{Path: in.Path, Send: in.Send, Expect: in.Expect, Hold: hold}
	return nil
}

type metricsJSON struct {
	URL      string  `json:"url,omitempty"`
	Interval string  `json:"interval,omitempty"`
	Queries  []Query `json:"queries"`
}

// MarshalJSON writes the interval as text.
func (m Metrics) MarshalJSON() ([]byte, error) {
	return json.Marshal(metricsJSON{URL: m.URL, Interval: durationText(m.Interval), Queries: m.Queries})
}

// UnmarshalJSON reads the interval as text ("30s"); a missing interval is
// DefaultMetricsInterval.
func (m *Metrics) UnmarshalJSON(b []byte) error {
	var in metricsJSON
	if err := strictJSON(b, &in); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	iv, err := parseDuration("metrics: interval", in.Interval, DefaultMetricsInterval)
	if err != nil {
		return err
	}
	*m = Metrics{URL: in.URL, Interval: iv, Queries: in.Queries}
	return nil
}

// strictJSON decodes b into v, refusing fields v does not have: a misspelt
// threshold must not pass as no threshold.
func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

func durationText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func parseDuration(what, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a duration such as 10s or 1m", what, s)
	}
	return d, nil
}

// Over returns v with o's parts where o has them: a verification document
// replaces the calls, the metrics, or both.
func (v Verification) Over(o Verification) Verification {
	if o.Calls != nil {
		v.Calls = o.Calls
	}
	if o.Metrics != nil {
		v.Metrics = o.Metrics
	}
	return v
}

// defaultCalls is the call the stand-in and the real app accept
// (docs/app-contract.md, clause 13): the WebSocket at /pc/v1/ws, held open.
func defaultCalls() *Calls {
	return &Calls{Path: "/pc/v1/ws", Hold: DefaultCallHold}
}
