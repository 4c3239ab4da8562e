package checks

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"sigs.k8s.io/yaml"
)

type workflow struct {
	On          map[string]any    `json:"on"`
	Permissions map[string]string `json:"permissions"`
	Concurrency struct {
		Group            string `json:"group"`
		CancelInProgress bool   `json:"cancel-in-progress"`
	} `json:"concurrency"`
	Jobs map[string]struct {
		Environment string `json:"environment"`
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
	raw, err := os.ReadFile("../.github/workflows/" + name)
	assert.NilError(t, err)
	// YAML 1.1 reads a bare `on` key as the boolean true; quote it first.
	raw = regexp.MustCompile(`(?m)^on:`).ReplaceAll(raw, []byte(`"on":`))
	var w workflow
	assert.NilError(t, yaml.Unmarshal(raw, &w), name)
	return w
}

func TestDeployWorkflow(t *testing.T) {
	w := loadWorkflow(t, "github.yml")
	push, ok := w.On["push"].(map[string]any)
	assert.Assert(t, ok, "deploy runs on push")
	assert.DeepEqual(t, push["branches"], []any{"dv-stage", "dv-main"})
	assert.Equal(t, len(w.On), 1, "deploy runs only on push")
	assert.DeepEqual(t, w.Permissions, map[string]string{"id-token": "write", "contents": "read"})
	assert.Check(t, is.Contains(w.Concurrency.Group, "github.ref_name"), "one concurrency group per target")
	assert.Check(t, !w.Concurrency.CancelInProgress, "a running deploy is never cancelled half-way")

	args := daggerArgs(t, w)
	assert.Check(t, is.Contains(args, "deploy"))
	assert.Check(t, is.Contains(args, `--branch "$BRANCH"`))
	for _, secret := range []string{"SECRETS_JSON", "CREDS_JSON"} {
		assert.Check(t, is.Contains(args, "env://"+secret))
	}
	env := daggerStepEnv(t, w)
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
	assert.Equal(t, digest["required"], false)
	assert.DeepEqual(t, w.Permissions, map[string]string{"id-token": "write", "contents": "read"})
	assert.Equal(t, w.Jobs["promote"].Environment, "production", "promotion needs the protected environment")
	args := daggerArgs(t, w)
	assert.Check(t, is.Contains(args, "promote"))
	assert.Check(t, is.Contains(args, `--expected-digest "$EXPECTED_DIGEST"`))
}

// Properties every workflow shares: pinned actions and engine, secrets only
// through env:// (never pasted into the command line, which Actions' bash runs),
// and the module's summary written to the job summary.
func TestWorkflowsCommon(t *testing.T) {
	pinned := regexp.MustCompile(`@(v\d+\.\d+\.\d+|[0-9a-f]{40})$`)
	for _, name := range []string{"github.yml", "promote-prod.yml"} {
		t.Run(name, func(t *testing.T) {
			w := loadWorkflow(t, name)
			summary := false
			for _, job := range w.Jobs {
				for _, s := range job.Steps {
					if s.Uses != "" {
						assert.Check(t, pinned.MatchString(s.Uses), "action %s is pinned to a full version or commit", s.Uses)
					}
					if strings.HasPrefix(s.Uses, "dagger/dagger-for-github@") {
						assert.Equal(t, s.Uses, "dagger/dagger-for-github@v8.4.1")
						assert.Equal(t, s.With["version"], "0.21.9")
						assert.Equal(t, s.With["verb"], "call")
						assert.Check(t, !strings.Contains(s.With["args"], "${{"), "args must not interpolate expressions: pass them through env")
						assert.Check(t, is.Contains(s.With["args"], "--oidc-request-url env://ACTIONS_ID_TOKEN_REQUEST_URL"))
						assert.Check(t, is.Contains(s.With["args"], "--oidc-request-token env://ACTIONS_ID_TOKEN_REQUEST_TOKEN"))
					}
					for k, v := range s.With {
						assert.Check(t, !strings.Contains(v, "secrets."), "with.%s must not carry a secret: use env:// ", k)
					}
					assert.Check(t, !strings.Contains(s.Run, "secrets."), "run scripts must not read secrets")
					summary = summary || strings.Contains(s.Run, "$GITHUB_STEP_SUMMARY")
				}
			}
			assert.Check(t, summary, "the module's output reaches the job summary")
		})
	}
}

func daggerStep(t *testing.T, w workflow) (args string, env map[string]string) {
	t.Helper()
	for _, job := range w.Jobs {
		for _, s := range job.Steps {
			if strings.HasPrefix(s.Uses, "dagger/dagger-for-github@") {
				return s.With["args"], s.Env
			}
		}
	}
	t.Fatal("no dagger/dagger-for-github step")
	return "", nil
}

func daggerArgs(t *testing.T, w workflow) string {
	args, _ := daggerStep(t, w)
	return args
}

func daggerStepEnv(t *testing.T, w workflow) map[string]string {
	_, env := daggerStep(t, w)
	return env
}
