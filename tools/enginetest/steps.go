package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ringg/ringg-ci/testcluster"
)

// env is what every pass shares: a copy of the module, the host test
// cluster, planted secret documents and a second version of the app source.
type env struct {
	repo       string // the repository the copy was made from
	dir        string // the module copy
	cluster    *testcluster.Cluster
	kubeconfig string
	port       string
	planted    []string // values no output may contain
	secrets    string   // planted app secrets JSON file
	creds      string   // planted GCP credentials JSON file
	echo       string   // secrets JSON whose planted value is also a key the runner names
	echoValue  string
	sourceV2   string // the stand-in app with one more file: another digest
	// requiresRedis is the stand-in built to require REDIS_URL (ENV
	// REQUIRED_ENV in its image, as the real app's code requires it), and
	// missingKey a secrets JSON without it.
	requiresRedis string
	missingKey    string
	tmp           string
	// replay is the replay command a failed deploy's record printed.
	replay []string
	gate   *gateEnv // the canary gate's documents and Prometheus
}

func setup(ctx context.Context, o options) (*env, error) {
	tmp, err := os.MkdirTemp("", "enginetest-")
	if err != nil {
		return nil, fmt.Errorf("make a work directory: %w", err)
	}
	repo, err := filepath.Abs(o.repo)
	if err != nil {
		return nil, err
	}
	e := &env{tmp: tmp, repo: repo, dir: filepath.Join(tmp, "module")}
	if err := copyRepo(o.repo, e.dir); err != nil {
		return nil, err
	}
	e.sourceV2 = filepath.Join(tmp, "chatbot-v2")
	if err := os.CopyFS(e.sourceV2, os.DirFS(filepath.Join(e.dir, "examples", "chatbot"))); err != nil {
		return nil, fmt.Errorf("copy the stand-in app: %w", err)
	}
	// A label changes the image config, so v2 has its own digest.
	dockerfile := filepath.Join(e.sourceV2, "Dockerfile")
	df, err := os.ReadFile(dockerfile)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(dockerfile, append(df, []byte("LABEL ai.ringg.enginetest=\"v2\"\n")...), 0o644); err != nil {
		return nil, err
	}
	e.requiresRedis = filepath.Join(tmp, "chatbot-requires-redis")
	if err := os.CopyFS(e.requiresRedis, os.DirFS(filepath.Join(e.dir, "examples", "chatbot"))); err != nil {
		return nil, fmt.Errorf("copy the stand-in app: %w", err)
	}
	if err := os.WriteFile(filepath.Join(e.requiresRedis, "Dockerfile"), append(df, []byte("ENV REQUIRED_ENV=REDIS_URL\n")...), 0o644); err != nil {
		return nil, err
	}
	fmt.Fprintln(os.Stderr, "== starting the test cluster (builds it once, cached)")
	e.cluster, err = testcluster.Start(ctx, testcluster.Options{ReadyTimeout: 5 * time.Minute})
	if err != nil {
		return nil, fmt.Errorf("start the test cluster: %w", err)
	}
	e.kubeconfig = e.cluster.KubeconfigPath()
	u := e.cluster.RESTConfig().Host
	e.port = u[strings.LastIndex(u, ":")+1:]

	r := strings.ToLower(rand.Text()[:10])
	// Secret values hold a digit, as random ones do: a plain word is no
	// secret (ci/scrub).
	e.planted = []string{"sk-planted-1" + r, "planted-redis-1" + r, "planted-admin-1" + r, "planted-key-1" + r}
	e.secrets = filepath.Join(tmp, "secrets.json")
	e.creds = filepath.Join(tmp, "creds.json")
	e.echo = filepath.Join(tmp, "echo.json")
	e.missingKey = filepath.Join(tmp, "missing-key.json")
	e.echoValue = "planted-echo-1" + r
	e.planted = append(e.planted, e.echoValue)
	files := map[string]string{
		// What is no secret must survive in what is printed: ENVIRONMENT and
		// the credentials' project_id are words of the image repository
		// (…/enginetest/dv-pipecat), which the deploy's result names.
		e.secrets: fmt.Sprintf(`{"OPENAI_API_KEY":"%s","REDIS_URL":"redis://:%s@10.0.0.3:6379/0","ADMIN_API_KEY":"%s","ENVIRONMENT":"enginetest","PORT":"8765"}`,
			e.planted[0], e.planted[1], e.planted[2]),
		e.creds: fmt.Sprintf(`{"type":"service_account","project_id":"enginetest","client_email":"app@enginetest.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n"}`,
			e.planted[3]),
		// The key is the planted value: the runner names the key in its warning
		// (not a portable variable name), so the engine must scrub it from what
		// the runner prints.
		e.echo: fmt.Sprintf(`{"%s":"x","ALIAS":"%s"}`, e.echoValue, e.echoValue),
		// The app's secrets without REDIS_URL, which requiresRedis needs.
		e.missingKey: fmt.Sprintf(`{"OPENAI_API_KEY":"%s","ADMIN_API_KEY":"%s","ENVIRONMENT":"et"}`, e.planted[0], e.planted[2]),
	}
	for path, doc := range files {
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			return nil, err
		}
	}
	if err := e.gateSetup(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *env) close() {
	if e.cluster != nil {
		_ = e.cluster.Stop()
	}
	if e.gate != nil && e.gate.prom != nil {
		e.gate.prom.Stop()
	}
	_ = os.RemoveAll(e.tmp)
}

