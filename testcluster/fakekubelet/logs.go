package fakekubelet

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ringg/ringg-ci/testcluster/fakenode"
)

// Image tags that select what DefaultLogs and DefaultApp do.
const (
	// TagUnhealthy makes the health check answer 503.
	TagUnhealthy = "unhealthy"
	// TagChatty adds ChattyLines lines of debug output to the logs.
	TagChatty = "chatty"
)

// ChattyLines is how many extra lines a TagChatty container has logged.
const ChattyLines = 3000

// Line is one line a container logged.
type Line struct {
	Time time.Time
	Text string // without the newline
}

// CrashLine is the last line a crash-looping container (image tag
// crashloop) printed before it exited.
const CrashLine = "ERROR fatal: cannot start, exiting with code 1 (fake node: image tag crashloop)"

// DefaultLogs is what the chatbot logs: a start line ten minutes ago, the
// server's listening line five minutes ago, and a health check 30 seconds
// and one second ago (answered 503 for TagUnhealthy and for a container
// that never becomes ready). A crash-looping container's run ends with
// CrashLine instead; a TagChatty container also logged ChattyLines debug
// lines two minutes ago.
func DefaultLogs(pod *corev1.Pod, container string, now time.Time) []Line {
	image, tag := "", ""
	for _, c := range pod.Spec.Containers {
		if c.Name == container {
			image, tag = c.Image, fakenode.ImageTag(c.Image)
		}
	}
	start := []Line{{now.Add(-10 * time.Minute), fmt.Sprintf("INFO starting %s (%s) in pod %s", container, image, pod.Name)}}
	if tag == fakenode.TagCrashLoop {
		return append(start, Line{now.Add(-10*time.Minute + time.Second), CrashLine})
	}
	health := healthStatus(tag)
	lines := append(start, Line{now.Add(-5 * time.Minute), "INFO Uvicorn running on http://0.0.0.0:8765"})
	if tag == TagChatty {
		base := now.Add(-2 * time.Minute)
		for i := range ChattyLines {
			lines = append(lines, Line{base.Add(time.Duration(i) * time.Millisecond), fmt.Sprintf("DEBUG chatty line %04d of %s", i, pod.Name)})
		}
	}
	return append(lines,
		Line{now.Add(-30 * time.Second), fmt.Sprintf("INFO GET /pc/v1/healthcheck %d", health)},
		Line{now.Add(-time.Second), fmt.Sprintf("INFO GET /pc/v1/healthcheck %d", health)},
	)
}

// containerLogs answers GET /containerLogs/{namespace}/{pod}/{container} as
// the kubelet does: sinceSeconds or sinceTime, then tailLines, select lines;
// timestamps prefixes each with its RFC 3339 time; limitBytes cuts the
// output. follow=true sends the lines and then holds the stream open until
// the client leaves, like a running container that logs nothing more.
func (k *Kubelet) containerLogs(w http.ResponseWriter, r *http.Request) {
	pod, ok := k.pod(w, r)
	if !ok {
		return
	}
	container := r.PathValue("container")
	if !hasContainer(pod, container) {
		http.Error(w, fmt.Sprintf("container %s is not valid for pod %s", container, pod.Name), http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	cs := containerStatus(pod, container)
	if q.Get("previous") == "true" && (cs == nil || cs.RestartCount == 0) {
		http.Error(w, fmt.Sprintf("previous terminated container %q in pod %q not found", container, pod.Name), http.StatusBadRequest)
		return
	}
	// As the kubelet: a container that never ran has no logs. (Each run of
	// a restarted one printed the same lines, so "previous" reads them too.)
	if cs != nil && cs.RestartCount == 0 && cs.State.Waiting != nil && cs.State.Waiting.Reason != "CrashLoopBackOff" {
		http.Error(w, fmt.Sprintf("container %q in pod %q is waiting to start: %s", container, pod.Name, cs.State.Waiting.Reason), http.StatusBadRequest)
		return
	}
	now := k.opts.Now()
	var since time.Time
	if s := q.Get("sinceSeconds"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			http.Error(w, "sinceSeconds must be a positive integer", http.StatusBadRequest)
			return
		}
		since = now.Add(-time.Duration(n) * time.Second)
	}
	if s := q.Get("sinceTime"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			http.Error(w, "sinceTime must be RFC 3339", http.StatusBadRequest)
			return
		}
		since = t
	}
	tail, limit := int64(-1), int64(-1)
	for name, dst := range map[string]*int64{"tailLines": &tail, "limitBytes": &limit} {
		if s := q.Get(name); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				http.Error(w, name+" must be a non-negative integer", http.StatusBadRequest)
				return
			}
			*dst = n
		}
	}
	var kept []Line
	for _, l := range k.opts.Logs(pod, container, now) {
		if !l.Time.Before(since) {
			kept = append(kept, l)
		}
	}
	if tail >= 0 && int64(len(kept)) > tail {
		kept = kept[int64(len(kept))-tail:]
	}
	var buf bytes.Buffer
	for _, l := range kept {
		if q.Get("timestamps") == "true" {
			buf.WriteString(l.Time.UTC().Format(time.RFC3339Nano) + " ")
		}
		buf.WriteString(l.Text + "\n")
	}
	out := buf.Bytes()
	if limit >= 0 && int64(len(out)) > limit {
		out = out[:limit]
	}
	k.log.Debug("fake kubelet: logs", "pod", pod.Namespace+"/"+pod.Name, "container", container, "query", r.URL.RawQuery, "bytes", len(out))
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write(out)
	if q.Get("follow") == "true" {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		select {
		case <-r.Context().Done():
		case <-k.app.stop:
		}
	}
}

func hasContainer(pod *corev1.Pod, name string) bool {
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if c.Name == name {
			return true
		}
	}
	return false
}

func containerStatus(pod *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == name {
			return &pod.Status.ContainerStatuses[i]
		}
	}
	return nil
}

func healthStatus(tag string) int {
	if tag == TagUnhealthy || tag == fakenode.TagNeverReady {
		return http.StatusServiceUnavailable
	}
	return http.StatusOK
}

// AppLogs serves what apps plays in a pod: the lines a run that crashes or
// never becomes ready printed (each a second apart, the last a second ago),
// and DefaultLogs for the rest.
func AppLogs(apps func() *fakenode.Apps) func(pod *corev1.Pod, container string, now time.Time) []Line {
	return func(pod *corev1.Pod, container string, now time.Time) []Line {
		a := apps()
		if a == nil || len(pod.Spec.Containers) == 0 || pod.Spec.Containers[0].Name != container {
			return DefaultLogs(pod, container, now)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		run, ok := a.Run(ctx, pod)
		if !ok || run.Behavior == fakenode.Ready || len(run.Logs) == 0 {
			return DefaultLogs(pod, container, now)
		}
		lines := make([]Line, len(run.Logs))
		for i, l := range run.Logs {
			lines[i] = Line{now.Add(-time.Duration(len(run.Logs)-i) * time.Second), l}
		}
		return lines
	}
}
