package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A bench round measures one deploy of the stand-in, phase by phase, as a CI
// runner pays it: on an emptied engine (cold), once with the runner built
// from source and once with a pinned runner image, and on a warm engine.
type benchRound struct {
	name   string
	cold   bool
	pinned bool
}

var benchRounds = []benchRound{
	{name: "cold, runner built from source", cold: true},
	{name: "warm (right after)", cold: false},
	{name: "cold, pinned runner image", cold: true, pinned: true},
}

// benchPhases are the rows of the table, in order.
var benchPhases = []string{
	"engine start",
	"module load (`dagger functions`)",
	"image build, linux/amd64 (`build`)",
	"ringg-ci runner: build or pull (`lint-chart`)",
	"push to the registry (`publish`)",
	"`deploy --image`: Helm upgrade (lock → upgraded)",
	"`deploy --image`: rollout and prune (upgraded → lock released)",
	"`deploy --image`: whole call",
	"total: engine start to deployed",
	"then a whole `deploy` of a new commit (check, build, push, upgrade, rollout, summary)",
}

// bench runs the rounds and returns the markdown table.
func (e *env) bench(ctx context.Context, o options) (string, error) {
	if o.kit == "" {
		return "", errors.New("-bench empties and restarts the engine: pass -kit with the engine kit's directory (../shared/engine)")
	}
	// The pinned runner: publish it once to the loopback registry and pin it
	// in a second copy of the module.
	fmt.Fprintln(os.Stderr, "== publishing the runner image for the pinned round")
	out, err := e.dagger(ctx, e.dir, "call", "publish-runner", "--address", o.registry+"/enginetest/ringg-ci-runner:bench")
	if err != nil {
		return "", fmt.Errorf("publish the runner: %w\n%s", err, lastLines(out, 20))
	}
	pin := regexp.MustCompile(`(?s)var runnerRelease = struct\{ image, sourceDigest string \}\{.*?\n\}`).FindString(out)
	if pin == "" {
		return "", fmt.Errorf("publish-runner printed no pin:\n%s", lastLines(out, 20))
	}
	pinned := filepath.Join(e.tmp, "module-pinned")
	if err := copyRepo(e.dir, pinned); err != nil {
		return "", err
	}
	runnerGo := filepath.Join(pinned, "ci", "runner.go")
	src, err := os.ReadFile(runnerGo)
	if err != nil {
		return "", err
	}
	replaced := strings.Replace(string(src), "var runnerRelease = struct{ image, sourceDigest string }{}", pin, 1)
	if replaced == string(src) {
		return "", errors.New("ci/runner.go has no empty runnerRelease to pin")
	}
	if err := os.WriteFile(runnerGo, []byte(replaced), 0o644); err != nil {
		return "", err
	}

	results := make([]map[string]time.Duration, len(benchRounds))
	for i, r := range benchRounds {
		fmt.Fprintf(os.Stderr, "== bench round: %s\n", r.name)
		dir := e.dir
		if r.pinned {
			dir = pinned
		}
		if results[i], err = e.benchRound(ctx, o, r, dir, i); err != nil {
			return "", fmt.Errorf("bench round %q: %w", r.name, err)
		}
	}
	var b strings.Builder
	b.WriteString("| phase |")
	for _, r := range benchRounds {
		b.WriteString(" " + r.name + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(benchRounds)) + "\n")
	for _, p := range benchPhases {
		b.WriteString("| " + p + " |")
		for _, res := range results {
			if d, ok := res[p]; ok {
				fmt.Fprintf(&b, " %.1f s |", d.Seconds())
			} else {
				b.WriteString(" - |")
			}
		}
		b.WriteString("\n")
	}
	return b.String(), nil
}

// emptyEngine stops the engine kit's engine, deletes its cache and starts
// it again (tools/enginekit/start.sh); it returns how long the start took.
func (e *env) emptyEngine(ctx context.Context, o options) (time.Duration, error) {
	if err := shell(ctx, fmt.Sprintf("TOP=%s %s/stop.sh >/dev/null && rm -rf /var/lib/dagger/*", o.top, o.kit)); err != nil {
		return 0, fmt.Errorf("empty the engine: %w", err)
	}
	t := time.Now()
	start := filepath.Join(e.repo, "tools", "enginekit", "start.sh")
	if err := shell(ctx, fmt.Sprintf("KIT=%s TOP=%s %s >/dev/null", o.kit, o.top, start)); err != nil {
		return 0, fmt.Errorf("start the engine: %w", err)
	}
	return time.Since(t), nil
}

