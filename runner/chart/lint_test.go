package chart_test

import (
	"testing"

	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/chart"
)

func TestLintTargets(t *testing.T) {
	for _, tg := range targets.All() {
		t.Run(string(tg.Name), func(t *testing.T) {
			assert.NilError(t, chart.Lint(chartDir, tg.ValuesFiles, pipelineValues(nil)))
		})
	}
}

func TestLintReportsBadValues(t *testing.T) {
	err := chart.Lint(chartDir, []string{"values-prod.yaml"}, pipelineValues(map[string]any{"replicaCont": 3}))
	assert.ErrorContains(t, err, "lint chart ../../deploy/chart with values [values-prod.yaml]: ")
	assert.ErrorContains(t, err, "replicaCont")
}
