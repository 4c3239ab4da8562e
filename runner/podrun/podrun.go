// Package podrun runs an app's process as the kubelet runs a pod's
// container and says what the kubelet would see: it starts the command,
// probes it over HTTP on the chart's readiness and liveness probes (their
// paths, ports, delays, periods and thresholds, scaled in time when asked)
// and decides, from what it observes, whether the app became ready, never
// did (and what its probe answered), crashed (its exit code and last
// lines) or would be killed by its liveness probe. The module's replay runs
// it inside the app's own image, configured as the pod is.
package podrun

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ringg/ringg-ci/ci/pipeline"
)

// The states a run ends in.
const (
	Ready    = "ready"
	NotReady = "not ready"
	Crashed  = "crashed"
	Killed   = "killed by its liveness probe"
)

// Verdict is what the kubelet would have seen of the app.
type Verdict struct {
	State string `json:"state"`
	// After is how long after the start it was decided.
	After time.Duration `json:"-"`
	// ExitCode is a crashed process's.
	ExitCode int `json:"exitCode,omitempty"`
	// Probe is the deciding probe's answer, as the kubelet words it, e.g.
	// "HTTP probe failed with statuscode: 503", with the start of the body.
	Probe string `json:"probe,omitempty"`
	// Logs are the last lines the app printed.
	Logs []string `json:"logs,omitempty"`
}

// String reads "crashed: exit code 1 after 0.1s" or "not ready: readiness
// probe GET :8765/pc/v1/healthcheck failed 3 times: HTTP probe failed with
// statuscode: 503 …".
func (v Verdict) String() string {
	s := v.State
	switch v.State {
	case Crashed:
		s += fmt.Sprintf(": exit code %d", v.ExitCode)
	case NotReady, Killed, Ready:
		if v.Probe != "" {
			s += ": " + v.Probe
		}
	}
	return s + fmt.Sprintf(" (after %s)", v.After.Round(10*time.Millisecond))
}

// event is one thing the run observed.
type event struct {
	at time.Duration
	// probe is "readiness" or "liveness"; "" for the process's exit.
	probe  string
	ok     bool
	answer string
	// exit is the process's exit code, for an exit.
	exit int
}

// state is what the decision remembers.
type state struct {
	readyFails, liveFails int
}

// decide is the kubelet's reading of one event: a process that exits
// before it is ready crashed; a readiness probe that passes makes it ready;
// failureThreshold failed probes in a row make it not ready (readiness) or
// killed (liveness). It returns the verdict once there is one.
func decide(st state, e event, readiness, liveness *pipeline.Probe) (state, *Verdict) {
	switch {
	case e.probe == "":
		return st, &Verdict{State: Crashed, ExitCode: e.exit, After: e.at}
	case e.probe == "readiness" && e.ok:
		return st, &Verdict{State: Ready, Probe: "readiness probe " + readiness.String() + " passed", After: e.at}
	case e.probe == "readiness":
		st.readyFails++
		if st.readyFails >= readiness.Failures() {
			return st, &Verdict{State: NotReady, After: e.at,
				Probe: fmt.Sprintf("readiness probe %s failed %d times: %s", readiness.String(), st.readyFails, e.answer)}
		}
	case e.probe == "liveness" && e.ok:
		st.liveFails = 0
	case e.probe == "liveness":
		st.liveFails++
		if st.liveFails >= liveness.Failures() {
			return st, &Verdict{State: Killed, After: e.at,
				Probe: fmt.Sprintf("liveness probe %s failed %d times: %s", liveness.String(), st.liveFails, e.answer)}
		}
	}
	return st, nil
}

// Options configure Run.
type Options struct {
	Pod pipeline.Pod
	// Command is the image's entrypoint and arguments.
	Command []string
	// Env is the process's environment; nil means this process's.
	Env []string
	// TimeScale is how long one second of the probes' numbers lasts; zero
	// means a second.
	TimeScale time.Duration
	// Output hears what the app prints, as it prints it.
	Output io.Writer
	// Lines is how many last lines the verdict keeps; zero means 30.
	Lines int
	// Grace is how long the app gets to exit after SIGTERM; zero means 5s.
	Grace time.Duration
}

