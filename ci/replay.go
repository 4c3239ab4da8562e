package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ringg/ringg-ci/ci/command"
	"github.com/ringg/ringg-ci/ci/internal/dagger"
	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
)

// Where a replay puts what it adds to the app's image.
const (
	replayDir    = "/ringg-ci"
	replayRunner = replayDir + "/ringg-ci"
	replayPod    = replayDir + "/pod.json"
)

// replay runs the app of branch's target for real, then deploys it to the
// sandbox on fake nodes, and reports both; it fails if either did.
func (m *RinggCi) replay(ctx context.Context, repo *dagger.Directory, branch, commit string, appEnv, creds *dagger.Secret, timeScale string) (string, error) {
	if _, err := targets.ForBranch(branch); err != nil {
		return "", err
	}
	if err := pipeline.ValidateCommit(commit); commit != "" && err != nil {
		return "", err
	}
	tr := m.newTour(ctx, repo, branch, appEnv, creds, commit)
	target := branchTarget(branch)
	app := sandboxStep{title: fmt.Sprintf("run the app as the kubelet runs a pod of %s (this machine's platform)", target.flag()), mayFail: true,
		run: func(ctx context.Context) (string, error) { return m.runApp(ctx, branch, appEnv, creds, timeScale) }}
	deploy := tr.deploy(branch, fmt.Sprintf("deploy %s to the sandbox on fake nodes, as the run did", branch), tr.image(ctx, branch, ""))
	deploy.mayFail = true
	status := tr.status(branch, "status", nil, target)
	status.mayFail = true
	return runSandboxSteps(ctx, []sandboxStep{app, tr.start(), deploy, status})
}

// pod is the app's image for this machine's platform, configured as the
// chart configures the pod for branch's target: its env, every key of the
// secrets document as a variable (each value a secret of its own, so the
// engine scrubs it), the credentials file at its path, its port, and the
// runner and the pod's description under /ringg-ci for run-pod.
func (m *RinggCi) pod(ctx context.Context, branch string, appEnv, creds *dagger.Secret) (*dagger.Container, pipeline.Pod, error) {
	var pod pipeline.Pod
	runner, err := m.exec(ctx, call{args: []string{command.PodSpec, command.Arg(command.Branch), branch, command.Arg(command.Out), "/tmp/pod.json"}})
	if err != nil {
		return nil, pod, err
	}
	spec := runner.File("/tmp/pod.json")
	text, err := spec.Contents(ctx)
	if err != nil {
		return nil, pod, fmt.Errorf("read the pod of %s: %w", branch, err)
	}
	if err := json.Unmarshal([]byte(text), &pod); err != nil {
		return nil, pod, fmt.Errorf("read the pod of %s: %w", branch, err)
	}
	app, err := m.container(ctx, "")
	if err != nil {
		return nil, pod, err
	}
	for _, e := range pod.Env {
		app = app.WithEnvVariable(e.Name, e.Value)
	}
	if appEnv != nil {
		if app, err = withSecretEnv(ctx, app, appEnv); err != nil {
			return nil, pod, err
		}
	}
	if creds != nil && pod.CredsPath != "" {
		user, err := app.User(ctx)
		if err != nil {
			return nil, pod, fmt.Errorf("read the image's user: %w", err)
		}
		// The kubelet mounts the Secret's file readable by the pod's user.
		app = app.WithMountedSecret(pod.CredsPath, creds, dagger.ContainerWithMountedSecretOpts{Owner: firstNonEmpty(user, "0"), Mode: 0o444})
	}
	if pod.Port > 0 {
		app = app.WithExposedPort(pod.Port)
	}
	ctr, err := m.runner(ctx)
	if err != nil {
		return nil, pod, err
	}
	app = app.
		WithFile(replayRunner, ctr.File("/usr/local/bin/ringg-ci"), dagger.ContainerWithFileOpts{Permissions: 0o755}).
		WithFile(replayPod, spec, dagger.ContainerWithFileOpts{Permissions: 0o644})
	return app, pod, nil
}

