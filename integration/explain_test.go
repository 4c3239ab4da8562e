package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/ringg/ringg-ci/ci/command"
	"github.com/ringg/ringg-ci/ci/pipeline"
	cikube "github.com/ringg/ringg-ci/runner/kube"
	"github.com/ringg/ringg-ci/runner/release"
	"github.com/ringg/ringg-ci/runner/secrets"
	"github.com/ringg/ringg-ci/testcluster/fakenode"
)

// A failed rollout explains itself: these tests fail rollouts the ways real
// apps fail, on fake nodes that report what a kubelet and a scheduler report
// and play the stand-in chatbot with each pod's environment, and check the
// pods grouped by cause, the events and the app's own last lines.

func eventLines(g cikube.PodGroup) []string {
	var out []string
	for _, e := range g.Events {
		out = append(out, e.String())
	}
	return out
}

// missingKeyJSON is an app environment that lacks REDIS_URL.
func missingKeyJSON() []byte {
	return []byte(`{"OPENAI_API_KEY": "` + secretMarker + `-missing-key", "ENVIRONMENT": "production"}`)
}

// requiringChart is the chart with the canary's pods requiring REDIS_URL
// (the stand-in's REQUIRED_ENV switch, set where the app's own settings
// are, not in its secrets: a value of the secrets is scrubbed wherever it
// shows, and the app names the setting it lacks).
func requiringChart(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "values-canary.yaml"))
	assert.NilError(t, err)
	values := string(raw) + "  - name: REQUIRED_ENV\n    value: REDIS_URL\n"
	assert.Assert(t, strings.HasSuffix(string(raw), "    value: pipecat-canary\n"), "values-canary.yaml no longer ends with its env")
	return chartWith(t, map[string]string{"values-canary.yaml": values})
}

// invalidConfiguration is the stand-in's own last line when REDIS_URL is
// missing (server.Start), as the canary logs it.
const invalidConfiguration = `"level":"ERROR","msg":"invalid configuration","logger":"pipecat-canary","error":"read chatbot configuration: required setting REDIS_URL is not set (REQUIRED_ENV); add it to the app's secrets"}`

func TestDeployOfAnAppMissingARequiredKeyFailsInTheAppsOwnWords(t *testing.T) {
	e := newRelEnv(t)
	b, err := secrets.Build(missingKeyJSON(), credsJSON, secrets.DefaultNames(), e.ns)
	assert.NilError(t, err)
	n := b.Names()
	plan := e.canaryPlan(digest("k"), &pipeline.SecretNames{AppEnv: n.AppEnv, GCPCreds: n.GCPCreds})
	plan.ChartDir = requiringChart(t)
	res, err := e.deploy(plan, &b, release.Options{MaxRestarts: 2})
	assert.Assert(t, errors.Is(err, cikube.ErrRolloutFailed), "%v", err)
	assert.Assert(t, errors.Is(err, release.ErrRolledBack), "%v", err)
	assert.Equal(t, res.Status, "uninstalled", "a first install that never served")
	// The error: one line for the two pods, ending with the app's own line.
	assert.ErrorContains(t, err, "; 2 pods CrashLoopBackOff after ")
	assert.ErrorContains(t, err, " restarts: exited with code 1 (Error); last line: {")
	assert.ErrorContains(t, err, invalidConfiguration+" (pod dv-pipecat-canary-")
	noLeak(t, err.Error())

	g := rolloutError(t, err).Explanation.Groups[0]
	assert.Equal(t, len(g.Pods), 2)
	assert.Assert(t, strings.HasSuffix(g.Previous[len(g.Previous)-1], invalidConfiguration), "%q", g.Previous)
	assert.Assert(t, containsLine(eventLines(g), "Warning BackOff", "kubelet): Back-off restarting failed container dv-pipecat"), "%q", eventLines(g)) // "(kubelet)", or "(×2, kubelet)" once repeated
	assert.Equal(t, *g.ExitCode, int32(1))
}

// A pool with room for one canary pod: the other stays Pending, and the
// failure names the scheduler's reason, the pod's requests and the pool.
func TestPendingPodsAreExplainedWithTheSchedulersReasonAndThePool(t *testing.T) {
	ns := cluster.NamespaceWithNodes(t, fakenode.Options{
		Architectures: []string{"arm64"},
		Allocatable:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m"), corev1.ResourceMemory: resource.MustParse("8Gi")},
		Timing:        prodTiming, TimeScale: slowScale,
	})
	e := newRelEnvIn(t, ns)
	_, err := e.deploy(e.canaryPlan(digest("a"), nil), nil, release.Options{TimeScale: slowScale})
	assert.Assert(t, errors.Is(err, cikube.ErrRolloutStalled), "%v", err)
	assert.ErrorContains(t, err, "; 1 pod Unschedulable: FailedScheduling: 0/1 nodes are available: 1 Insufficient cpu. (pod dv-pipecat-canary-")
	ex := rolloutError(t, err).Explanation
	// Every arm64 node counts, the test cluster's shared ones too.
	assert.Assert(t, strings.HasPrefix(ex.Nodes.String(), "kubernetes.io/arch=arm64: "), ex.Nodes.String())
	assert.Assert(t, ex.Nodes.Nodes >= 1 && ex.Nodes.Ready == ex.Nodes.Nodes, ex.Nodes.String())
	g := ex.Groups[0]
	assert.Equal(t, g.Requests, "1 cpu, 2560Mi memory")
	assert.Assert(t, containsLine(eventLines(g), "Warning FailedScheduling", "(default-scheduler): 0/1 nodes are available: 1 Insufficient cpu."), "%q", eventLines(g))
	assert.Equal(t, g.LogNote, "the container never started: no logs")
}