// Run starts the command and probes it until there is a verdict, then stops
// the process. A pod without a readiness probe is ready once the process
// runs for a second (scaled). It fails only when the command cannot start.
func Run(ctx context.Context, o Options) (Verdict, error) {
	if len(o.Command) == 0 {
		return Verdict{}, errors.New("run the app: no command; pass the image's entrypoint and arguments after --")
	}
	if o.Lines <= 0 {
		o.Lines = 30
	}
	if o.Grace <= 0 {
		o.Grace = 5 * time.Second
	}
	if o.Output == nil {
		o.Output = io.Discard
	}
	cmd := exec.Command(o.Command[0], o.Command[1:]...)
	cmd.Env = o.Env
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	tail := &lastLines{max: o.Lines, out: o.Output}
	cmd.Stdout, cmd.Stderr = tail, tail
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Verdict{}, fmt.Errorf("run the app: start %s: %w", strings.Join(o.Command, " "), err)
	}
	events := make(chan event, 16)
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		code := 0
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		case err != nil:
			code = -1
		}
		close(exited)
		events <- event{at: time.Since(start), exit: code}
	}()
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	readiness := o.Pod.Readiness
	if readiness == nil {
		// Without a readiness probe the kubelet counts a running
		// container ready.
		readiness = &pipeline.Probe{Path: "", InitialDelaySeconds: 1, FailureThreshold: 1}
	}
	var wg sync.WaitGroup
	wg.Go(func() { probeLoop(pctx, "readiness", readiness, o.TimeScale, start, events) })
	if o.Pod.Liveness != nil {
		wg.Go(func() { probeLoop(pctx, "liveness", o.Pod.Liveness, o.TimeScale, start, events) })
	}
	var st state
	var v *Verdict
	for v == nil {
		select {
		case e := <-events:
			st, v = decide(st, e, readiness, o.Pod.Liveness)
		case <-ctx.Done():
			v = &Verdict{State: NotReady, After: time.Since(start), Probe: "no verdict before the run was stopped: " + context.Cause(ctx).Error()}
		}
	}
	cancel()
	wg.Wait()
	// What it printed up to the verdict, not its goodbye.
	v.Logs = tail.lines()
	select {
	case <-exited:
	default:
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(o.Grace):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	return *v, nil
}

// probeLoop probes p after its delay and then every period, until ctx ends.
// A probe without a path only checks that the process still runs.
func probeLoop(ctx context.Context, kind string, p *pipeline.Probe, scale time.Duration, start time.Time, events chan<- event) {
	client := &http.Client{Timeout: p.Timeout(), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	next := p.Delay(scale)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(next))):
		}
		ok, answer := true, ""
		if p.Path != "" {
			ok, answer = get(ctx, client, p)
		}
		select {
		case events <- event{at: time.Since(start), probe: kind, ok: ok, answer: answer}:
		case <-ctx.Done():
			return
		}
		next += p.Period(scale)
	}
}

// get is one HTTP probe, answered as the kubelet words it: 200-399 passes.
func get(ctx context.Context, client *http.Client, p *pipeline.Probe) (bool, string) {
	url := "http://127.0.0.1:" + strconv.Itoa(p.Port) + p.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "kube-probe/1.37")
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return true, fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	answer := fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	if b := strings.TrimSpace(string(body)); b != "" {
		answer += " (body: " + b + ")"
	}
	return false, answer
}

// lastLines keeps the last lines written to it and passes everything on.
type lastLines struct {
	mu   sync.Mutex
	max  int
	out  io.Writer
	part string
	kept []string
}

func (l *lastLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.out.Write(p)
	sc := bufio.NewScanner(strings.NewReader(l.part + string(p)))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	l.part = ""
	if len(p) > 0 && p[len(p)-1] != '\n' && len(lines) > 0 {
		l.part, lines = lines[len(lines)-1], lines[:len(lines)-1]
	}
	for _, line := range lines {
		if strings.TrimSpace(line) == "" {
			continue
		}
		l.kept = append(l.kept, line)
		if len(l.kept) > l.max {
			l.kept = l.kept[1:]
		}
	}
	return len(p), nil
}

func (l *lastLines) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]string(nil), l.kept...)
	if strings.TrimSpace(l.part) != "" {
		out = append(out, l.part)
	}
	return out
}
