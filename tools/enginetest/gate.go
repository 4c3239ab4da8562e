package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ringg/ringg-ci/testcluster/promserver"
)

// gateEnv is what the steps of the canary gate (issue 23) share: a chart
// whose stand-in closes its calls early, verification documents, and a
// Prometheus on the host with two recorded stories of the canary against
// stable.
type gateEnv struct {
	faultyChart             string
	shortCalls, longCalls   string
	badMetrics, goodMetrics string
	prom                    *promserver.Server
	promPort                string
}

// gateSetup writes the documents and starts the Prometheus.
func (e *env) gateSetup(ctx context.Context) error {
	g := &gateEnv{faultyChart: filepath.Join(e.tmp, "chart-faulty")}
	if err := os.CopyFS(g.faultyChart, os.DirFS(filepath.Join(e.dir, "deploy", "chart"))); err != nil {
		return fmt.Errorf("copy the chart: %w", err)
	}
	values := filepath.Join(g.faultyChart, "values-canary.yaml")
	raw, err := os.ReadFile(values)
	if err != nil {
		return err
	}
	faulty := strings.Replace(string(raw), "    value: pipecat-canary\n",
		"    value: pipecat-canary\n  - name: CLOSE_CALLS_AFTER_SECONDS\n    value: \"2\"\n", 1)
	if faulty == string(raw) {
		return fmt.Errorf("%s has no LOGGER_NAME entry to add the fault after", values)
	}
	if err := os.WriteFile(values, []byte(faulty), 0o644); err != nil {
		return err
	}
	query := func(prefix string) string {
		return fmt.Sprintf("sum(rate(%s_failed_total{version=\"$track\"}[1m])) / sum(rate(%s_total{version=\"$track\"}[1m]))", prefix, prefix)
	}
	docs := map[*string]string{
		&g.shortCalls: "calls:\n  path: /pc/v1/ws\n  send: ping\n  expect: '\"type\":\"echo\"'\n  hold: 1s\n",
		&g.longCalls:  "calls:\n  path: /pc/v1/ws\n  send: ping\n  expect: '\"type\":\"echo\"'\n  hold: 4s\n",
		&g.badMetrics: "metrics:\n  interval: 2s\n  queries:\n    - name: call failure rate\n      expr: " + query("calls") + "\n      maxRatio: 2\n",
		&g.goodMetrics: "calls:\n  path: /pc/v1/ws\n  hold: 2s\nmetrics:\n  interval: 2s\n  queries:\n    - name: call failure rate\n      expr: " +
			query("steady_calls") + "\n      maxRatio: 2\n",
	}
	for dst, doc := range docs {
		f, err := os.CreateTemp(e.tmp, "verification-*.yaml")
		if err != nil {
			return err
		}
		if _, err := f.WriteString(doc); err != nil {
			return err
		}
		f.Close()
		*dst = f.Name()
	}
	// A day of recorded calls around now: the canary fails five times as
	// often as stable in calls_*, as often in steady_calls_*.
	now := time.Now()
	from, to := now.Add(-12*time.Hour), now.Add(12*time.Hour)
	counter := func(name, track string, perSecond float64) promserver.Series {
		return promserver.Series{Name: name, Labels: map[string]string{"version": track},
			Points: promserver.Every(from, to, 15*time.Second, func(at time.Time) float64 { return perSecond * at.Sub(from).Seconds() })}
	}
	dir := filepath.Join(e.tmp, "prometheus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	g.prom, err = promserver.Start(ctx, dir, []promserver.Series{
		counter("calls_total", "canary", 1), counter("calls_total", "stable", 30),
		counter("calls_failed_total", "canary", 0.05), counter("calls_failed_total", "stable", 0.3),
		counter("steady_calls_total", "canary", 1), counter("steady_calls_total", "stable", 30),
		counter("steady_calls_failed_total", "canary", 0.01), counter("steady_calls_failed_total", "stable", 0.3),
	})
	if err != nil {
		return fmt.Errorf("start prometheus: %w", err)
	}
	g.promPort = g.prom.URL()[strings.LastIndex(g.prom.URL(), ":")+1:]
	e.gate = g
	return nil
}

