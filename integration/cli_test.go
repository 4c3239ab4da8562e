package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ringg/ringg-ci/runner/cli"
)

// cliRun is one run of the ringg-ci command as the Dagger module runs it:
// credentials and secret documents in the environment, everything else as
// flags.
type cliRun struct {
	code           int
	stdout, stderr string
}

// cliEnv runs the ringg-ci command against the test cluster.
type cliEnv struct {
	t   *testing.T
	ns  string
	env map[string]string
	// all collects every byte the command printed, for the leak check.
	all strings.Builder
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	return &cliEnv{t: t, ns: cluster.Namespace(t), env: map[string]string{cli.EnvKubeconfig: string(cluster.Kubeconfig())}}
}

func (c *cliEnv) run(args ...string) cliRun {
	c.t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), args, cli.Env{
		LookupEnv: func(k string) (string, bool) { v, ok := c.env[k]; return v, ok },
		Getenv:    func(k string) string { return c.env[k] },
		ReadFile:  os.ReadFile,
		Stdout:    &out,
		Stderr:    &errb,
		Hostname:  func() (string, error) { return "cli-test", nil },
		Now:       time.Now,
	})
	c.all.WriteString(out.String() + errb.String())
	if code != 0 && testing.Verbose() {
		c.t.Logf("ringg-ci %s: exit %d\n%s", strings.Join(args, " "), code, errb.String())
	}
	return cliRun{code: code, stdout: out.String(), stderr: errb.String()}
}

// inNS runs a verb against the test's namespace; the verbs that render take
// the repository's chart.
func (c *cliEnv) inNS(verb string, args ...string) cliRun {
	c.t.Helper()
	args = append([]string{verb, "--namespace", c.ns}, args...)
	switch verb {
	case "deploy", "plan", "promote", "rollback":
		args = append(args, "--chart", chartDir)
	}
	return c.run(args...)
}

func TestCLIDeployStatusPlanRollbackHealthLogsScaleOnTheCluster(t *testing.T) {
	c := newCLIEnv(t)
	c.env[cli.EnvSecretsJSON] = string(appEnvJSON("cli"))
	c.env[cli.EnvCredsJSON] = string(credsJSON)
	stageRepo := "asia-south1-docker.pkg.dev/desivocalprod01/ringg-registry-stage/dv-pipecat"

	// What the module asks before it builds: the target, with every input checked.
	r := c.run("target", "--branch", "dv-stage", "--check", "--chart", chartDir, "--namespace", c.ns)
	assert.Equal(t, r.code, 0, r.stderr)
	var info map[string]any
	assert.NilError(t, json.Unmarshal([]byte(r.stdout), &info))
	assert.DeepEqual(t, info["platforms"], []any{"linux/amd64"})
	assert.Equal(t, info["image"], stageRepo)
	assert.Equal(t, info["artifactRegistryHost"], "asia-south1-docker.pkg.dev")

	for _, d := range []string{digest("a"), digest("b")} {
		r = c.inNS("deploy", "--branch", "dv-stage", "--image", stageRepo+"@"+d, "--timeout", "60s")
		assert.Equal(t, r.code, 0, r.stderr)
		assert.Assert(t, is.Contains(r.stdout, d[:19]), r.stdout)
	}
	assert.Assert(t, is.Contains(r.stderr, "level=INFO"), "progress goes to standard error")

	r = c.inNS("status", "--target", "STAGING", "--json")
	assert.Equal(t, r.code, 0, r.stderr)
	var st struct {
		Targets []struct {
			Target   string `json:"target"`
			Revision int    `json:"revision"`
			Digest   string `json:"digest"`
		} `json:"targets"`
	}
	assert.NilError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
	assert.Equal(t, len(st.Targets), 1)
	assert.Equal(t, st.Targets[0].Revision, 2)
	assert.Equal(t, st.Targets[0].Digest, digest("b"))

	// Plan with the image it runs and the same Secrets: nothing changes.
	r = c.inNS("plan", "--branch", "dv-stage")
	assert.Equal(t, r.code, 0, r.stderr)
	assert.Assert(t, is.Contains(r.stdout, "dv-pipecat"), r.stdout)

	r = c.inNS("rollback", "--target", "staging", "--timeout", "60s")
	assert.Equal(t, r.code, 0, r.stderr)
	dep, err := cluster.Client().AppsV1().Deployments(c.ns).Get(context.Background(), "dv-pipecat", metav1.GetOptions{})
	assert.NilError(t, err)
	assert.Assert(t, is.Contains(dep.Spec.Template.Spec.Containers[0].Image, digest("a")), "rollback returned staging to the first digest")

	r = c.inNS("health", "--target", "staging", "--json")
	assert.Equal(t, r.code, 0, r.stderr+r.stdout)
	assert.Assert(t, is.Contains(r.stdout, `"status": 200`), r.stdout)

	r = c.inNS("logs", "--target", "staging")
	assert.Equal(t, r.code, 0, r.stderr)

	r = c.inNS("scale", "--target", "staging", "--replicas", "2", "--wait", "60s")
	assert.Equal(t, r.code, 0, r.stderr)
	dep, err = cluster.Client().AppsV1().Deployments(c.ns).Get(context.Background(), "dv-pipecat", metav1.GetOptions{})
	assert.NilError(t, err)
	assert.Equal(t, *dep.Spec.Replicas, int32(2))

	noLeak(t, c.all.String())
}

