package fakenode

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Behavior is what the fake kubelet makes of a pod bound to one of its nodes.
type Behavior int

const (
	// Ready runs every container and reports the pod Running and Ready.
	Ready Behavior = iota
	// NeverReady runs every container but never reports readiness, like a
	// failing readiness probe.
	NeverReady
	// CrashLoop reports every container waiting in CrashLoopBackOff after
	// exiting with code 1, its restartCount rising about once per
	// CrashLoopInterval up to MaxRestarts.
	CrashLoop
	// PullError reports every container waiting in ErrImagePull, then
	// ImagePullBackOff; the pod stays Pending.
	PullError
)

// Image tags that select a failure in DefaultBehavior.
const (
	TagNeverReady = "never-ready"
	TagCrashLoop  = "crashloop"
	TagPullError  = "pull-error"
)

// String returns the behavior's name.
func (b Behavior) String() string {
	switch b {
	case Ready:
		return "ready"
	case NeverReady:
		return "never-ready"
	case CrashLoop:
		return "crashloop"
	case PullError:
		return "pull-error"
	}
	return "unknown"
}

// DefaultBehavior chooses by image tag: a pod with any container (init
// containers included) whose image tag is "never-ready", "crashloop" or
// "pull-error" gets that failure; every other pod becomes Ready. A digest
// after the tag is ignored, so "repo:never-ready@sha256:..." still fails.
func DefaultBehavior(pod *corev1.Pod) Behavior {
	containers := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range containers {
		switch ImageTag(c.Image) {
		case TagNeverReady:
			return NeverReady
		case TagCrashLoop:
			return CrashLoop
		case TagPullError:
			return PullError
		}
	}
	return Ready
}

// ImageTag returns the tag of an image reference, or "" when it has none.
func ImageTag(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	colon := strings.LastIndex(image, ":")
	if colon < 0 || colon < strings.LastIndex(image, "/") {
		return ""
	}
	return image[colon+1:]
}
