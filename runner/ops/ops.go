// Package ops is what an operator does to a deployed target, through the
// Kubernetes API alone (no gcloud, kubectl or network path to the pods):
// Health through a port-forward, Logs, and Scale by hand.
package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/redact"
)

// Labels the chart puts on every pod.
const (
	LabelInstance = "app.kubernetes.io/instance"
	LabelTrack    = "version"
)

// The chatbot's container contract.
const (
	DefaultContainer  = "dv-pipecat"
	DefaultPort       = 8765
	DefaultHealthPath = "/pc/v1/healthcheck"
)

// ErrNoPods is returned when the target has no pod to check or read.
var ErrNoPods = errors.New("no pods")

// Selector selects the pods of t: its release's instance label and its
// track's version label. The canary and stable releases share the app name
// label but never the instance label.
func Selector(t targets.Target) string {
	return labels.SelectorFromSet(labels.Set{LabelInstance: t.Release, LabelTrack: t.Track}).String()
}

// pods lists the target's pods sorted by name, skipping pods being deleted;
// only, when set, narrows them to that one pod, which must be the target's.
func pods(ctx context.Context, c kubernetes.Interface, t targets.Target, only string) ([]corev1.Pod, error) {
	sel := Selector(t)
	list, err := c.CoreV1().Pods(t.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list pods of %s (%s) in %s: %w", t.Name, sel, t.Namespace, err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	if only != "" {
		i := slices.IndexFunc(out, func(p corev1.Pod) bool { return p.Name == only })
		if i < 0 {
			return nil, fmt.Errorf("%w: pod %s is not one of %s's pods in %s (%s); pick one of: %s",
				ErrNoPods, only, t.Name, t.Namespace, sel, strings.Join(names(out), ", "))
		}
		out = out[i : i+1]
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s has no pods in %s (%s): deploy it first, or check `status`", ErrNoPods, t.Name, t.Namespace, sel)
	}
	return out, nil
}

func names(ps []corev1.Pod) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	if len(out) == 0 {
		return []string{"(none)"}
	}
	return out
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// each runs f for every index below n, at most limit at a time.
func each(n, limit int, f func(i int)) {
	sem := make(chan struct{}, max(limit, 1))
	done := make(chan struct{}, n)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; done <- struct{}{} }()
			f(i)
		}()
	}
	for range n {
		<-done
	}
}

// printedPods lists a target's pods (or the one named only) with the
// redactor of the Secrets they load: whatever a verb prints of them (logs,
// health answers, what a call got back) goes through it.
func printedPods(ctx context.Context, c kubernetes.Interface, t targets.Target, only string) ([]corev1.Pod, redact.Redactor, error) {
	ps, err := pods(ctx, c, t, only)
	if err != nil {
		return nil, redact.Redactor{}, err
	}
	specs := make([]*corev1.PodSpec, len(ps))
	for i := range ps {
		specs[i] = &ps[i].Spec
	}
	red, err := redact.For(ctx, c, t.Namespace, specs...)
	return ps, red, err
}