// copyRepo copies the files git knows (tracked and untracked, not ignored).
func copyRepo(repo, dst string) error {
	var files []string
	out, err := exec.Command("git", "-C", repo, "ls-files", "-co", "--exclude-standard", "-z").Output()
	if err == nil {
		files = strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	} else if files, err = walk(repo); err != nil { // not a git checkout: every file but caches
		return fmt.Errorf("list the repository's files: %w", err)
	}
	for _, f := range files {
		src := filepath.Join(repo, f)
		info, err := os.Lstat(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted, not yet committed
		}
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(f)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, info.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

// walk lists the files under dir, leaving out .git and .cache.
func walk(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".cache") {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, err := filepath.Rel(dir, path)
			if err != nil {
				return err
			}
			files = append(files, rel)
		}
		return nil
	})
	return files, err
}

// step is one dagger command and what its output must show.
type step struct {
	name string
	args []string
	// argsFrom, when set, gives the arguments when the step runs: a
	// command an earlier step printed.
	argsFrom func() ([]string, error)
	// fail: the command must fail (a refusal being tested).
	fail  bool
	check func(out string) error
}

// result is a step's outcome.
type result struct {
	step
	pass int
	wall time.Duration
	rc   int
	err  error
}

func contains(subs ...string) func(string) error {
	return func(out string) error {
		for _, s := range subs {
			if !strings.Contains(out, s) {
				return fmt.Errorf("output lacks %q", s)
			}
		}
		return nil
	}
}

func lacks(subs ...string) func(string) error {
	return func(out string) error {
		for _, s := range subs {
			if strings.Contains(out, s) {
				return fmt.Errorf("output has %q", s)
			}
		}
		return nil
	}
}

func all(checks ...func(string) error) func(string) error {
	return func(out string) error {
		for _, c := range checks {
			if err := c(out); err != nil {
				return err
			}
		}
		return nil
	}
}

var digestRE = regexp.MustCompile(`sha256:[0-9a-f]{64}`)

// functions are the module's functions as the CLI names them.
var functions = []string{"build", "deploy", "health", "history", "lint-chart", "logs", "plan", "promote", "publish", "publish-runner", "rollback", "sandbox", "scale", "smoke-test", "status", "takeover", "verify"}

