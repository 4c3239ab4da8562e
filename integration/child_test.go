package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/internal/lockedbuffer"
	"github.com/ringg/ringg-ci/runner/ops"
	"github.com/ringg/ringg-ci/runner/release"
)

// A child is one verb of the runner run in a process of its own (this
// test binary again, as TestReleaseChild), so that a test can stop it at any
// step of its run and kill it with SIGKILL, as a cancelled GitHub job or the
// job's time limit does to the runner, or take the API server away while it
// waits there. It prints every step it passes ("STEP <n> <name>") and, at the
// step it was told to stop at, "STOPPED <n> <name>", then waits for a line
// on its standard input before it goes on.

// childEnv carries a child's childSpec, as JSON.
const childEnv = "RINGG_RELEASE_CHILD"

// childSpec is what a child runs.
type childSpec struct {
	Kubeconfig string `json:"kubeconfig"`
	Namespace  string `json:"namespace"`
	Chart      string `json:"chart"`
	// Verb is deploy-canary, deploy-stable, promote, rollback-stable,
	// rollback-canary, scale-stable or takeover-stable.
	Verb string `json:"verb"`
	// Repository replaces the target's image repository (e.g. with a
	// fake-node failure tag); Digest is the image deployed.
	Repository string        `json:"repository,omitempty"`
	Digest     string        `json:"digest,omitempty"`
	Replicas   int           `json:"replicas,omitempty"`
	Timeout    time.Duration `json:"timeout,omitempty"`
	LockTTL    time.Duration `json:"lockTTL"`
	// StopAt is the step (1-based) to stop at; zero runs through.
	StopAt int `json:"stopAt,omitempty"`
	// StopAtStep stops at the first step of that name instead.
	StopAtStep string `json:"stopAtStep,omitempty"`
	Holder     string `json:"holder"`
}

// TestReleaseChild is the process a child test stops and kills.
func TestReleaseChild(t *testing.T) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		t.Skip("run by the tests that stop a verb half-way")
	}
	var s childSpec
	assert.NilError(t, json.Unmarshal([]byte(raw), &s))
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	assert.NilError(t, err)
	k, err := kubernetes.NewForConfig(cfg)
	assert.NilError(t, err)
	in := bufio.NewReader(os.Stdin)
	n, stopped := 0, false
	var mu sync.Mutex
	step := func(name string) {
		mu.Lock()
		defer mu.Unlock()
		n++
		fmt.Printf("STEP %d %s\n", n, name)
		if !stopped && (n == s.StopAt || (s.StopAtStep != "" && name == s.StopAtStep)) {
			stopped = true
			fmt.Printf("STOPPED %d %s\n", n, name)
			_, _ = in.ReadString('\n')
		}
	}
	err = runChildVerb(context.Background(), release.Clients{Config: cfg, Kube: k}, s, release.Options{
		LockTTL: s.LockTTL, Step: step, PullErrorGrace: 300 * time.Millisecond,
	})
	fmt.Printf("DONE %v\n", strings.ReplaceAll(fmt.Sprint(err), "\n", " "))
}

// runChildVerb runs s's verb with the given clients and options.
func runChildVerb(ctx context.Context, c release.Clients, s childSpec, o release.Options) error {
	ov := targets.Overrides{Namespace: s.Namespace, Image: s.Repository}
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	switch s.Verb {
	case "deploy-canary", "deploy-stable":
		t := targets.Canary
		if s.Verb == "deploy-stable" {
			t = targets.Stable
		}
		tg, err := targets.Get(t)
		if err != nil {
			return err
		}
		tg = tg.With(ov)
		p := pipeline.DeployPlan{Target: tg, ChartDir: s.Chart, ValuesFiles: tg.ValuesFiles, Image: pipeline.Image{Repository: tg.Image, Digest: s.Digest},
			Secrets: pipeline.SecretsCurrent, Timeout: timeout, Holder: s.Holder, MaxHistory: pipeline.MaxHistory}
		_, err = (&release.Deploy{Clients: c, Plan: p, Options: o}).Run(ctx)
		return err
	case "promote":
		p, err := pipeline.NewPromote(pipeline.PromoteInput{Overrides: ov, ChartDir: s.Chart, Soak: 100 * time.Millisecond, Timeout: timeout, Holder: s.Holder})
		if err != nil {
			return err
		}
		_, err = (&release.Promote{Clients: c, Plan: p, Options: o, SoakInterval: 50 * time.Millisecond}).Run(ctx)
		return err
	case "rollback-stable", "rollback-canary":
		t := targets.Stable
		if s.Verb == "rollback-canary" {
			t = targets.Canary
		}
		p, err := pipeline.NewRollback(pipeline.RollbackInput{Target: t, Overrides: ov, ChartDir: s.Chart, Timeout: timeout, Holder: s.Holder})
		if err != nil {
			return err
		}
		_, err = (&release.Rollback{Clients: c, Plan: p, Options: o}).Run(ctx)
		return err
	case "scale-stable":
		tg, err := targets.Get(targets.Stable)
		if err != nil {
			return err
		}
		_, err = (&release.Scale{Clients: c, Target: tg.With(ov), Replicas: s.Replicas, Holder: s.Holder, Options: o, Scale: ops.ScaleOptions{Wait: timeout}}).Run(ctx)
		return err
	case "takeover-stable":
		p, err := pipeline.NewTakeover(pipeline.TakeoverInput{Target: targets.Stable, Overrides: ov, ChartDir: s.Chart, DeleteOldRecords: true, Holder: s.Holder})
		if err != nil {
			return err
		}
		_, err = (&release.Takeover{Clients: c, Plan: p, Options: o}).Run(ctx)
		return err
	}
	return fmt.Errorf("unknown child verb %q", s.Verb)
}

