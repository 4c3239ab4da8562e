package checks

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"sigs.k8s.io/yaml"

	"github.com/ringg/ringg-ci/ci/targets"
)

// appWorkflows is where the workflows of the chatbot's repository live: they
// are copied there (docs/app-repository.md).
const appWorkflows = "../deploy/app-repository/.github/workflows/"

type workflow struct {
	On          map[string]any    `json:"on"`
	Permissions map[string]string `json:"permissions"`
	Concurrency struct {
		Group            string `json:"group"`
		CancelInProgress bool   `json:"cancel-in-progress"`
	} `json:"concurrency"`
	Jobs map[string]struct {
		If          string            `json:"if"`
		RunsOn      string            `json:"runs-on"`
		Environment string            `json:"environment"`
		Permissions map[string]string `json:"permissions"`
		Steps       []struct {
			Name string            `json:"name"`
			Uses string            `json:"uses"`
			Run  string            `json:"run"`
			Env  map[string]string `json:"env"`
			With map[string]string `json:"with"`
		} `json:"steps"`
	} `json:"jobs"`
}

func loadWorkflow(t *testing.T, name string) workflow {
	t.Helper()
	raw := readWorkflow(t, name)
	// YAML 1.1 reads a bare `on` key as the boolean true; quote it first.
	raw = regexp.MustCompile(`(?m)^on:`).ReplaceAll(raw, []byte(`"on":`))
	var w workflow
	assert.NilError(t, yaml.Unmarshal(raw, &w), name)
	return w
}

func readWorkflow(t *testing.T, name string) []byte {
	t.Helper()
	dir := appWorkflows
	if name == "release.yml" {
		dir = "../.github/workflows/" // this repository's own
	}
	raw, err := os.ReadFile(dir + name)
	assert.NilError(t, err)
	return raw
}

func TestDeployWorkflow(t *testing.T) {
	w := loadWorkflow(t, "github.yml")
	push, ok := w.On["push"].(map[string]any)
	assert.Assert(t, ok, "deploy runs on push")
	assert.DeepEqual(t, push["branches"], []any{"dv-stage", "dv-main"})
	assert.Equal(t, len(w.On), 1, "deploy runs only on push")
	assert.Check(t, is.Contains(w.Concurrency.Group, "github.ref_name"), "one concurrency group per target")
	assert.Check(t, !w.Concurrency.CancelInProgress, "a running deploy is never cancelled half-way")

	run, env := callStep(t, w)
	assert.Check(t, is.Contains(run, `ringg_ci deploy --branch "$BRANCH"`))
	assert.Check(t, is.Contains(run, `dagger --progress plain call -m "$MODULE" --source . `), "the app's own source at the pushed commit, never the module's stand-in")
	assert.Check(t, is.Contains(run, `--commit "$COMMIT"`))
	assert.Check(t, is.Contains(run, `--source-ref "$GITHUB_SERVER_URL/$GITHUB_REPOSITORY#$GITHUB_SHA"`), "the record's replay builds the pushed commit")
	assert.Equal(t, env["COMMIT"], "${{ github.sha }}")

	// Native builds: dv-main (linux/arm64) on an arm64 runner, dv-stage on amd64.
	job := w.Jobs["deploy"]
	for branch, runner := range map[string]string{"dv-main": "ubuntu-24.04-arm", "dv-stage": "ubuntu-24.04"} {
		assert.Check(t, is.Equal(evalBranchExpr(t, job.RunsOn, branch), runner), "runs-on for %s", branch)
	}
	// Each branch's job runs in the GitHub environment its target's account
	// is federated for (ci/targets): dv-main's in production-canary, whose
	// tokens Google exchanges for the canary's account only.
	for _, branch := range targets.Branches() {
		tg, err := targets.ForBranch(branch)
		assert.NilError(t, err)
		assert.Check(t, is.Equal(evalBranchExpr(t, job.Environment, branch), tg.Identity.Environment), "environment for %s", branch)
	}
	for _, secret := range []string{"SECRETS_JSON", "CREDS_JSON"} {
		assert.Check(t, is.Contains(run, "env://"+secret))
	}
	for _, s := range []string{"STAGE_SECRETS_JSON", "STAGE_CREDS_JSON", "PROD_SECRETS_JSON", "PROD_CREDS_JSON"} {
		prefix, suffix, _ := strings.Cut(s, "_")
		found := false
		for _, v := range env {
			found = found || (strings.Contains(v, "'"+prefix+"'") && strings.Contains(v, "'{0}_"+suffix+"'"))
		}
		assert.Check(t, found, "the workflow passes %s for its branch", s)
	}
}