func TestCLIRefusesBadInputBeforeAnythingChanges(t *testing.T) {
	c := newCLIEnv(t)
	dir := t.TempDir()
	badSecrets := filepath.Join(dir, "secrets.json")
	assert.NilError(t, os.WriteFile(badSecrets, []byte(`{"OPENAI_API_KEY": {"nested": "`+secretMarker+`"}}`), 0o600))

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown verb", []string{"deploi"}, 2, `unknown command "deploi"`},
		{"bad duration names the flag", []string{"deploy", "--branch", "dv-stage", "--timeout", "soon"}, 2, "-timeout"},
		{"stray argument", []string{"status", "extra"}, 2, "unexpected arguments"},
		{"unknown branch", []string{"target", "--branch", "feature/x"}, 1, `branch "feature/x" deploys nothing`},
		{"bad secrets JSON names the key", []string{"target", "--branch", "dv-stage", "--check", "--chart", chartDir, "--secrets-json", badSecrets}, 1, "OPENAI_API_KEY"},
		{"unknown target", []string{"health", "--target", "prod"}, 1, `unknown target "prod"`},
		{"scale needs --replicas", []string{"scale", "--target", "canary", "--namespace", c.ns}, 2, "--replicas is required"},
		{"missing namespace is named", []string{"deploy", "--branch", "dv-stage", "--chart", chartDir, "--namespace", c.ns + "-missing",
			"--image", "asia-south1-docker.pkg.dev/desivocalprod01/ringg-registry-stage/dv-pipecat@" + digest("a")}, 1,
			`namespace "` + c.ns + `-missing" does not exist in this cluster; create it`},
		{"the stand-in never publishes to production", []string{"target", "--branch", "dv-main", "--check", "--stand-in", "--chart", chartDir}, 1,
			"pass --source"},
		{"the stand-in never deploys to production", []string{"deploy", "--branch", "dv-main", "--stand-in", "--chart", chartDir, "--namespace", c.ns,
			"--image", prodRepo + "@" + digest("a")}, 1, "the stand-in chatbot never goes to a real target"},
		{"registry password is never printed", []string{"registry-login", "--target", "staging"}, 2, "--password-file is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.run(tc.args...)
			assert.Equal(t, r.code, tc.code, r.stderr)
			assert.Assert(t, is.Contains(r.stderr, tc.want))
		})
	}
	list, err := cluster.Client().CoreV1().Secrets(c.ns).List(context.Background(), metav1.ListOptions{})
	assert.NilError(t, err)
	for _, s := range list.Items {
		assert.Assert(t, !strings.HasPrefix(s.Name, "dv-pipecat"), "nothing was applied: %s", s.Name)
	}
	noLeak(t, c.all.String())
}

func TestCLIAcceptsTheOldPipelinesSecretsJSONWithWarnings(t *testing.T) {
	c := newCLIEnv(t)
	c.env[cli.EnvSecretsJSON] = `{"OPENAI_API_KEY": "` + secretMarker + `-key", "PORT": 8765, "DEBUG": true, "redis-url": "redis://:` + secretMarker + `@r:6379/0"}`
	r := c.run("target", "--branch", "dv-main", "--check", "--chart", chartDir)
	assert.Equal(t, r.code, 0, r.stderr)
	assert.Assert(t, is.Contains(r.stderr, `level=WARN msg="app secrets JSON: key \"redis-url\": is not a portable`), r.stderr)
	noLeak(t, c.all.String())
}

// A secrets document given empty (a GitHub secret missing from the job's
// environment expands env://SECRETS_JSON to "") is refused, not taken as
// "not given", which would keep the release's old Secrets.
func TestCLIRefusesAnEmptyDocumentGiven(t *testing.T) {
	c := newCLIEnv(t)
	img := "--image=asia-south1-docker.pkg.dev/desivocalprod01/ringg-registry-stage/dv-pipecat@" + digest("a")
	c.env[cli.EnvSecretsJSON] = string(appEnvJSON("first"))
	r := c.inNS("deploy", "--branch", "dv-stage", img)
	assert.Equal(t, r.code, 0, r.stderr)
	e := newRelEnvIn(t, c.ns)
	before := e.snapshot()

	empty := filepath.Join(t.TempDir(), "empty.json")
	assert.NilError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	for name, setup := range map[string]func() []string{
		"from the environment": func() []string { c.env[cli.EnvSecretsJSON] = ""; return nil },
		"from a file":          func() []string { delete(c.env, cli.EnvSecretsJSON); return []string{"--secrets-json", empty} },
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"--branch", "dv-stage", img}, setup()...)
			r := c.inNS("deploy", args...)
			assert.Equal(t, r.code, 1, r.stderr)
			assert.Assert(t, is.Contains(r.stderr, "--secrets-json was given but is empty"))
			assert.DeepEqual(t, e.snapshot(), before)
		})
	}
}
