package cli

import (
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/ci/targets"
)

func TestParseSince(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "12h": 12 * time.Hour, "90m": 90 * time.Minute} {
		got, err := parseSince(in)
		assert.NilError(t, err)
		assert.Equal(t, got, want, in)
	}
	for _, in := range []string{"", "0d", "-1d", "d", "1w", "-5m"} {
		_, err := parseSince(in)
		assert.ErrorContains(t, err, "want a span such as 30d, 12h or 90m", in)
	}
}

// TestParseVerification reads the documents operations.md shows, YAML or
// JSON, and refuses what would silently check less than meant.
func TestParseVerification(t *testing.T) {
	v, err := parseVerification([]byte(`
calls:
  path: /pc/v1/ws
  send: '{"type":"ping"}'
  expect: '"type":"echo"'
  hold: 20s
metrics:
  url: http://localhost:9090
  interval: 15s
  queries:
    - name: call failure rate
      expr: sum(rate(calls_failed_total{version="$track"}[5m])) / sum(rate(calls_total{version="$track"}[5m]))
      maxRatio: 1.5
    - name: error logs
      expr: sum(rate(log_errors_total{version="$track"}[5m]))
      maxIncrease: 0.1
`))
	assert.NilError(t, err)
	assert.DeepEqual(t, *v.Calls, targets.Calls{Path: "/pc/v1/ws", Send: `{"type":"ping"}`, Expect: `"type":"echo"`, Hold: 20 * time.Second})
	assert.Equal(t, v.Metrics.Interval, 15*time.Second)
	assert.Equal(t, len(v.Metrics.Queries), 2)
	assert.Equal(t, *v.Metrics.Queries[1].MaxIncrease, 0.1)

	j, err := parseVerification([]byte(`{"calls": {"path": "/ws", "hold": "2s"}}`))
	assert.NilError(t, err)
	assert.Assert(t, j.Metrics == nil, "a document without metrics keeps the target's")

	for doc, want := range map[string]string{
		"call:\n  path: /ws\n": `unknown field "call"`,
		"calls:\n  path: ws\n": "calls: path \"ws\" must start with /",
		"metrics:\n  queries:\n  - name: x\n    expr: up\n    maxRatio: 2\n": "expr names no $track",
		"calls: [": "yaml",
	} {
		_, err := parseVerification([]byte(doc))
		assert.ErrorContains(t, err, want, doc)
	}
}
