package fakenode

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Who reports events, as a cluster names them.
const (
	fromKubelet   = "kubelet"
	fromScheduler = "default-scheduler"
)

// event is one event the fake kubelet or scheduler reports about a pod.
type event struct {
	typ, reason, message, from string
}

// defaultProbe is how a NeverReady pod's readiness probe fails when no app
// says otherwise: the stand-in's health check answers 503 while it is not
// ready.
const defaultProbe = "HTTP probe failed with statuscode: 503"

// eventsFor are the Warning events (and the BackOff of a pull) a kubelet
// reports when a pod's status goes from old to new: a failing readiness
// probe, a container restarted after a crash, an image that cannot be
// pulled. Normal events of a healthy start are left out: nothing reads them,
// and writing five per pod would slow down a rollout of sixty.
func eventsFor(pod *corev1.Pod, old, new *corev1.PodStatus, b Behavior, run *AppRun) []event {
	previous := map[string]corev1.ContainerStatus{}
	for _, cs := range old.ContainerStatuses {
		previous[cs.Name] = cs
	}
	var out []event
	for _, cs := range new.ContainerStatuses {
		was, seen := previous[cs.Name]
		image := cs.Image
		switch {
		case cs.State.Waiting != nil && cs.State.Waiting.Reason == "ErrImagePull" && waitingOf(was) != "ErrImagePull":
			out = append(out,
				event{corev1.EventTypeWarning, "Failed", fmt.Sprintf("Failed to pull image %q: rpc error: code = NotFound desc = failed to pull and unpack image %q: not found (fake node: tag %s)", image, image, TagPullError), fromKubelet},
				event{corev1.EventTypeWarning, "Failed", "Error: ErrImagePull", fromKubelet})
		case cs.State.Waiting != nil && cs.State.Waiting.Reason == "ImagePullBackOff" && waitingOf(was) != "ImagePullBackOff":
			out = append(out,
				event{corev1.EventTypeNormal, "BackOff", fmt.Sprintf("Back-off pulling image %q", image), fromKubelet},
				event{corev1.EventTypeWarning, "Failed", "Error: ImagePullBackOff", fromKubelet})
		case cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff" && (!seen || cs.RestartCount > was.RestartCount):
			out = append(out, event{corev1.EventTypeWarning, "BackOff",
				fmt.Sprintf("Back-off restarting failed container %s in pod %s_%s(%s)", cs.Name, pod.Name, pod.Namespace, pod.UID), fromKubelet})
		case b == NeverReady && cs.State.Running != nil && !cs.Ready && (!seen || was.State.Running == nil):
			probe := defaultProbe
			if run != nil && run.Probe != "" {
				probe = run.Probe
			}
			out = append(out, event{corev1.EventTypeWarning, "Unhealthy", "Readiness probe failed: " + probe, fromKubelet})
		}
	}
	return out
}

func waitingOf(cs corev1.ContainerStatus) string {
	if cs.State.Waiting == nil {
		return ""
	}
	return cs.State.Waiting.Reason
}

// recorder writes events in the background, on a client of its own, so
// that a rollout's status updates never wait for them. An event repeated
// (same pod, reason and message) counts up, as the kubelet's do.
type recorder struct {
	client kubernetes.Interface
	now    func() time.Time
	log    *slog.Logger
	queue  chan recorded
}

type recorded struct {
	pod  corev1.ObjectReference
	node string
	ev   event
}

func newRecorder(client kubernetes.Interface, now func() time.Time, log *slog.Logger) *recorder {
	return &recorder{client: client, now: now, log: log, queue: make(chan recorded, 4096)}
}

// emit queues events about pod; when the queue is full they are dropped
// (events are best effort, in a cluster too).
func (r *recorder) emit(pod *corev1.Pod, evs ...event) {
	ref := corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}
	for _, ev := range evs {
		select {
		case r.queue <- recorded{pod: ref, node: pod.Spec.NodeName, ev: ev}:
		default:
			r.log.Warn("fake node: event dropped, queue full", "pod", pod.Name, "reason", ev.reason)
		}
	}
}

// run writes queued events until ctx ends.
func (r *recorder) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case rec := <-r.queue:
			if err := r.write(ctx, rec); err != nil && ctx.Err() == nil {
				r.log.Warn("fake node: write event", "pod", rec.pod.Name, "reason", rec.ev.reason, "err", err)
			}
		}
	}
}

func (r *recorder) write(ctx context.Context, rec recorded) error {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s", rec.pod.UID, rec.ev.reason, rec.ev.message, rec.ev.from)
	name := fmt.Sprintf("%s.%x", rec.pod.Name, h.Sum64())
	now := metav1.NewTime(r.now())
	events := r.client.CoreV1().Events(rec.pod.Namespace)
	_, err := events.Create(ctx, &corev1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: name, Namespace: rec.pod.Namespace},
		InvolvedObject:      rec.pod,
		Type:                rec.ev.typ,
		Reason:              rec.ev.reason,
		Message:             rec.ev.message,
		Source:              corev1.EventSource{Component: rec.ev.from, Host: rec.node},
		ReportingController: rec.ev.from,
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Count:               1,
	}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
			return nil // the namespace is going away
		}
		return err
	}
	old, err := events.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	old.Count++
	old.LastTimestamp = now
	_, err = events.Update(ctx, old, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