func (e *env) benchRound(ctx context.Context, o options, r benchRound, dir string, n int) (map[string]time.Duration, error) {
	res := map[string]time.Duration{}
	if r.cold {
		took, err := e.emptyEngine(ctx, o)
		if err != nil {
			return nil, err
		}
		res["engine start"] = took
	}

	ns := fmt.Sprintf("bench-%d-%d", n, time.Now().Unix())
	if _, err := e.cluster.Client().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	image := o.registry + "/enginetest/bench-dv-pipecat"
	conn := []string{"--kubeconfig", "file://" + e.kubeconfig, "--cluster", "tcp://localhost:" + e.port, "--image-repository", image, "--namespace", ns}
	secrets := []string{"--secrets-json", "file://" + e.secrets, "--creds-json", "file://" + e.creds}
	tag := fmt.Sprintf("bench-%d", time.Now().UnixNano())

	timed := func(phase string, args ...string) (string, error) {
		t := time.Now()
		out, err := e.dagger(ctx, dir, args...)
		res[phase] = time.Since(t)
		log := filepath.Join(o.logs, fmt.Sprintf("bench-%d-%s.log", n, strings.Trim(strings.Fields(phase)[0], "`")))
		if werr := os.WriteFile(log, []byte(out), 0o644); werr != nil {
			fmt.Fprintf(os.Stderr, "keep the log of %s: %v\n", phase, werr)
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w\n%s", phase, err, lastLines(out, 20))
		}
		return out, nil
	}
	if _, err := timed("module load (`dagger functions`)", "functions"); err != nil {
		return nil, err
	}
	if _, err := timed("image build, linux/amd64 (`build`)", "call", "build", "--platform", "linux/amd64", "sync"); err != nil {
		return nil, err
	}
	if _, err := timed("ringg-ci runner: build or pull (`lint-chart`)", "call", "lint-chart"); err != nil {
		return nil, err
	}
	out, err := timed("push to the registry (`publish`)", append(append([]string{"call"}, conn...), "publish", "--target", "STAGING", "--commit", tag)...)
	if err != nil {
		return nil, err
	}
	ref := digestRE.FindString(out)
	if ref == "" {
		return nil, errors.New("publish printed no digest")
	}
	out, err = timed("`deploy --image`: whole call", append(append([]string{"call"}, conn...), append([]string{"deploy", "--branch", "dv-stage", "--image", image + "@" + ref}, secrets...)...)...)
	if err != nil {
		return nil, err
	}
	marks := runnerMarks(out)
	if l, u, r := marks["acquired release lock"], marks["upgraded, watching rollout"], marks["released release lock"]; !l.IsZero() && !u.IsZero() && !r.IsZero() {
		res["`deploy --image`: Helm upgrade (lock → upgraded)"] = u.Sub(l)
		res["`deploy --image`: rollout and prune (upgraded → lock released)"] = r.Sub(u)
	}
	var total time.Duration
	for _, p := range benchPhases[:5] {
		total += res[p]
	}
	res["total: engine start to deployed"] = total + res["`deploy --image`: whole call"]
	// A commit no round has built: the stand-in with a code change, so the
	// binary, the image and its digest are new.
	src := filepath.Join(e.tmp, "bench-source-"+tag)
	if err := os.CopyFS(src, os.DirFS(e.sourceV2)); err != nil {
		return nil, err
	}
	change := fmt.Sprintf("package main\n\nimport \"os\"\n\nfunc init() { os.Setenv(\"BENCH_COMMIT\", %q) }\n", tag)
	if err := os.WriteFile(filepath.Join(src, "bench_commit.go"), []byte(change), 0o644); err != nil {
		return nil, err
	}
	_, err = timed("then a whole `deploy` of a new commit (check, build, push, upgrade, rollout, summary)",
		append(append([]string{"call", "--source", src}, conn...), append([]string{"deploy", "--branch", "dv-stage", "--commit", tag + "-2"}, secrets...)...)...)
	return res, err
}

// runnerMarks are the times of the runner's log lines, by message.
func runnerMarks(log string) map[string]time.Time {
	marks := map[string]time.Time{}
	re := regexp.MustCompile(`time=(\S+) level=\w+ msg="([^"]*)"`)
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			if t, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
				if _, seen := marks[m[2]]; !seen {
					marks[m[2]] = t
				}
			}
		}
	}
	return marks
}

// dagger runs one dagger command in dir with --progress plain and returns
// its output.
func (e *env) dagger(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "dagger", append([]string{"--progress", "plain"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DAGGER_NO_NAG=1", "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func shell(ctx context.Context, script string) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