// The command prints a failed run's record on standard output, as JSON with
// --json, whether the run succeeded or not; its error is one line on
// standard error, and the explanation in full goes to the log.
func TestCLIRecordOfAFailedDeploy(t *testing.T) {
	c := newCLIEnv(t)
	c.env[command.EnvSecretsJSON] = string(missingKeyJSON())
	c.env[command.EnvCredsJSON] = string(credsJSON)
	img := prodRepo + "@" + digest("k")
	chart := requiringChart(t)
	r := c.run("deploy", "--namespace", c.ns, "--chart", chart, "--branch", "dv-main", "--image", img, "--timeout", "60s", "--json",
		"--reproduce", "dagger call replay --branch dv-main --secrets-json file://secrets.json")
	assert.Equal(t, r.code, 1, r.stderr)
	var rec struct {
		Verb, Error string
		OK          bool
		Failures    []struct {
			Explanation struct {
				Groups []struct {
					Reason       string
					PreviousLogs []string `json:"previousLogs"`
				}
			}
		}
		RolledBack struct{ Uninstalled bool } `json:"rolledBack"`
		Reproduce  []string
	}
	assert.NilError(t, json.Unmarshal([]byte(r.stdout), &rec), r.stdout)
	assert.Equal(t, rec.Verb, "deploy")
	assert.Equal(t, rec.OK, false)
	assert.Assert(t, rec.RolledBack.Uninstalled)
	assert.Equal(t, rec.Failures[0].Explanation.Groups[0].Reason, "CrashLoopBackOff")
	prev := rec.Failures[0].Explanation.Groups[0].PreviousLogs
	assert.Assert(t, strings.HasSuffix(prev[len(prev)-1], invalidConfiguration), "%q", prev)
	assert.DeepEqual(t, rec.Reproduce, []string{"dagger call replay --branch dv-main --secrets-json file://secrets.json"})
	// standard error: the progress, the explanation in full, the error line last.
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	assert.Assert(t, strings.HasPrefix(lines[len(lines)-1], "ringg-ci deploy: deploy canary (release dv-pipecat-canary in "+c.ns+") failed: "), lines[len(lines)-1])
	assert.Assert(t, is.Contains(r.stderr, "why the rollout of deployment dv-pipecat-canary failed:\n2 pods CrashLoopBackOff"))
	assert.Assert(t, is.Contains(r.stderr, "  previous | {"))
	noLeak(t, c.all.String())

	// The same as Markdown, for a job summary.
	r = c.run("deploy", "--namespace", c.ns, "--chart", chart, "--branch", "dv-main", "--image", img, "--timeout", "60s")
	assert.Equal(t, r.code, 1, r.stderr)
	assert.Assert(t, strings.HasPrefix(r.stdout, "### deploy canary failed: revision 1 never served, the release was uninstalled\n"), r.stdout)
	assert.Assert(t, is.Contains(r.stdout, "Last lines of container dv-pipecat, before its last restart (previous container):"), r.stdout)
	assert.Assert(t, is.Contains(r.stdout, invalidConfiguration), r.stdout)
	assert.Assert(t, is.Contains(r.stdout, "#### Rollout timeline"), r.stdout)
	assert.Assert(t, is.Contains(r.stdout, "#### Reproduce\n\n```sh\nringg-ci status --target canary\n"), r.stdout)
}

// Run by the Dagger module, the command names the module's flags in its
// errors about the inputs the module passed.
func TestCLIErrorsInTheModulesWords(t *testing.T) {
	c := &cliEnv{t: t, env: map[string]string{command.EnvCaller: command.CallerModule}}
	r := c.run("status", "--target", "canary")
	assert.Equal(t, r.code, 1)
	assert.Assert(t, is.Contains(r.stderr, "get google credentials: none given"), r.stderr)
	assert.Assert(t, is.Contains(r.stderr, command.ModuleCredentials), r.stderr)
	assert.Assert(t, !strings.Contains(r.stderr, "pass an access token (gcloud"), r.stderr)
}

// The deploy account's Role lets the explanation read the failing pods'
// events; without that rule the run fails the same way and says what it
// could not read.
func TestExplanationReadsEventsAsTheDeployAccount(t *testing.T) {
	role, _ := loadRBAC(t, deployerRole)
	for _, withEvents := range []bool{true, false} {
		t.Run(fmt.Sprintf("events readable %t", withEvents), func(t *testing.T) {
			t.Parallel()
			rules := role.Rules
			if !withEvents {
				rules = slices.DeleteFunc(slices.Clone(rules), func(r rbacv1.PolicyRule) bool { return slices.Contains(r.Resources, "events") })
				assert.Equal(t, len(rules), len(role.Rules)-1)
			}
			r := newRBACEnv(t, deployerRole, rules)
			p := r.failing(r.canaryPlan(digest("a"), nil), "never-ready")
			p.Timeout = 8 * time.Second
			_, err := (&release.Deploy{Clients: r.as, Plan: p}).Run(context.Background())
			assert.Assert(t, errors.Is(err, release.ErrRolledBack), "%v", err)
			ex := rolloutError(t, err).Explanation
			g := ex.Groups[0]
			if withEvents {
				assert.Assert(t, containsLine(eventLines(g), "Readiness probe failed: HTTP probe failed with statuscode: 503"), "%q", eventLines(g))
				assert.DeepEqual(t, ex.Notes, []string(nil))
				return
			}
			assert.Equal(t, len(g.Events), 0)
			assert.Assert(t, containsLine(ex.Notes, "events of pod "+g.Example+": forbidden for this account"), "%q", ex.Notes)
		})
	}
}