func TestPromoteWorkflow(t *testing.T) {
	w := loadWorkflow(t, "promote-prod.yml")
	dispatch, ok := w.On["workflow_dispatch"].(map[string]any)
	assert.Assert(t, ok, "promote is manual")
	assert.Equal(t, len(w.On), 1, "promote runs only by hand")
	inputs := dispatch["inputs"].(map[string]any)
	digest := inputs["expected-digest"].(map[string]any)
	assert.Equal(t, digest["required"], true, "the approval names what is promoted")
	job := w.Jobs["promote"]
	assert.Equal(t, job.Environment, "production", "promotion needs the protected environment")
	assert.Equal(t, job.If, "github.ref == 'refs/heads/dv-main'", "only dv-main may promote")
	guard := job.Steps[0]
	assert.Check(t, strings.Contains(guard.Run, "refs/heads/dv-main") && strings.Contains(guard.Run, "exit 1"), "a dispatch on another branch fails loudly, first")
	for _, s := range job.Steps {
		assert.Check(t, !strings.HasPrefix(s.Uses, "actions/checkout@"), "promote builds nothing: it runs no code of the dispatched branch")
	}
	stable, err := targets.Get(targets.Stable)
	assert.NilError(t, err)
	assert.Equal(t, stable.Identity.Environment, job.Environment, "promote acts as stable's account, federated for the environment the job runs in")
	run, _ := callStep(t, w)
	assert.Check(t, is.Contains(run, "ringg_ci promote "))
	assert.Check(t, is.Contains(run, `--expected-digest "$EXPECTED_DIGEST"`))
	assert.Check(t, is.Contains(run, "--wait-until-healthy"), "promote when proven, not on a snapshot")
}

// Every workflow is hardened; the chatbot repository's two also ask only for
// an OIDC token and read access, run in a protected environment, call the
// module pinned to one commit with the GitHub OIDC pair, and write its
// record to the job summary whether the run succeeds or fails.
func TestWorkflowsCommon(t *testing.T) {
	for _, name := range []string{"github.yml", "promote-prod.yml", "release.yml"} {
		t.Run(name, func(t *testing.T) {
			hardened(t, name)
			if name == "release.yml" {
				return
			}
			w := loadWorkflow(t, name)
			for jobName, job := range w.Jobs {
				assert.DeepEqual(t, job.Permissions, map[string]string{"id-token": "write", "contents": "read"})
				assert.Check(t, job.Environment != "", "job %s runs in a protected environment", jobName)
			}
			run, env := callStep(t, w)
			assert.Check(t, regexp.MustCompile(`^github\.com/ringg/ringg-ci@([0-9a-f]{40}|RINGG_CI_COMMIT)$`).MatchString(env["MODULE"]),
				"the module is pinned to one commit: %q", env["MODULE"])
			assert.Check(t, is.Contains(run, `--module-ref "$MODULE"`), "the record's replay names the same module")
			assert.Check(t, is.Contains(run, "--oidc-request-url env://ACTIONS_ID_TOKEN_REQUEST_URL"))
			assert.Check(t, is.Contains(run, "--oidc-request-token env://ACTIONS_ID_TOKEN_REQUEST_TOKEN"))
			// The account is the target's (ci/targets): a workflow naming
			// another would escape the per-target RBAC.
			for _, flag := range []string{"--service-account", "--workload-identity-provider"} {
				assert.Check(t, !strings.Contains(run, flag), "%s: the target's identity is used, never %s", name, flag)
			}
			// The summary is the module's record, which Dagger scrubbed of
			// every secret value, or the module's error; nothing else.
			assert.Check(t, is.Contains(run, `cat "$record" >>"$GITHUB_STEP_SUMMARY"`))
			assert.Equal(t, strings.Count(run, "GITHUB_STEP_SUMMARY"), 1, "the summary is written in one place")
		})
	}
}

// The release publishes the runner image with the job's own token, only
// for a tag of a commit on main, approved in a protected environment, and
// attests the image's provenance.
func TestReleaseWorkflow(t *testing.T) {
	w := loadWorkflow(t, "release.yml")
	push, ok := w.On["push"].(map[string]any)
	assert.Assert(t, ok && len(w.On) == 1, "release runs on tag pushes only")
	assert.DeepEqual(t, push["tags"], []any{"v*"})
	job := w.Jobs["runner"]
	assert.Equal(t, job.Environment, "release", "a required reviewer approves each publish")
	assert.DeepEqual(t, job.Permissions, map[string]string{"contents": "read", "packages": "write", "id-token": "write", "attestations": "write"})
	var onMain, publish, attest int
	for i, s := range job.Steps {
		switch {
		case strings.Contains(s.Run, `git merge-base --is-ancestor "$GITHUB_SHA" origin/main`):
			onMain = i
		case strings.Contains(s.Run, "publish-runner"):
			publish = i
			assert.Check(t, is.Contains(s.Run, "--registry-password env://GITHUB_TOKEN"))
			assert.Equal(t, s.Env["GITHUB_TOKEN"], "${{ github.token }}")
		case strings.HasPrefix(s.Uses, "actions/attest-build-provenance@"):
			attest = i
			assert.Equal(t, s.With["subject-digest"], "${{ steps.publish.outputs.digest }}")
		case strings.HasPrefix(s.Uses, "actions/checkout@"):
			assert.Equal(t, s.With["fetch-depth"], "0", "the check of main needs its history")
		}
	}
	assert.Check(t, onMain > 0 && onMain < publish && publish < attest, "check main, then publish, then attest: steps %d %d %d", onMain, publish, attest)
}

