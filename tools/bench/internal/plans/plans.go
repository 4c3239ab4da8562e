// Package plans builds the release plans the benchmarks run, shared by the
// bench command and the deployonce child it measures peak RSS with.
package plans

import (
	"time"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
)

// Timeout bounds every benchmarked rollout.
const Timeout = 5 * time.Minute

// Holder names the benchmark in the release lock.
const Holder = "bench"

// Canary is the plan of a push to dv-main deploying digest into namespace;
// newSecrets, when not nil, are the names of a bundle the deploy applies.
func Canary(namespace, chartDir, digest string, newSecrets *pipeline.SecretNames) (pipeline.DeployPlan, error) {
	return pipeline.NewDeploy(pipeline.DeployInput{Branch: "dv-main", Overrides: targets.Overrides{Namespace: namespace},
		ChartDir: chartDir, Image: digest, NewSecrets: newSecrets, Holder: Holder, Timeout: Timeout})
}

// Stable deploys digest to stable directly (a plan is data): stable has no
// branch, only promotion reaches it in the pipeline.
func Stable(namespace, chartDir, digest string) (pipeline.DeployPlan, error) {
	st, err := targets.Get(targets.Stable)
	if err != nil {
		return pipeline.DeployPlan{}, err
	}
	st = st.With(targets.Overrides{Namespace: namespace})
	return pipeline.DeployPlan{Target: st, ChartDir: chartDir, ValuesFiles: st.ValuesFiles,
		Image: pipeline.Image{Repository: st.Image, Digest: digest}, Secrets: pipeline.SecretsCurrent,
		Timeout: Timeout, Holder: Holder, MaxHistory: pipeline.MaxHistory}, nil
}
