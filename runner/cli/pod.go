package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ringg/ringg-ci/ci/command"
	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/podrun"
)

// runPodSpec prints the app's container as the chart configures it for a
// branch's target (pipeline.Pod), for a replay.
func runPodSpec(_ context.Context, r *runner, args []string) error {
	var branch, out string
	f := r.flags(command.PodSpec).target().chart()
	f.StringVar(&branch, command.Branch, "", "the branch whose target's pod to describe: "+strings.Join(targets.Branches(), " or "))
	f.StringVar(&out, command.Out, "", "write the JSON to this file instead of standard output")
	if err := f.parse(args); err != nil {
		return err
	}
	t, err := targets.ForBranch(branch)
	if err != nil {
		return err
	}
	t = t.With(r.overrides)
	dep, err := podrun.RenderDeployment(r.chartDir, t)
	if err != nil {
		return err
	}
	pod, err := podrun.PodOf(t.Name, dep)
	if err != nil {
		return err
	}
	text, err := jsonText(pod)
	if err != nil {
		return err
	}
	if out == "" {
		_, err = fmt.Fprint(r.env.Stdout, text)
		return err
	}
	if err := os.WriteFile(out, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write the pod of %s to %s: %w", t.Name, out, err)
	}
	return nil
}

// runRunPod runs the command after "--" as the kubelet runs the pod's
// container and prints the verdict; it fails unless the app became ready.
func runRunPod(ctx context.Context, r *runner, args []string) error {
	var spec string
	var scale, timeout time.Duration
	f := r.flags(command.RunPod).output()
	f.StringVar(&spec, command.Spec, "", "the pod, as pod-spec writes it")
	f.duration(&scale, command.TimeScale, time.Second, "how long one second of the probes' numbers lasts, e.g. 100ms to run them ten times faster")
	f.duration(&timeout, command.Timeout, 0, "give up without a verdict after this long (default: ten times the slowest verdict the probes allow)")
	cmdAt := slices.Index(args, "--")
	if cmdAt < 0 || cmdAt == len(args)-1 {
		return fmt.Errorf("%w: pass the app's command after --: ringg-ci run-pod --spec FILE -- ENTRYPOINT ARGS…", ErrUsage)
	}
	if err := f.parse(args[:cmdAt]); err != nil {
		return err
	}
	raw, err := os.ReadFile(spec)
	if err != nil {
		return fmt.Errorf("read the pod %s: %w", spec, err)
	}
	var pod pipeline.Pod
	if err := json.Unmarshal(raw, &pod); err != nil {
		return fmt.Errorf("read the pod %s: %w; write it with ringg-ci pod-spec", spec, err)
	}
	if timeout == 0 {
		timeout = max(verdictBound(pod, scale)*10, time.Minute)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("no verdict within %s", timeout))
	defer cancel()
	v, err := podrun.Run(ctx, podrun.Options{Pod: pod, Command: args[cmdAt+1:], TimeScale: scale, Output: r.env.Stderr})
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", pod.Target, v)
	if v.State != podrun.Ready && len(v.Logs) > 0 {
		b.WriteString("last lines the app printed:\n")
		for _, l := range v.Logs {
			b.WriteString("  " + l + "\n")
		}
	}
	if perr := r.print(b.String(), v); perr != nil {
		return perr
	}
	if v.State != podrun.Ready {
		return fmt.Errorf("the app %s, as a pod of %s would: %s", v.State, pod.Target, v)
	}
	return nil
}

// verdictBound is the longest the probes take to decide: the slower of the
// readiness probe's delay plus its failures, and the liveness probe's.
func verdictBound(pod pipeline.Pod, scale time.Duration) time.Duration {
	var d time.Duration
	for _, p := range []*pipeline.Probe{pod.Readiness, pod.Liveness} {
		if p != nil {
			d = max(d, p.Delay(scale)+time.Duration(p.Failures())*p.Period(scale))
		}
	}
	return d
}
