package analysis_test

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"

	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/analysis"
)

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

// series samples values every 30 s from t0.
func series(values ...float64) []analysis.Series {
	s := analysis.Series{}
	for i, v := range values {
		s.Points = append(s.Points, analysis.Point{T: t0.Add(time.Duration(i) * 30 * time.Second), V: v})
	}
	return []analysis.Series{s}
}

func inc(f float64) *float64 { return &f }

var tracks = analysis.Tracks{Canary: "canary", Baseline: "stable", Namespace: "default"}

func TestJudge(t *testing.T) {
	ratio := targets.Query{Name: "call failure rate", Expr: `x{version="$track"}`, MaxRatio: 1.5}
	increase := targets.Query{Name: "error logs", Expr: `x{version="$track"}`, MaxIncrease: inc(0.01)}
	never := targets.Query{Name: "restarts", Expr: `x{version="$track"}`, MaxIncrease: inc(0)}
	both := targets.Query{Name: "p95 first audio", Expr: `x{version="$track"}`, MaxRatio: 1.2, MaxIncrease: inc(0.1)}
	cases := []struct {
		name        string
		o           analysis.Observation
		passed      bool
		samples     int
		failed      int
		canary      float64
		stable      float64
		note        string
		wantAtIndex int
	}{
		{name: "within the ratio at every sample", o: analysis.Observation{Query: ratio, Canary: series(0.01, 0.02, 0.015), Baseline: series(0.01, 0.02, 0.01)},
			passed: true, samples: 3, canary: 0.015, stable: 0.01, wantAtIndex: 2},
		{name: "one sample over the ratio fails the soak", o: analysis.Observation{Query: ratio, Canary: series(0.01, 0.05, 0.01), Baseline: series(0.01, 0.01, 0.01)},
			samples: 3, failed: 1, canary: 0.05, stable: 0.01, wantAtIndex: 1},
		{name: "the worst failing sample is shown", o: analysis.Observation{Query: ratio, Canary: series(0.02, 0.09, 0.03), Baseline: series(0.01, 0.01, 0.01)},
			samples: 3, failed: 3, canary: 0.09, stable: 0.01, wantAtIndex: 1},
		{name: "increase at the edge passes", o: analysis.Observation{Query: increase, Canary: series(0.03), Baseline: series(0.02)}, passed: true, samples: 1, canary: 0.03, stable: 0.02},
		{name: "increase over", o: analysis.Observation{Query: increase, Canary: series(0.04), Baseline: series(0.02)}, samples: 1, failed: 1, canary: 0.04, stable: 0.02},
		{name: "never above stable", o: analysis.Observation{Query: never, Canary: series(1), Baseline: series(0)}, samples: 1, failed: 1, canary: 1, stable: 0},
		{name: "both zero", o: analysis.Observation{Query: ratio, Canary: series(0), Baseline: series(0)}, passed: true, samples: 1},
		{name: "ratio over a zero baseline", o: analysis.Observation{Query: ratio, Canary: series(0.001), Baseline: series(0)}, samples: 1, failed: 1, canary: 0.001},
		{name: "both thresholds: the stricter decides", o: analysis.Observation{Query: both, Canary: series(1.15), Baseline: series(1)}, samples: 1, failed: 1, canary: 1.15, stable: 1},
		{name: "0/0 samples are skipped", o: analysis.Observation{Query: ratio, Canary: series(math.NaN(), 0.01), Baseline: series(0.01, 0.01)}, passed: true, samples: 1, canary: 0.01, stable: 0.01, wantAtIndex: 1},
		{name: "infinite canary fails", o: analysis.Observation{Query: ratio, Canary: series(math.Inf(1)), Baseline: series(1)}, samples: 1, failed: 1, canary: math.Inf(1), stable: 1},
		{name: "no canary data", o: analysis.Observation{Query: ratio, Baseline: series(0.01)},
			note: `no data for the canary pods (version="canary"): check the query's labels; a rate of a counter that never moved is no series (add ` + "`or vector(0)`)"},
		{name: "no stable data", o: analysis.Observation{Query: ratio, Canary: series(0.01)}, note: `no data for the stable pods (version="stable")`},
		{name: "not aggregated", o: analysis.Observation{Query: ratio, Canary: append(series(1), series(2)...), Baseline: series(1)},
			note: "returns 2 series for the canary pods: aggregate it to one, e.g. sum(...)"},
		{name: "no common sample", o: analysis.Observation{Query: ratio, Canary: series(1), Baseline: []analysis.Series{{Points: []analysis.Point{{T: t0.Add(time.Hour), V: 1}}}}},
			note: "no sample where both the canary and the stable pods have a value"},
		{name: "query failed", o: analysis.Observation{Query: ratio, Err: errors.New("metrics query failed: bad_data")}, note: "metrics query failed: bad_data"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := analysis.Judge([]analysis.Observation{tc.o}, tracks, analysis.Window{})
			r := v.Rows[0]
			assert.Equal(t, r.Passed, tc.passed)
			assert.Equal(t, v.Passed(), tc.passed)
			assert.Equal(t, r.Samples, tc.samples)
			assert.Equal(t, r.Failed, tc.failed)
			if tc.note != "" {
				assert.ErrorContains(t, errors.New(r.Note), tc.note)
				return
			}
			assert.Equal(t, r.Note, "")
			assert.Equal(t, r.Canary, tc.canary)
			assert.Equal(t, r.Baseline, tc.stable)
			assert.Equal(t, r.At, t0.Add(time.Duration(tc.wantAtIndex)*30*time.Second))
		})
	}
}

// TestVerdictTable: the table a person reads (text) and the job summary
// (Markdown), and JSON that survives values JSON numbers cannot hold.
func TestVerdictTable(t *testing.T) {
	w := analysis.Window{Start: t0, End: t0.Add(2 * time.Minute), Step: 30 * time.Second}
	v := analysis.Judge([]analysis.Observation{
		{Query: targets.Query{Name: "call failure rate", MaxRatio: 1.5}, Canary: series(0.01, 0.06, 0.02), Baseline: series(0.01, 0.01, 0.01)},
		{Query: targets.Query{Name: "error logs / min", MaxIncrease: inc(2)}, Canary: series(3, 3, 3), Baseline: series(2, 2, 2)},
		{Query: targets.Query{Name: "p95 first audio", MaxRatio: 1.2}, Canary: series(math.Inf(1)), Baseline: series(0.8)},
		{Query: targets.Query{Name: "restarts", MaxIncrease: inc(0)}, Baseline: series(0)},
	}, tracks, w)
	v.URL = "http://127.0.0.1:9090"
	assert.Assert(t, !v.Passed())
	assert.DeepEqual(t, v.FailedQueries(), []string{"call failure rate", "p95 first audio", "restarts"})
	golden.Assert(t, v.String(), "verdict.txt.golden")
	golden.Assert(t, v.Markdown(), "verdict.md.golden")
	b, err := json.MarshalIndent(v, "", "  ")
	assert.NilError(t, err)
	golden.Assert(t, string(b)+"\n", "verdict.json.golden")
}