// child is a running TestReleaseChild.
type child struct {
	t       *testing.T
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	out     *lockedbuffer.Buffer
	stopped chan string
	done    chan string
}

// startChild starts a child running s.
func startChild(t *testing.T, s childSpec) *child {
	t.Helper()
	s.Kubeconfig = cluster.KubeconfigPath()
	raw, err := json.Marshal(s)
	assert.NilError(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^TestReleaseChild$", "-test.short", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	stdin, err := cmd.StdinPipe()
	assert.NilError(t, err)
	stdout, err := cmd.StdoutPipe()
	assert.NilError(t, err)
	c := &child{t: t, cmd: cmd, stdin: stdin, out: &lockedbuffer.Buffer{}, stopped: make(chan string, 1), done: make(chan string, 1)}
	cmd.Stderr = c.out
	assert.NilError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(c.out, line)
			switch {
			case strings.HasPrefix(line, "STOPPED "):
				c.stopped <- strings.TrimPrefix(line, "STOPPED ")
			case strings.HasPrefix(line, "DONE "):
				c.done <- strings.TrimPrefix(line, "DONE ")
			}
		}
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("child %s:\n%s", s.Verb, c.out.String())
		}
	})
	return c
}

// waitStopped waits for the child to stop at its step and returns "n name".
func (c *child) waitStopped(d time.Duration) string {
	c.t.Helper()
	select {
	case s := <-c.stopped:
		return s
	case r, ok := <-c.done:
		c.t.Fatalf("the child ended (%v, %q) before its stop:\n%s", ok, r, c.out.String())
	case <-time.After(d):
		c.t.Fatalf("the child did not reach its stop within %s:\n%s", d, c.out.String())
	}
	return ""
}

// kill kills the child with SIGKILL and waits for it to go.
func (c *child) kill() {
	c.t.Helper()
	assert.NilError(c.t, c.cmd.Process.Kill())
	_ = c.cmd.Wait()
}

// resume lets a stopped child go on and returns what it ended with ("<nil>"
// or its error).
func (c *child) resume(d time.Duration) string {
	c.t.Helper()
	_, err := io.WriteString(c.stdin, "go\n")
	assert.NilError(c.t, err)
	select {
	case r := <-c.done:
		return r
	case <-time.After(d):
		c.t.Fatalf("the child did not end within %s after resuming:\n%s", d, c.out.String())
	}
	return ""
}

// steps runs s to the end in a child and returns the steps it passed, in
// order, and how it ended.
func childSteps(t *testing.T, s childSpec) ([]string, string) {
	t.Helper()
	s.StopAt, s.StopAtStep = 0, ""
	c := startChild(t, s)
	var result string
	select {
	case result = <-c.done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("the child did not end:\n%s", c.out.String())
	}
	_ = c.cmd.Wait()
	var steps []string
	for line := range strings.SplitSeq(c.out.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "STEP "); ok {
			n, name, _ := strings.Cut(rest, " ")
			i, err := strconv.Atoi(n)
			assert.NilError(t, err)
			assert.Equal(t, i, len(steps)+1, "steps are numbered in order")
			steps = append(steps, name)
		}
	}
	return steps, result
}