// steps lists one pass. Staging runs in ns+"-stage" and production in
// ns+"-prod": both have a release named dv-pipecat, in different clusters in
// real life.
func (e *env) steps(o options, ns string) []step {
	image := o.registry + "/enginetest/dv-pipecat"
	tunnel := []string{"--kubeconfig", "file://" + e.kubeconfig, "--cluster", "tcp://localhost:" + e.port, "--image-repository", image}
	call := func(source, namespace string, args ...string) []string {
		c := []string{"call"}
		if source != "" {
			c = append(c, "--source", source)
		}
		c = append(append(c, tunnel...), "--namespace", namespace)
		return append(c, args...)
	}
	stage, prod := ns+"-stage", ns+"-prod"
	secrets := []string{"--secrets-json", "file://" + e.secrets, "--creds-json", "file://" + e.creds}
	seen := map[string]string{}

	s := []step{
		{name: "functions", args: []string{"functions"}, check: all(contains(functions...),
			lacks("service-account", "workload-identity-provider", "oidc-request-url", "kubeconfig  "))},
		{name: "call --help", args: []string{"call", "--help"}, check: contains("--oidc-request-url", "--kubeconfig", "deploy")},
	}
	for _, f := range functions {
		s = append(s, step{name: "call " + f + " --help", args: []string{"call", f, "--help"}, check: contains("USAGE", f)})
	}
	s = append(s,
		step{name: "build amd64", args: []string{"call", "build", "--platform", "linux/amd64", "with-exec", "--args", "ls,/usr/local/bin/chatbot", "stdout"}, check: contains("/usr/local/bin/chatbot")},
		step{name: "build arm64", args: []string{"call", "build", "--platform", "linux/arm64", "platform"}, check: contains("linux/arm64")},
		step{name: "smoke-test", args: []string{"call", "smoke-test"}},
		step{name: "lint-chart", args: []string{"call", "lint-chart"}},
		step{name: "sandbox", args: []string{"call", "sandbox"}, check: contains("promote", "roll", "healthy")},
		step{name: "the stand-in never deploys to production", args: []string{"call", "deploy", "--branch", "dv-main"}, fail: true,
			check: contains("the stand-in chatbot never goes to a real target", "pass --source")},
		step{name: "the stand-in never publishes to production", args: []string{"call", "publish", "--target", "STABLE"}, fail: true,
			check: contains("pass --source")},
		step{name: "publish-runner: a registry password needs its user", args: []string{"call", "--registry-password", "file://" + e.creds, "publish-runner", "--address", o.registry + "/enginetest/ringg-ci-runner:nouser"},
			fail: true, check: contains("--registry-password needs --registry-username")},
		step{name: "deploy: a registry password needs its user", args: call("", stage, "--registry-password", "file://"+e.creds, "deploy", "--branch", "dv-stage", "--commit", "nouser"),
			fail: true, check: contains("--registry-password needs --registry-username")},
		step{name: "deploy into a missing namespace", args: call("", ns+"-missing", "deploy", "--branch", "dv-stage", "--image", image+"@sha256:"+strings.Repeat("0", 64)),
			fail: true, check: contains(`namespace "` + ns + `-missing" does not exist`)},
		step{name: "deploy dv-stage", args: call("", stage, append([]string{"deploy", "--branch", "dv-stage", "--commit", "c1"}, secrets...)...),
			// The image repository holds the words of a setting and of the
			// credentials' project_id: no secrets, so printed as they are.
			check: all(contains("staging", "dv-pipecat", image+"@sha256:"), remember(seen, "stage v1"))},
		step{name: "status staging", args: call("", stage, "status", "--target", "STAGING"), check: contains("deployed")},
		step{name: "plan dv-stage", args: call("", stage, append([]string{"plan", "--branch", "dv-stage"}, secrets...)...)},
		step{name: "deploy dv-stage v2", args: call(e.sourceV2, stage, append([]string{"deploy", "--branch", "dv-stage", "--commit", "c2"}, secrets...)...),
			check: all(remember(seen, "stage v2"), differs(seen, "stage v1", "stage v2"))},
		step{name: "rollback staging", args: call("", stage, "rollback", "--target", "STAGING"), check: runs(seen, "stage v1")},
		step{name: "deploy dv-main", args: call("", prod, append([]string{"deploy", "--branch", "dv-main", "--commit", "c1"}, secrets...)...),
			check: all(contains("canary"), remember(seen, "canary v1"))},
		step{name: "promote", args: call("", prod, "promote", "--soak", "5s"), check: all(contains("stable"), runs(seen, "canary v1"))},
		step{name: "status production", args: call("", prod, "status"), check: contains("canary", "stable", "same digest")},
		step{name: "deploy dv-main v2", args: call(e.sourceV2, prod, "deploy", "--branch", "dv-main", "--commit", "c2"),
			check: all(remember(seen, "canary v2"), differs(seen, "canary v1", "canary v2"))},
		step{name: "rollback canary", args: call("", prod, "rollback", "--target", "CANARY"), check: runs(seen, "canary v1")},
		step{name: "health canary", args: call("", prod, "health", "--target", "CANARY"), check: contains("healthy")},
		step{name: "logs stable", args: call("", prod, "logs", "--target", "STABLE", "--since", "10m")},
		step{name: "takeover report", args: call("", prod, "takeover", "--target", "STABLE"), check: contains("stable")},
		step{name: "scale canary", args: call("", prod, "scale", "--target", "CANARY", "--replicas", "3", "--wait", "2m"), check: contains("3")},
		step{name: "scrub: a planted value the runner prints", args: call("", stage, "deploy", "--branch", "dv-stage", "--dry-run", "--secrets-json", "file://"+e.echo),
			check: all(contains(`key \"***\"`), lacks(e.echoValue))},
		// An app whose image requires REDIS_URL, deployed with secrets that
		// lack it: the deploy fails in the app's own words, and its record
		// prints the replay command, which reproduces it with the app
		// really running.
		step{name: "deploy of an app missing a required key explains itself",
			args: append(call(e.requiresRedis, stage, "--source-ref", e.requiresRedis), "deploy", "--branch", "dv-stage", "--commit", "c3", "--secrets-json", "file://"+e.missingKey),
			fail: true, check: all(contains(appMissingKey, "CrashLoopBackOff", "<!-- ringg-ci:record -->", "#### Why the rollout of deployment dv-pipecat failed",
				"Last lines of container dv-pipecat", "#### Reproduce"), e.rememberReplay)},
		step{name: "the printed replay reproduces it with the app running", argsFrom: e.replayArgs, fail: true,
			check: contains("run the app as the kubelet runs a pod of staging", "staging: crashed: exit code 1", appMissingKey,
				"deploy dv-stage to the sandbox on fake nodes, as the run did", "CrashLoopBackOff")},
	)
	s = append(s, e.gateSteps(o, prod)...)
	var out []step
	for _, st := range s {
		if (o.only == "" || slices.ContainsFunc(strings.Split(o.only, ","), func(part string) bool { return strings.Contains(st.name, part) })) &&
			(o.skip == "" || !strings.Contains(st.name, o.skip)) {
			out = append(out, st)
		}
	}
	return out
}

