package ops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ringg/ringg-ci/ci/targets"
)

func readLogs(ctx context.Context, c kubernetes.Interface, p *corev1.Pod, lo *corev1.PodLogOptions, limit int64) ([]byte, error) {
	rc, err := c.CoreV1().Pods(p.Namespace).GetLogs(p.Name, lo).Stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", p.Name, err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, limit))
	if err != nil {
		return nil, fmt.Errorf("pod %s: read logs: %w", p.Name, err)
	}
	return raw, nil
}

// LogOptions configure Logs. Zero values mean the defaults.
type LogOptions struct {
	// Since keeps lines logged within this long before now; 0 keeps what
	// the container still has.
	Since time.Duration
	// Pod reads only this pod, which must be one of the target's.
	Pod string
	// Container is the container read; default DefaultContainer.
	Container string
	// TailLines keeps at most this many last lines per pod; default 500.
	TailLines int64
	// LimitBytes bounds the whole output, shared equally by the pods (at
	// least 1 KiB each); default 256 KiB. The most recent lines are kept.
	LimitBytes int64
	// Parallel is how many pods are read at once; default 8.
	Parallel int
}

// PodLogs is what one pod's container logged.
type PodLogs struct {
	Pod   string   `json:"pod"`
	Lines []string `json:"lines"`
	// Cut reports that older lines were dropped to respect the size bound.
	Cut bool `json:"cut,omitempty"`
	// Note says why there are no lines, e.g. a pod not yet scheduled.
	Note string `json:"note,omitempty"`
}

// LogsReport is the recent logs of a target's pods, sorted by pod name.
type LogsReport struct {
	Target    string    `json:"target"`
	Namespace string    `json:"namespace"`
	Selector  string    `json:"selector"`
	Container string    `json:"container"`
	Pods      []PodLogs `json:"pods"`
}

// String prints every line as "pod | line", pod by pod, and ends with a
// note for each pod whose output was cut.
func (r LogsReport) String() string {
	var b strings.Builder
	width := 0
	for _, p := range r.Pods {
		width = max(width, len(p.Pod))
	}
	var cut []string
	for _, p := range r.Pods {
		if p.Note != "" {
			fmt.Fprintf(&b, "%-*s | (%s)\n", width, p.Pod, p.Note)
		}
		for _, l := range p.Lines {
			fmt.Fprintf(&b, "%-*s | %s\n", width, p.Pod, l)
		}
		if p.Cut {
			cut = append(cut, p.Pod)
		}
	}
	if len(cut) > 0 {
		fmt.Fprintf(&b, "(older lines of %s were cut to bound the output; narrow with --since or --pod)\n", strings.Join(cut, ", "))
	}
	return b.String()
}

// Logs reads the recent logs of t's pods through the API server (pods list
// and pods/log get). A pod not yet on a node is reported with a note; any
// other failure to read a pod is returned joined, along with what was read.
func Logs(ctx context.Context, c kubernetes.Interface, t targets.Target, opts LogOptions) (LogsReport, error) {
	if opts.Container == "" {
		opts.Container = DefaultContainer
	}
	if opts.TailLines <= 0 {
		opts.TailLines = 500
	}
	if opts.LimitBytes <= 0 {
		opts.LimitBytes = 256 << 10
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	if opts.Since < 0 {
		return LogsReport{}, fmt.Errorf("read logs of %s: since %s is negative: pass a duration such as 10m", t.Name, opts.Since)
	}
	report := LogsReport{Target: string(t.Name), Namespace: t.Namespace, Selector: Selector(t), Container: opts.Container}
	ps, red, err := printedPods(ctx, c, t, opts.Pod)
	if err != nil {
		return report, fmt.Errorf("read logs of %s: %w", t.Name, err)
	}
	share := max(opts.LimitBytes/int64(len(ps)), 1<<10)
	report.Pods = make([]PodLogs, len(ps))
	errs := make([]error, len(ps))
	each(len(ps), opts.Parallel, func(i int) {
		report.Pods[i], errs[i] = podLogs(ctx, c, &ps[i], opts, share)
		for j, l := range report.Pods[i].Lines {
			report.Pods[i].Lines[j] = red.Text(l)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return report, fmt.Errorf("read logs of %s in %s: %w", t.Name, t.Namespace, err)
	}
	return report, nil
}

func podLogs(ctx context.Context, c kubernetes.Interface, p *corev1.Pod, opts LogOptions, share int64) (PodLogs, error) {
	out := PodLogs{Pod: p.Name}
	if p.Spec.NodeName == "" {
		out.Note = "not scheduled on a node yet: no logs"
		return out, nil
	}
	// The kubelet cuts limitBytes from the start of its answer, and the
	// recent end is what matters: when an answer is cut, ask again for as
	// many last lines as fitted, then keep the last share of bytes.
	fetch := share * 4
	tail := opts.TailLines
	var raw []byte
	for attempt := 0; ; attempt++ {
		lo := &corev1.PodLogOptions{Container: opts.Container, TailLines: &tail, LimitBytes: &fetch}
		if opts.Since > 0 {
			lo.SinceSeconds = new(int64(max(opts.Since/time.Second, 1)))
		}
		var err error
		if raw, err = readLogs(ctx, c, p, lo, fetch); err != nil {
			return out, err
		}
		if int64(len(raw)) < fetch {
			break
		}
		out.Cut = true
		fitted := int64(bytes.Count(raw, []byte{'\n'}))
		if attempt == 3 || fitted == 0 {
			// Whatever follows the last newline is a line the limit split.
			raw = raw[:bytes.LastIndexByte(raw, '\n')+1]
			break
		}
		tail = max(min(fitted, tail)/max(int64(attempt), 1), 1)
	}
	if int64(len(raw)) > share {
		raw = raw[int64(len(raw))-share:]
		raw, out.Cut = raw[bytes.IndexByte(raw, '\n')+1:], true
	}
	for line := range strings.Lines(string(raw)) {
		out.Lines = append(out.Lines, strings.TrimRight(line, "\r\n"))
	}
	return out, nil
}