// gateSteps judge canaries by what callers see, in prod (the pass's
// production namespace): a canary whose calls close early, refused by the
// gate per pod and rolled back when its deploy holds calls long enough; one
// whose metric crosses its threshold in the recorded series, refused with
// the verdict table; a healthy one promoted by --wait-until-healthy, twice,
// and stable rolled back; verify; and the history of it all.
func (e *env) gateSteps(o options, prod string) []step {
	g := e.gate
	image := o.registry + "/enginetest/dv-pipecat"
	call := func(chart, source string, args ...string) []string {
		c := []string{"call", "--kubeconfig", "file://" + e.kubeconfig, "--cluster", "tcp://localhost:" + e.port, "--image-repository", image, "--namespace", prod}
		if chart != "" {
			c = append(c, "--chart", chart)
		}
		if source != "" {
			c = append(c, "--source", source)
		}
		return append(c, args...)
	}
	prom := []string{"--prometheus", "tcp://localhost:" + g.promPort}
	seen := map[string]string{}
	return []step{
		{name: "canary gate: deploy a canary whose calls close after 2s (1s calls pass)",
			args:  call(g.faultyChart, "", "deploy", "--branch", "dv-main", "--commit", "gate1", "--verification", "file://"+g.shortCalls),
			check: all(contains("| synthetic calls | 2/2 pods held 1s on ws `:8765/pc/v1/ws` |"), remember(seen, "gate canary"))},
		{name: "canary gate: promote refused, the calls close early", fail: true,
			args:  call("", "", "promote", "--soak", "6s", "--verification", "file://"+g.longCalls),
			check: contains("promote refused: synthetic call failed on 2 of 2 pods of canary", ": closed early, after 2", `of the 4s hold (close 1011 "closing calls early (CLOSE_CALLS_AFTER_SECONDS)")`)},
		{name: "canary gate: a deploy holding calls 4s rolls that canary back", fail: true,
			args:  call(g.faultyChart, "", "deploy", "--branch", "dv-main", "--commit", "gate1", "--verification", "file://"+g.longCalls),
			check: contains("synthetic call failed on 2 of 2 pods of canary", "rolled back to revision")},
		{name: "canary gate: deploy the healthy canary",
			args:  call("", "", "deploy", "--branch", "dv-main", "--commit", "gate2"),
			check: all(contains("| synthetic calls | 2/2 pods held 10s"), runs(seen, "gate canary"))},
		{name: "canary gate: promote refused, a metric over its threshold", fail: true,
			args:  call("", "", append([]string{"promote", "--soak", "6s", "--verification", "file://" + g.badMetrics}, prom...)...),
			check: contains("promote refused: metrics: 1 of 1 queries failed during the soak (call failure rate: canary 0.05 vs stable 0.01", "| call failure rate | 0.05 | 0.01 | <= 2 x stable | FAIL:")},
		{name: "canary gate: promote --wait-until-healthy",
			args:  call("", "", append([]string{"promote", "--soak", "6s", "--wait-until-healthy", "--verification", "file://" + g.goodMetrics, "--holder", "gate promote 1"}, prom...)...),
			check: all(contains("rounds passed; the last round: 2/2 pods held 2s", "| call failure rate | 0.01 | 0.01 | <= 2 x stable | pass"), runs(seen, "gate canary"))},
		{name: "canary gate: deploy canary v2",
			args:  call("", e.sourceV2, "deploy", "--branch", "dv-main", "--commit", "gate3"),
			check: all(remember(seen, "gate canary v2"), differs(seen, "gate canary", "gate canary v2"))},
		{name: "canary gate: promote v2 --wait-until-healthy",
			args:  call("", "", append([]string{"promote", "--soak", "6s", "--wait-until-healthy", "--verification", "file://" + g.goodMetrics, "--holder", "gate promote 2"}, prom...)...),
			check: runs(seen, "gate canary v2")},
		{name: "canary gate: rollback stable",
			args:  call("", "", "rollback", "--target", "STABLE", "--holder", "on call"),
			check: runs(seen, "gate canary")},
		{name: "canary gate: verify canary",
			args:  call("", "", append([]string{"verify", "--target", "CANARY", "--verification", "file://" + g.goodMetrics, "--window", "2m"}, prom...)...),
			check: contains("2 pods, all passed", "queries passed")},
		{name: "canary gate: history",
			args: call("", "", "history", "--since", "1d"),
			check: contains("rolled back (undone by", "failed (undone by", "gate1", "gate3", "soak 6s, ", "rounds of calls passed, 1 metric queries passed",
				"deploy frequency", "change failure rate", "time to restore", "not measured: lead time for changes")},
	}
}
