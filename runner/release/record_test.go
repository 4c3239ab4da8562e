package release

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/kube"
)

func canaryTarget(t *testing.T) targets.Target {
	t.Helper()
	tg, err := targets.Get(targets.Canary)
	assert.NilError(t, err)
	return tg
}

// crashExplanation is what the watch explains of a canary whose secrets
// lack a key the app requires.
func crashExplanation() *kube.Explanation {
	code := int32(1)
	line := `{"time":"2026-12-07T10:00:01Z","level":"ERROR","msg":"invalid configuration","logger":"pipecat-canary","error":"read chatbot configuration: required setting REDIS_URL is not set (REQUIRED_ENV); add it to the app's secrets"}`
	return &kube.Explanation{Groups: []kube.PodGroup{{
		Reason: "CrashLoopBackOff", Cause: "exited with code 1 (Error); last line: " + line, Pods: []string{"dv-pipecat-canary-7d9f8-abcde"},
		Example: "dv-pipecat-canary-7d9f8-abcde", Container: "dv-pipecat", Restarts: 3, ExitCode: &code, Terminated: "Error",
		Events:   []kube.PodEvent{{Type: "Warning", Reason: "BackOff", Message: "Back-off restarting failed container dv-pipecat in pod dv-pipecat-canary-7d9f8-abcde_default(1)", Count: 3, From: "kubelet"}},
		Previous: []string{`{"time":"2026-12-07T10:00:01Z","level":"INFO","msg":"starting chatbot stand-in"}`, line},
	}}}
}

func TestRecordOfAFailedDeploy(t *testing.T) {
	res := deployedResult()
	res.Revision, res.Previous, res.Failed, res.Status, res.Outcome = 5, 3, 4, "deployed", OutcomeProven
	watch := &kube.RolloutError{Namespace: "default", Deployment: "dv-pipecat-canary", Cause: kube.ErrRolloutFailed,
		Detail:   "pod dv-pipecat-canary-7d9f8-abcde container dv-pipecat restarted 3 times (limit 3)",
		Progress: kube.RolloutProgress{Desired: 2, Updated: 1, Old: 2, Elapsed: 41 * time.Second}, Explanation: crashExplanation()}
	err := fmt.Errorf("deploy canary (release dv-pipecat-canary in default) failed: %w; %w to revision 3 (recorded as revision 5); fix the image or values and deploy again", watch, ErrRolledBack)
	tl := &Timeline{}
	for i, ready := range []int32{0, 0, 0, 1} {
		tl.Add(Progress{Target: "canary", Release: "dv-pipecat-canary", Phase: "rollout", RolloutProgress: kube.RolloutProgress{
			Desired: 2, Updated: 1, Ready: 0, Old: 2, Pending: 1 - min(ready, 1), PendingReason: "ContainerCreating", Elapsed: time.Duration(i*10) * time.Second}})
	}
	tl.Add(Progress{Phase: "rollback", RolloutProgress: kube.RolloutProgress{Desired: 2, Updated: 2, Ready: 2, Elapsed: 50 * time.Second}})
	rec := NewRecord(RecordInput{Verb: "deploy", Target: canaryTarget(t), Result: res, Err: err, Timeline: tl,
		Reproduce: []string{"dagger -m github.com/ringg/ringg-ci@<commit> call --source https://github.com/ringg/dv-pipecat#<sha> replay --branch dv-main --secrets-json file://<a copy of SECRETS_JSON>"}})
	assert.Equal(t, rec.OK, false)
	assert.DeepEqual(t, rec.RolledBack, &RolledBack{Failed: 4, To: 3, As: 5})
	assert.Equal(t, len(rec.Failures), 1)
	assert.Equal(t, len(rec.Timeline), 3, "one moment per change")
	golden.Assert(t, rec.Markdown(), "record-deploy-crashed.golden.md")

	out, jerr := json.Marshal(rec)
	assert.NilError(t, jerr)
	var back map[string]any
	assert.NilError(t, json.Unmarshal(out, &back))
	assert.Check(t, is.Equal(back["ok"], false))
	assert.Check(t, is.Equal(back["duration"], "1m34s"))
	assert.Check(t, is.Contains(string(out), `"previousLogs":[`))
	assert.Check(t, is.Contains(string(out), `"at":"30s"`))
}

// A rollback whose own rollout fails is explained too, after the run's.
func TestRecordOfAFailedRollbackToo(t *testing.T) {
	first := &kube.RolloutError{Deployment: "dv-pipecat", Cause: kube.ErrRolloutStalled, Explanation: crashExplanation()}
	second := &kube.RolloutError{Deployment: "dv-pipecat", Cause: kube.ErrRolloutTimeout, Explanation: &kube.Explanation{Groups: []kube.PodGroup{{Reason: "Unschedulable", Pods: []string{"p"}}}}}
	err := errors.Join(fmt.Errorf("promote failed: %w; returned to revision 2 as revision 4, but that rollout did not complete either: %w", first, second), errors.New("record it"))
	rec := NewRecord(RecordInput{Verb: "promote", Err: err})
	assert.Equal(t, len(rec.Failures), 2)
	assert.Equal(t, rec.Failures[0].Phase, "rollout")
	assert.Equal(t, rec.Failures[1].Phase, "rollback")
	assert.Equal(t, rec.Failures[1].Cause, "rollout timed out")
}

func TestRecordOfASuccess(t *testing.T) {
	rec := NewRecord(RecordInput{Verb: "deploy", Target: canaryTarget(t), Result: deployedResult(), Reproduce: []string{"ringg-ci status --target canary"}})
	assert.Equal(t, rec.OK, true)
	assert.Equal(t, rec.Before, 3)
	assert.Equal(t, rec.After, 4)
	md := rec.Markdown()
	assert.Check(t, is.Contains(md, deployedResult().Summary()))
	assert.Check(t, is.Contains(md, "#### Reproduce\n\n```sh\nringg-ci status --target canary\n```\n"))
}

func TestRecordOfARunThatNeverStarted(t *testing.T) {
	rec := NewRecord(RecordInput{Verb: "deploy", Err: errors.New(`unknown branch "main": deploy dv-stage or dv-main`)})
	assert.Equal(t, rec.Markdown(), "### deploy failed before it started\n\n```\nunknown branch \"main\": deploy dv-stage or dv-main\n```\n\n")
}
