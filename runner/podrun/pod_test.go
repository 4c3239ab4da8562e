package podrun

import (
	"testing"

	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
)

// The canary's pod as the real chart renders it.
func TestPodOfTheCanary(t *testing.T) {
	tg, err := targets.Get(targets.Canary)
	assert.NilError(t, err)
	dep, err := RenderDeployment("../../deploy/chart", tg)
	assert.NilError(t, err)
	pod, err := PodOf(tg.Name, dep)
	assert.NilError(t, err)
	assert.DeepEqual(t, pod, pipeline.Pod{
		Target: targets.Canary, Container: "dv-pipecat", Port: 8765, CredsPath: "/app/creds.json",
		Env:       []pipeline.EnvVar{{Name: "LOGGER_NAME", Value: "pipecat-canary"}},
		Readiness: &pipeline.Probe{Path: "/pc/v1/healthcheck", Port: 8765, InitialDelaySeconds: 60, PeriodSeconds: 30},
		Liveness:  &pipeline.Probe{Path: "/pc/v1/healthcheck", Port: 8765, InitialDelaySeconds: 90, PeriodSeconds: 60},
	})
}