// A step that runs an action's code (downloads, installers) gets no token
// or secret in its environment: only run: steps that call the pinned CLI do.
// (The OIDC request token is the exception GitHub makes: it is in every
// step of a job that may ask for one; docs/security.md says what that means.)
func TestActionStepsCarryNoSecrets(t *testing.T) {
	for _, name := range []string{"github.yml", "promote-prod.yml", "release.yml"} {
		w := loadWorkflow(t, name)
		for jobName, job := range w.Jobs {
			for _, s := range job.Steps {
				if s.Uses == "" || strings.HasPrefix(s.Uses, "actions/attest-build-provenance@") {
					continue
				}
				for k, v := range s.Env {
					assert.Check(t, !strings.Contains(v, "secrets") && !strings.Contains(v, "github.token"),
						"%s job %s: step %q runs %s with %s=%s: give it to a run: step", name, jobName, s.Name, s.Uses, k, v)
				}
			}
		}
	}
}

// hardened checks what every workflow shares (OpenSSF Scorecard's workflow
// checks): nothing granted by default; actions pinned to full commits with
// the version in a comment; the checkout keeps no token; secrets only
// through env:// (never pasted into the command line, which Actions' bash
// runs) and no expression interpolated into a script or the module's
// arguments; no pull_request_target.
func hardened(t *testing.T, name string) {
	t.Helper()
	pinnedAction := regexp.MustCompile(`^\s*(- )?uses: ([^@\s]+)@([0-9a-f]{40}) # v\d+\.\d+\.\d+$`)
	raw := string(readWorkflow(t, name))
	for _, line := range strings.Split(raw, "\n") {
		if strings.Contains(line, "uses:") {
			assert.Check(t, pinnedAction.MatchString(line), "action pinned to a full commit with its version in a comment: %q", line)
		}
	}
	assert.Check(t, !strings.Contains(raw, "pull_request_target"), "no pull_request_target")
	w := loadWorkflow(t, name)
	assert.DeepEqual(t, w.Permissions, map[string]string{})
	for _, job := range w.Jobs {
		for _, s := range job.Steps {
			if strings.HasPrefix(s.Uses, "actions/checkout@") {
				assert.Equal(t, s.With["persist-credentials"], "false", "the checkout keeps no token on disk")
			}
			if strings.HasPrefix(s.Uses, "dagger/dagger-for-github@") {
				assert.Equal(t, s.Uses, "dagger/dagger-for-github@27b130bf0f79a7f6fbbbe0fbca6760dc9bb40a77")
				assert.Equal(t, s.With["version"], "0.21.9")
				if s.With["args"] != "" {
					assert.Equal(t, s.With["verb"], "call")
					assert.Check(t, !strings.Contains(s.With["args"], "${{"), "args must not interpolate expressions: pass them through env")
				} else {
					assert.DeepEqual(t, s.With, map[string]string{"version": "0.21.9"})
				}
			}
			for k, v := range s.With {
				assert.Check(t, !strings.Contains(v, "secrets."), "with.%s must not carry a secret: use env:// ", k)
			}
			assert.Check(t, !strings.Contains(s.Run, "${{"), "run scripts take values through env, never interpolated: %q", s.Run)
			assert.Check(t, !strings.Contains(s.Run, "secrets."), "run scripts must not read secrets")
		}
	}
}

// evalBranchExpr evaluates the workflows' one expression shape,
// `${{ github.ref_name == 'B' && 'X' || 'Y' }}`, for a branch.
func evalBranchExpr(t *testing.T, expr, branch string) string {
	t.Helper()
	m := regexp.MustCompile(`^\$\{\{ github\.ref_name == '([^']+)' && '([^']+)' \|\| '([^']+)' \}\}$`).FindStringSubmatch(expr)
	if m == nil {
		return expr
	}
	if branch == m[1] {
		return m[2]
	}
	return m[3]
}

// callMarker starts the module's call in the chatbot repository's
// workflows.
const callMarker = `dagger --progress plain call -m "$MODULE"`

// callStep is the step that calls the module: its script and environment.
func callStep(t *testing.T, w workflow) (run string, env map[string]string) {
	t.Helper()
	for _, job := range w.Jobs {
		for _, s := range job.Steps {
			if strings.Contains(s.Run, callMarker) {
				return s.Run, s.Env
			}
		}
	}
	t.Fatalf("no step runs %s", callMarker)
	return "", nil
}