// appMissingKey is the stand-in's own last line when REDIS_URL is missing.
const appMissingKey = `"error":"read chatbot configuration: required setting REDIS_URL is not set (REQUIRED_ENV); add it to the app's secrets"`

// rememberReplay keeps the replay command a failed deploy's record printed.
func (e *env) rememberReplay(out string) error {
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "dagger ") && strings.Contains(line, " replay ") {
			e.replay = strings.Fields(line)
			return nil
		}
	}
	return errors.New("the record prints no replay command")
}

// replayArgs are the printed replay command's arguments, run as printed.
func (e *env) replayArgs() ([]string, error) {
	if len(e.replay) < 2 {
		return nil, errors.New("no replay command was printed by the deploy before")
	}
	return e.replay[1:], nil
}

// remember keeps the digest a deploy printed under key.
func remember(seen map[string]string, key string) func(string) error {
	return func(out string) error {
		d := digestRE.FindAllString(out, -1)
		if len(d) == 0 {
			return errors.New("output names no sha256 digest")
		}
		seen[key] = d[len(d)-1]
		return nil
	}
}

// differs checks that two remembered digests differ: the step changed
// what runs.
func differs(seen map[string]string, a, b string) func(string) error {
	return func(string) error {
		if seen[a] == "" || seen[a] == seen[b] {
			return fmt.Errorf("%s and %s run the same digest %q: nothing visibly changed", a, b, seen[b])
		}
		return nil
	}
}

