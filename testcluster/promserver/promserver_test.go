package promserver_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/testcluster/promserver"
)

func TestOpenMetrics(t *testing.T) {
	at := time.Unix(1700000000, 500_000_000)
	got := promserver.OpenMetrics([]promserver.Series{
		{Name: "calls_total", Labels: map[string]string{"version": "canary", "app": "x"}, Points: []promserver.Point{{at.Add(time.Second), 2}, {at, 1}}},
		{Name: "p95_seconds", Points: []promserver.Point{{at, 0.25}}},
		{Name: "calls_total", Labels: map[string]string{"version": "stable"}, Points: []promserver.Point{{at, 3}}},
	})
	assert.Equal(t, got, `# TYPE calls counter
calls_total{app="x",version="canary"} 1 1700000000.500
calls_total{app="x",version="canary"} 2 1700000001.500
calls_total{version="stable"} 3 1700000000.500
# TYPE p95_seconds gauge
p95_seconds 0.25 1700000000.500
# EOF
`)
}

// TestServesTheSeries: what a test writes is what Prometheus answers, around
// now and in the future alike.
func TestServesTheSeries(t *testing.T) {
	promserver.Require(t)
	now := time.Now().Truncate(time.Second)
	s, err := promserver.Start(t.Context(), t.TempDir(), []promserver.Series{{
		Name: "calls_total", Labels: map[string]string{"version": "canary"},
		Points: promserver.Every(now.Add(-10*time.Minute), now.Add(10*time.Minute), 15*time.Second,
			func(at time.Time) float64 { return float64(at.Sub(now.Add(-10*time.Minute)) / time.Second) }),
	}})
	assert.NilError(t, err)
	defer s.Stop()
	for _, at := range []time.Time{now, now.Add(5 * time.Minute)} {
		q := url.Values{"query": {`rate(calls_total{version="canary"}[1m])`}, "time": {at.Format(time.RFC3339)}}
		resp, err := http.Get(s.URL() + "/api/v1/query?" + q.Encode())
		assert.NilError(t, err)
		var body struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		assert.NilError(t, json.NewDecoder(resp.Body).Decode(&body))
		resp.Body.Close()
		assert.Equal(t, len(body.Data.Result), 1, "at %s", at)
		assert.Equal(t, body.Data.Result[0].Value[1], "1", "one call a second")
	}
}
