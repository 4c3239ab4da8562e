package targets_test

import (
	"encoding/json"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/ci/targets"
)

func ptr(f float64) *float64 { return &f }

func TestVerificationValidate(t *testing.T) {
	good := targets.Query{Name: "call failure rate", Expr: `sum(rate(calls_failed_total{version="$track"}[5m]))`, MaxRatio: 1.5}
	cases := []struct {
		name    string
		v       targets.Verification
		wantErr []string
	}{
		{name: "nothing to check"},
		{name: "calls and metrics", v: targets.Verification{
			Calls:   &targets.Calls{Path: "/pc/v1/ws", Hold: time.Second},
			Metrics: &targets.Metrics{URL: "http://localhost:9090", Queries: []targets.Query{good, {Name: "errors", Expr: `x{version="$track"}`, MaxIncrease: ptr(0)}}},
		}},
		{name: "every problem at once", v: targets.Verification{
			Calls: &targets.Calls{Path: "pc/v1/ws"},
			Metrics: &targets.Metrics{URL: "localhost:9090", Queries: []targets.Query{
				{Expr: `x{version="$track"}`, MaxRatio: 2},
				{Name: "no track", Expr: `sum(x)`, MaxRatio: 2},
				{Name: "no threshold", Expr: `x{version="$track"}`},
				{Name: "no threshold", Expr: `x{version="$track"}`, MaxRatio: -1},
			}},
		}, wantErr: []string{
			`calls: path "pc/v1/ws" must start with /`,
			"calls: hold 0s must be positive",
			`metrics: url "localhost:9090" is not an http(s) URL`,
			"metrics: query 1 has no name",
			"metrics: query 2 (no track): expr names no $track",
			"metrics: query 3 (no threshold): no threshold: set maxRatio or maxIncrease",
			"metrics: query 4 (no threshold): the name is used twice",
			"metrics: query 4 (no threshold): maxRatio -1 is negative",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.v.Validate()
			if len(tc.wantErr) == 0 {
				assert.NilError(t, err)
				return
			}
			for _, want := range tc.wantErr {
				assert.ErrorContains(t, err, want)
			}
		})
	}
}

// TestVerificationJSON: durations travel as text, missing ones take the
// defaults, and a misspelt field is refused rather than read as absent.
func TestVerificationJSON(t *testing.T) {
	var v targets.Verification
	assert.NilError(t, json.Unmarshal([]byte(`{
		"calls": {"path": "/pc/v1/ws", "send": "{\"type\":\"ping\"}", "expect": "echo", "hold": "3s"},
		"metrics": {"url": "http://prometheus:9090", "queries": [{"name": "errors", "expr": "x{version=\"$track\"}", "maxIncrease": 0.01}]}
	}`), &v))
	assert.DeepEqual(t, *v.Calls, targets.Calls{Path: "/pc/v1/ws", Send: `{"type":"ping"}`, Expect: "echo", Hold: 3 * time.Second})
	assert.Equal(t, v.Metrics.Interval, targets.DefaultMetricsInterval)
	assert.Equal(t, *v.Metrics.Queries[0].MaxIncrease, 0.01)

	out, err := json.Marshal(v)
	assert.NilError(t, err)
	assert.Equal(t, string(out), `{"calls":{"path":"/pc/v1/ws","send":"{\"type\":\"ping\"}","expect":"echo","hold":"3s"},`+
		`"metrics":{"url":"http://prometheus:9090","interval":"30s","queries":[{"name":"errors","expr":"x{version=\"$track\"}","maxIncrease":0.01}]}}`)

	var held targets.Verification
	assert.NilError(t, json.Unmarshal([]byte(`{"calls": {"path": "/ws"}}`), &held))
	assert.Equal(t, held.Calls.Hold, targets.DefaultCallHold)

	for doc, want := range map[string]string{
		`{"calls": {"path": "/ws", "hold": "soon"}}`:                             `calls: hold "soon" is not a duration`,
		`{"calls": {"path": "/ws", "holdd": "3s"}}`:                              `unknown field "holdd"`,
		`{"metrics": {"queries": [{"name": "x", "expr": "y", "max_ratio": 2}]}}`: `unknown field "max_ratio"`,
	} {
		assert.ErrorContains(t, json.Unmarshal([]byte(doc), &targets.Verification{}), want, doc)
	}
}

func TestVerificationOverrides(t *testing.T) {
	canary, err := targets.Get(targets.Canary)
	assert.NilError(t, err)
	assert.DeepEqual(t, *canary.Verification.Calls, targets.Calls{Path: "/pc/v1/ws", Hold: targets.DefaultCallHold})
	assert.Assert(t, canary.Verification.Metrics == nil, "metrics are the team's to configure")
	assert.Equal(t, canary.MetricsURL(), "https://monitoring.googleapis.com/v1/projects/desivocalprod01/location/global/prometheus")
	assert.Equal(t, canary.With(targets.Overrides{Project: "p2"}).MetricsURL(),
		"https://monitoring.googleapis.com/v1/projects/p2/location/global/prometheus", "the managed service of the cluster's project")

	m := &targets.Metrics{Queries: []targets.Query{{Name: "q", Expr: `x{version="$track"}`, MaxRatio: 2}}}
	o := canary.With(targets.Overrides{Verification: &targets.Verification{Metrics: m}, MetricsURL: "http://prometheus:9090"})
	assert.DeepEqual(t, o.Verification.Calls, canary.Verification.Calls)
	assert.Equal(t, o.MetricsURL(), "http://prometheus:9090")
	assert.Equal(t, m.URL, "", "the override's own document is not changed")
	assert.NilError(t, o.Validate())

	staging, err := targets.Get(targets.Staging)
	assert.NilError(t, err)
	st := staging.With(targets.Overrides{Verification: &targets.Verification{Metrics: m, Calls: &targets.Calls{Path: "/x", Hold: time.Second}}})
	assert.Assert(t, st.Verification.Metrics == nil, "a document's metrics are for a target that promotes")
	assert.Equal(t, st.Verification.Calls.Path, "/x")
	staging.Verification.Metrics = m
	assert.ErrorContains(t, staging.Validate(), "target staging: metrics compare a target with the one it promotes to, and staging promotes nowhere")
}

func TestQueryExpand(t *testing.T) {
	q := targets.Query{Expr: `sum(rate(errors_total{namespace="$namespace",version="$track"}[5m]))`}
	assert.Equal(t, q.Expand("canary", "default"), `sum(rate(errors_total{namespace="default",version="canary"}[5m]))`)
}