// runs checks that the output names the digest remembered under key.
func runs(seen map[string]string, key string) func(string) error {
	return func(out string) error {
		if seen[key] == "" || !strings.Contains(out, seen[key]) {
			return fmt.Errorf("output does not show %s's digest %q", key, seen[key])
		}
		return nil
	}
}

// pass runs every step once, in a fresh namespace.
func (e *env) pass(ctx context.Context, n int, o options) []result {
	ns := fmt.Sprintf("enginetest-p%d-%s", n, strings.ToLower(rand.Text()[:6]))
	for _, name := range []string{ns + "-stage", ns + "-prod"} {
		if _, err := e.cluster.Client().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			return []result{{step: step{name: "create namespace " + name}, pass: n, err: err}}
		}
	}
	var rs []result
	for _, st := range e.steps(o, ns) {
		r := e.runStep(ctx, n, st, o)
		status := "ok"
		if r.err != nil {
			status = "FAIL: " + r.err.Error()
		}
		fmt.Fprintf(os.Stderr, "%-45s rc=%-3d %7.1fs  %s\n", st.name, r.rc, r.wall.Seconds(), status)
		rs = append(rs, r)
	}
	return rs
}

func (e *env) runStep(ctx context.Context, n int, st step, o options) result {
	r := result{step: st, pass: n}
	if st.argsFrom != nil {
		args, err := st.argsFrom()
		if err != nil {
			r.rc, r.err = -1, err
			return r
		}
		st.args, r.step.args = args, args
	}
	start := time.Now()
	text, err := e.dagger(ctx, e.dir, st.args...)
	r.wall = time.Since(start)
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.rc = ee.ExitCode()
	case err != nil:
		r.rc, r.err = -1, err
		return r
	}
	logName := fmt.Sprintf("p%d-%s.log", n, strings.NewReplacer(" ", "-", "/", "-", ":", "").Replace(st.name))
	_ = os.WriteFile(filepath.Join(o.logs, logName), []byte(text), 0o644)
	switch {
	case st.fail && r.rc == 0:
		r.err = errors.New("succeeded but must fail")
	case !st.fail && r.rc != 0:
		r.err = fmt.Errorf("exit %d: %s", r.rc, lastLine(text))
	}
	if r.err == nil && st.check != nil {
		r.err = st.check(text)
	}
	for _, v := range e.planted {
		if strings.Contains(text, v) {
			r.err = errors.Join(r.err, fmt.Errorf("output holds a planted secret value (%d bytes logged in %s)", len(text), logName))
		}
	}
	return r
}

// markdown renders the passes as the table of docs/engine-run.md.
func markdown(engineVersion string, o options, passes [][]result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| step | command | %s |\n|---|---|%s\n", passHeaders(len(passes), o.reset != ""), strings.Repeat("---|", len(passes)))
	for i := range passes[0] {
		st := passes[0][i]
		fmt.Fprintf(&b, "| %s | `dagger %s` |", st.name, strings.Join(st.args, " "))
		for _, rs := range passes {
			if i >= len(rs) {
				b.WriteString(" - |")
				continue
			}
			mark := "ok"
			if rs[i].err != nil {
				mark = "FAIL: " + strings.ReplaceAll(rs[i].err.Error(), "|", "/")
			}
			fmt.Fprintf(&b, " %.1f s, %s |", rs[i].wall.Seconds(), mark)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nEngine: %s; registry %s; %s.\n", engineVersion, o.registry, time.Now().UTC().Format("2006-01-02 15:04 MST"))
	return b.String()
}

// passHeaders names the passes' columns. Pass 1 is cold only when -reset
// emptied the engine first; otherwise it ran on whatever the engine held.
func passHeaders(n int, emptied bool) string {
	hs := make([]string, n)
	for i := range hs {
		hs[i] = fmt.Sprintf("pass %d", i+1)
	}
	if n >= 1 {
		hs[0] = "pass 1 (engine as it was)"
		if emptied {
			hs[0] = "pass 1 (cold: emptied engine)"
		}
	}
	if n == 2 {
		hs[1] = "pass 2 (warm)"
	}
	return strings.Join(hs, " | ")
}