// withSecretEnv sets every key of a secrets document (a JSON object) as a
// variable, as the pod loads its Secret with envFrom: strings as they are,
// numbers and booleans as their JSON text.
func withSecretEnv(ctx context.Context, app *dagger.Container, doc *dagger.Secret) (*dagger.Container, error) {
	plain, err := doc.Plaintext(ctx)
	if err != nil {
		return nil, fmt.Errorf("read --secrets-json: %w", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(plain), &fields); err != nil {
		return nil, fmt.Errorf("read --secrets-json: not a JSON object (%v): pass the app's environment as a JSON object of names to values", syntaxOnly(err))
	}
	run := newScrubber().run
	for _, key := range slices.Sorted(mapKeys(fields)) {
		raw := strings.TrimSpace(string(fields[key]))
		value := raw
		if strings.HasPrefix(raw, `"`) {
			if err := json.Unmarshal([]byte(raw), &value); err != nil {
				return nil, fmt.Errorf("read --secrets-json: key %q: not a string", key)
			}
		} else if strings.HasPrefix(raw, "{") || strings.HasPrefix(raw, "[") || raw == "null" {
			return nil, fmt.Errorf("read --secrets-json: key %q: an object, array or null cannot be an environment variable: give it a string", key)
		}
		app = app.WithSecretVariable(key, dag.SetSecret(fmt.Sprintf("ringg-ci-replay-%s-%s", run, key), value))
	}
	return app, nil
}

// syntaxOnly says where a JSON document is broken, never what it holds.
func syntaxOnly(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	return "not an object of names to values"
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// runApp runs the image's command in the configured pod under run-pod and
// returns its verdict; a verdict other than ready fails, in the app's own
// container, so that `dagger call -i replay …` opens a shell there.
func (m *RinggCi) runApp(ctx context.Context, branch string, appEnv, creds *dagger.Secret, timeScale string) (string, error) {
	app, pod, err := m.pod(ctx, branch, appEnv, creds)
	if err != nil {
		return "", err
	}
	entrypoint, err := app.Entrypoint(ctx)
	if err != nil {
		return "", fmt.Errorf("read the image's entrypoint: %w", err)
	}
	args, err := app.DefaultArgs(ctx)
	if err != nil {
		return "", fmt.Errorf("read the image's command: %w", err)
	}
	cmd := append(slices.Clone(entrypoint), args...)
	if len(cmd) == 0 {
		return "", errors.New("the image has no entrypoint and no command: give its Dockerfile an ENTRYPOINT or CMD")
	}
	run := []string{replayRunner, command.RunPod, command.Arg(command.Spec), replayPod}
	run = appendFlag(run, command.Arg(command.TimeScale), timeScale)
	run = append(append(run, "--"), cmd...)
	var probes []string
	for _, p := range []*pipeline.Probe{pod.Readiness, pod.Liveness} {
		if p != nil {
			probes = append(probes, p.String())
		}
	}
	head := fmt.Sprintf("`%s` with the pod's env, %d secret variables, port %d, probes %s\n\n",
		strings.Join(cmd, " "), countKeys(ctx, appEnv), pod.Port, strings.Join(probes, "; "))
	out, err := app.
		// Every run is a new run: the verdict of an earlier one says nothing.
		WithEnvVariable("RINGG_CI_RUN", newScrubber().run).
		WithExec(run).
		Stdout(ctx)
	if err != nil {
		var ee *dagger.ExecError
		if errors.As(err, &ee) {
			return head + "```\n" + ee.Stdout + "```\n", fmt.Errorf("%s", strings.TrimSpace(firstLine(ee.Stdout)))
		}
		return head, fmt.Errorf("run the app: %w", err)
	}
	return head + "```\n" + out + "```\n", nil
}

func countKeys(ctx context.Context, doc *dagger.Secret) int {
	if doc == nil {
		return 0
	}
	plain, err := doc.Plaintext(ctx)
	if err != nil {
		return 0
	}
	var fields map[string]json.RawMessage
	_ = json.Unmarshal([]byte(plain), &fields)
	return len(fields)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// reproduceFlags are the runner's --reproduce flags for a run: the
// commands its record prints (pipeline.Reproduce), with the secret
// documents and credentials named by where the caller keeps them.
func (m *RinggCi) reproduceFlags(ctx context.Context, c pipeline.Call, docs documents) []string {
	c.ModuleRef, c.SourceRef = m.ModuleRef, m.SourceRef
	c.SecretsURI, c.CredsURI = uriOf(ctx, docs.secretsJSON), uriOf(ctx, docs.credsJSON)
	c.Connection = pipeline.Connection{KubeconfigURI: uriOf(ctx, m.Kubeconfig), Tunnel: m.Cluster != nil, CredentialsURI: uriOf(ctx, m.CredentialsJson)}
	for _, o := range []struct{ flag, value string }{
		{"--project", m.Project}, {"--image-repository", m.ImageRepository}, {"--cluster-name", m.ClusterName},
		{"--cluster-location", m.ClusterLocation}, {"--namespace", m.Namespace}, {"--kube-context", m.KubeContext},
	} {
		if o.value != "" {
			c.Overrides = append(c.Overrides, o.flag, o.value)
		}
	}
	var args []string
	for _, cmd := range pipeline.Reproduce(c) {
		args = append(args, command.Arg(command.Reproduce), cmd)
	}
	return args
}

// uriOf is where a secret came from (file://…, env://…), or "".
func uriOf(ctx context.Context, s *dagger.Secret) string {
	if s == nil {
		return ""
	}
	uri, err := s.URI(ctx)
	if err != nil {
		return ""
	}
	return uri
}
