package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// podClock watches a namespace's pods directly (not through the proxy) and
// notes when each pod was first seen Ready: the condition's
// lastTransitionTime has only second resolution.
type podClock struct {
	mu    sync.Mutex
	ready map[string]readyPod // by UID
	// complete holds, per Deployment, when its status turned complete
	// (every replica updated and available, no old one counted).
	complete map[string][]time.Time
	wasDone  map[string]bool
	now      func() time.Time
}

type readyPod struct {
	release, image string
	at             time.Time
}

func startPodClock(ctx context.Context, client kubernetes.Interface, namespace string, now func() time.Time) (*podClock, error) {
	pc := &podClock{ready: map[string]readyPod{}, complete: map[string][]time.Time{}, wasDone: map[string]bool{}, now: now}
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace))
	if _, err := f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    pc.see,
		UpdateFunc: func(_, o any) { pc.see(o) },
	}); err != nil {
		return nil, fmt.Errorf("watch pods in %s: %w", namespace, err)
	}
	if _, err := f.Apps().V1().Deployments().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    pc.seeDeployment,
		UpdateFunc: func(_, o any) { pc.seeDeployment(o) },
	}); err != nil {
		return nil, fmt.Errorf("watch deployments in %s: %w", namespace, err)
	}
	f.Start(ctx.Done())
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return nil, fmt.Errorf("watch pods in %s: %v never synced", namespace, typ)
		}
	}
	return pc, nil
}

func (pc *podClock) see(o any) {
	pod, ok := o.(*corev1.Pod)
	if !ok || !podReady(pod) || len(pod.Spec.Containers) == 0 {
		return
	}
	at := pc.now()
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if _, seen := pc.ready[string(pod.UID)]; !seen {
		pc.ready[string(pod.UID)] = readyPod{release: pod.Labels["app.kubernetes.io/instance"], image: pod.Spec.Containers[0].Image, at: at}
	}
}

func (pc *podClock) seeDeployment(o any) {
	dep, ok := o.(*appsv1.Deployment)
	if !ok {
		return
	}
	desired := ptr.Deref(dep.Spec.Replicas, 1)
	s := dep.Status
	done := s.ObservedGeneration >= dep.Generation && s.UpdatedReplicas == desired && s.Replicas == desired && s.AvailableReplicas >= desired
	at := pc.now()
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if done && !pc.wasDone[dep.Name] {
		pc.complete[dep.Name] = append(pc.complete[dep.Name], at)
	}
	pc.wasDone[dep.Name] = done
}

// completeAfter returns when a Deployment's status first turned complete
// after since, or the zero time.
func (pc *podClock) completeAfter(name string, since time.Time) time.Time {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for _, t := range pc.complete[name] {
		if t.After(since) {
			return t
		}
	}
	return time.Time{}
}

// lastReady returns when the last pod of release running digest became
// Ready, and how many such pods were Ready by then and by before.
func (pc *podClock) lastReady(release, digest string, before time.Time) (last time.Time, n, byBefore int) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for _, p := range pc.ready {
		if p.release != release || !strings.HasSuffix(p.image, "@"+digest) {
			continue
		}
		n++
		if !p.at.After(before) {
			byBefore++
		}
		if p.at.After(last) {
			last = p.at
		}
	}
	return last, n, byBefore
}

func podReady(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// settle waits until a release's Deployment runs replicas Ready pods of
// digest and no other pod of the release is left, so that one measurement
// never overlaps the tail of the previous one.
func settle(ctx context.Context, client kubernetes.Interface, namespace, release, digest string, replicas int) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	return settleBy(ctx, client, namespace, release, digest, replicas)
}

// settleBy is settle until ctx ends, for rollouts that take minutes.
func settleBy(ctx context.Context, client kubernetes.Interface, namespace, release, digest string, replicas int) error {
	for {
		ok, why := settled(ctx, client, namespace, release, digest, replicas)
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("release %s in %s did not settle on %s: %s", release, namespace, digest, why)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func settled(ctx context.Context, client kubernetes.Interface, namespace, release, digest string, replicas int) (bool, string) {
	dep, err := client.AppsV1().Deployments(namespace).Get(ctx, release, metav1.GetOptions{})
	if err != nil {
		return false, err.Error()
	}
	s := dep.Status
	if s.ObservedGeneration < dep.Generation || int(s.UpdatedReplicas) != replicas || int(s.Replicas) != replicas || int(s.AvailableReplicas) != replicas {
		return false, fmt.Sprintf("deployment %d/%d updated, %d replicas, %d available", s.UpdatedReplicas, replicas, s.Replicas, s.AvailableReplicas)
	}
	pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + release})
	if err != nil {
		return false, err.Error()
	}
	ready := 0
	for i := range pods.Items {
		p := &pods.Items[i]
		if !strings.HasSuffix(p.Spec.Containers[0].Image, "@"+digest) {
			return false, "pod " + p.Name + " of another image is left"
		}
		if podReady(p) {
			ready++
		}
	}
	if ready != replicas || len(pods.Items) != replicas {
		return false, fmt.Sprintf("%d/%d pods ready, %d pods", ready, replicas, len(pods.Items))
	}
	return true, ""
}
