package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// TestCLICanaryVerifyPromoteHistory runs the verbs of issue 23 as the
// module runs them: a canary deploy that records its commit and places a
// call, verify, a promote that waits, soaks and places calls, a promote
// refused by its metrics with the verdict table on standard output, and
// history as text and JSON.
func TestCLICanaryVerifyPromoteHistory(t *testing.T) {
	c := newCLIEnv(t)
	prodRepo := "asia-south1-docker.pkg.dev/desivocalprod01/ringg-registry-prod/dv-pipecat"
	dir := t.TempDir()
	short := filepath.Join(dir, "calls.yaml")
	assert.NilError(t, os.WriteFile(short, []byte("calls:\n  path: /pc/v1/ws\n  send: ping\n  expect: echo\n  hold: 300ms\n"), 0o644))

	r := c.inNS("deploy", "--branch", "dv-main", "--image", prodRepo+"@"+digest("a"), "--commit", "c0ffee1", "--verification", short, "--timeout", "60s")
	assert.Equal(t, r.code, 0, r.stderr)
	assert.Assert(t, is.Contains(r.stdout, "| synthetic calls | 2/2 pods held 300ms on ws `:8765/pc/v1/ws` |"), r.stdout)

	r = c.inNS("verify", "--target", "CANARY", "--verification", short)
	assert.Equal(t, r.code, 0, r.stderr)
	assert.Assert(t, is.Contains(r.stdout, "ws :8765/pc/v1/ws held 300ms: 2 pods, all passed"), r.stdout)
	assert.Assert(t, is.Contains(r.stdout, "metrics: none configured for canary"), r.stdout)

	r = c.inNS("promote", "--soak", "1s", "--wait-until-healthy", "--expected-digest", digest("a"), "--verification", short)
	assert.Equal(t, r.code, 0, r.stderr)
	assert.Assert(t, is.Contains(r.stdout, "rounds passed; the last round: 2/2 pods held 300ms"), r.stdout)
	assert.Assert(t, is.Contains(r.stdout, "Metrics: no metrics are configured for canary"), r.stdout)

	metrics := prometheusFor(t, c.ns, 0.05, 0.01)
	doc := filepath.Join(dir, "metrics.yaml")
	assert.NilError(t, os.WriteFile(doc, []byte(`metrics:
  interval: 1s
  queries:
    - name: call failure rate
      expr: `+failureRateQuery.Expr+`
      maxRatio: 2
`), 0o644))
	r = c.inNS("promote", "--soak", "1s", "--verification", short, "--verification", doc, "--prometheus-url", metrics.URL)
	assert.Equal(t, r.code, 1, r.stderr)
	assert.Assert(t, is.Contains(r.stderr, "promote refused: metrics: 1 of 1 queries failed during the soak"), r.stderr)
	assert.Assert(t, is.Contains(r.stdout, "| call failure rate | 0.05 | 0.01 | <= 2 x stable | FAIL:"), r.stdout)

	r = c.inNS("history", "--target", "STABLE", "--target", "CANARY", "--since", "1d")
	assert.Equal(t, r.code, 0, r.stderr)
	for _, want := range []string{"canary: release dv-pipecat-canary in " + c.ns, "stable: release dv-pipecat in " + c.ns, "c0ffee1", "rounds of calls passed, no metrics configured",
		"deploy frequency", "not measured: lead time for changes"} {
		assert.Assert(t, is.Contains(r.stdout, want))
	}
	r = c.inNS("history", "--target", "STABLE", "--json")
	assert.Equal(t, r.code, 0, r.stderr)
	var h struct {
		Targets []struct {
			Revisions []struct {
				Verb, Outcome, Commit, Holder, Gate string
			} `json:"revisions"`
		} `json:"targets"`
	}
	assert.NilError(t, json.Unmarshal([]byte(r.stdout), &h), r.stdout)
	assert.Equal(t, len(h.Targets[0].Revisions), 1, "the refused promote wrote nothing")
	got := h.Targets[0].Revisions[0]
	assert.Equal(t, got.Verb, "promote")
	assert.Equal(t, got.Outcome, "proven")
	assert.Equal(t, got.Commit, "c0ffee1")
	assert.Equal(t, got.Holder, "ringg-ci@cli-test")
	assert.Assert(t, strings.HasPrefix(got.Gate, "soak 1s, "), got.Gate)
}
