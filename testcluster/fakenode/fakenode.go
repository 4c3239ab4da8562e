// Package fakenode plays the kubelet for a cluster that has none: it
// registers nodes, binds every pending pod to one of them (there is no
// scheduler), reports bound pods Running and Ready with a pod IP, and
// force-deletes pods stuck Terminating. That makes Deployments roll out, and
// Helm's wait and atomic behave as on a real cluster, against nothing more
// than an API server and a controller-manager.
//
// What happens to a pod is a Behavior chosen per pod by Options.Behavior;
// DefaultBehavior fails pods by image tag ("never-ready", "crashloop",
// "pull-error") so tests can exercise failed rollouts.
//
// It uses client-go only, so the same loop can run next to a test cluster in a
// test process or in a sandbox. It is driven by a pod informer and a work
// queue, with the kubelet's client limits (50 requests/s, burst 100).
package fakenode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Label values and names the fake nodes carry.
const (
	// NodePrefix starts every fake node's name; the architecture follows.
	NodePrefix = "fake-"
	// LabelFake marks fake nodes.
	LabelFake = "testcluster.ringg.dev/fake-node"
)

// Options configure Run.
type Options struct {
	// Config reaches the API server. Its rate limits are replaced by the
	// kubelet's (QPS 50, burst 100).
	Config *rest.Config
	// Architectures lists one node per architecture, named "fake-<arch>" and
	// labelled kubernetes.io/arch=<arch>; default amd64 and arm64. A pod
	// whose nodeSelector names an architecture goes to that node; every
	// other pod goes to the first.
	Architectures []string
	// Behavior decides each pod's fate; nil means DefaultBehavior.
	Behavior func(*corev1.Pod) Behavior
	// Log receives progress and errors; nil discards them.
	Log *slog.Logger
	// Now is the clock for status timestamps; nil means time.Now.
	Now func() time.Time
	// CrashLoopInterval is the time between restarts of a CrashLoop pod and
	// between ErrImagePull and ImagePullBackOff; default 1s.
	CrashLoopInterval time.Duration
	// MaxRestarts bounds a CrashLoop pod's restartCount; default 10.
	MaxRestarts int32
	// Workers is the number of pods handled at once; default 4.
	Workers int
	// Kubelet, when set, is published as every node's kubelet: its address
	// becomes the node's InternalIP (and its pods' hostIP) and its port the
	// node's status.daemonEndpoints.kubeletEndpoint, so the API server sends
	// pods/log and pods/portforward there (see package fakekubelet).
	Kubelet *KubeletEndpoint
}

// KubeletEndpoint is where a (fake) kubelet serves the API server.
type KubeletEndpoint struct {
	Address string // an IP address, e.g. 127.0.0.1
	Port    int32
}

// Run registers the nodes and handles pods until ctx is done. It returns nil
// when ctx ends, or an error if it could not start.
func Run(ctx context.Context, opts Options) error {
	k, err := newKubelet(opts)
	if err != nil {
		return err
	}
	if err := k.registerNodes(ctx); err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(k.client, 0)
	pods := factory.Core().V1().Pods()
	k.pods = pods.Lister()
	_, err = pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    k.enqueue,
		UpdateFunc: func(_, obj any) { k.enqueue(obj) },
		DeleteFunc: k.forget,
	})
	if err != nil {
		return fmt.Errorf("watch pods: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok && ctx.Err() == nil {
			return fmt.Errorf("list %v: cache never synced; check the API server and the client's permissions", typ)
		}
	}
	var wg sync.WaitGroup
	for range k.opts.Workers {
		wg.Go(func() {
			for k.next(ctx) {
			}
		})
	}
	<-ctx.Done()
	k.queue.ShutDown()
	wg.Wait()
	return nil
}

type node struct {
	name, arch string
	ip         string
	index      int
}

type kubelet struct {
	opts   Options
	client kubernetes.Interface
	log    *slog.Logger
	nodes  []node
	pods   corelisters.PodLister
	queue  workqueue.TypedRateLimitingInterface[string]

	mu      sync.Mutex
	nextIP  int
	changed map[types.UID]time.Time // last restart or pull-error step
}

func newKubelet(opts Options) (*kubelet, error) {
	if opts.Config == nil {
		return nil, errors.New("start fake node: no rest.Config; pass the cluster's config")
	}
	if len(opts.Architectures) == 0 {
		opts.Architectures = []string{"amd64", "arm64"}
	}
	if opts.Behavior == nil {
		opts.Behavior = DefaultBehavior
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CrashLoopInterval <= 0 {
		opts.CrashLoopInterval = time.Second
	}
	if opts.MaxRestarts <= 0 {
		opts.MaxRestarts = 10
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := rest.CopyConfig(opts.Config)
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = "testcluster-fakenode"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("start fake node: %w", err)
	}
	k := &kubelet{
		opts:    opts,
		client:  client,
		log:     log,
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		changed: map[types.UID]time.Time{},
	}
	for i, arch := range opts.Architectures {
		ip := fmt.Sprintf("10.0.0.%d", i+10)
		if opts.Kubelet != nil {
			ip = opts.Kubelet.Address
		}
		k.nodes = append(k.nodes, node{name: NodePrefix + arch, arch: arch, ip: ip, index: i})
	}
	return k, nil
}

func (k *kubelet) registerNodes(ctx context.Context) error {
	for _, n := range k.nodes {
		obj := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name: n.name,
			Labels: map[string]string{
				corev1.LabelArchStable:         n.arch,
				corev1.LabelOSStable:           "linux",
				corev1.LabelHostname:           n.name,
				corev1.LabelInstanceTypeStable: "fake",
				LabelFake:                      "true",
			},
		}}
		created, err := k.client.CoreV1().Nodes().Create(ctx, obj, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			created, err = k.client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		}
		if err != nil {
			return fmt.Errorf("register fake node %s: %w", n.name, err)
		}
		created.Status = k.nodeStatus(n)
		if k.opts.Kubelet != nil {
			created.Status.DaemonEndpoints.KubeletEndpoint.Port = k.opts.Kubelet.Port
		}
		if _, err := k.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("report status of fake node %s: %w", n.name, err)
		}
		k.log.Info("fake node registered", "node", n.name)
	}
	return nil
}

func (k *kubelet) nodeStatus(n node) corev1.NodeStatus {
	now := metav1.NewTime(k.opts.Now())
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("64"),
		corev1.ResourceMemory:           resource.MustParse("256Gi"),
		corev1.ResourcePods:             resource.MustParse("1000"),
		corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
	}
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady"),
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory"),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure"),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID"),
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: n.ip},
			{Type: corev1.NodeHostName, Address: n.name},
		},
		NodeInfo: corev1.NodeSystemInfo{
			Architecture:            n.arch,
			OperatingSystem:         "linux",
			OSImage:                 "fake",
			KernelVersion:           "fake",
			KubeletVersion:          "v1.37.2",
			ContainerRuntimeVersion: "fake://1",
		},
	}
}

func (k *kubelet) enqueue(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || (pod.Spec.NodeName != "" && k.node(pod.Spec.NodeName) == nil) {
		return
	}
	key, err := cache.MetaNamespaceKeyFunc(pod)
	if err == nil {
		k.queue.Add(key)
	}
}

func (k *kubelet) forget(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		k.mu.Lock()
		delete(k.changed, pod.UID)
		k.mu.Unlock()
	}
}

func (k *kubelet) node(name string) *node {
	for i := range k.nodes {
		if k.nodes[i].name == name {
			return &k.nodes[i]
		}
	}
	return nil
}

func (k *kubelet) next(ctx context.Context) bool {
	key, quit := k.queue.Get()
	if quit {
		return false
	}
	defer k.queue.Done(key)
	again, err := k.sync(ctx, key)
	switch {
	case err != nil && ctx.Err() == nil:
		k.log.Warn("fake node: retrying pod", "pod", key, "err", err)
		k.queue.AddRateLimited(key)
	case again > 0:
		k.queue.Forget(key)
		k.queue.AddAfter(key, again)
	default:
		k.queue.Forget(key)
	}
	return true
}

// sync moves one pod one step towards what its behavior wants, and says when
// to look at it again (0: when it next changes).
func (k *kubelet) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	pod, err := k.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	switch {
	case pod.DeletionTimestamp != nil:
		// No containers to stop: finish the deletion a kubelet would
		// finish after the grace period.
		err := k.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64),
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return 0, nil
		}
		return 0, err
	case pod.Spec.NodeName == "":
		target := k.pick(pod)
		err := k.client.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: target.name},
		}, metav1.CreateOptions{})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return 0, nil
		}
		return 0, err
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		return 0, nil
	}
	n := k.node(pod.Spec.NodeName)
	if n == nil {
		return 0, nil
	}
	status, again := k.desired(pod, *n, k.opts.Behavior(pod))
	if status == nil {
		return again, nil
	}
	update := pod.DeepCopy()
	update.Status = *status
	_, err = k.client.CoreV1().Pods(ns).UpdateStatus(ctx, update, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		// A newer version is on its way through the informer.
		return 0, nil
	}
	return again, err
}

// pick honours a kubernetes.io/arch node selector and otherwise takes the
// first node; there is no scheduler and no capacity to respect.
func (k *kubelet) pick(pod *corev1.Pod) node {
	if arch, ok := pod.Spec.NodeSelector[corev1.LabelArchStable]; ok {
		for _, n := range k.nodes {
			if n.arch == arch {
				return n
			}
		}
	}
	if name, ok := pod.Spec.NodeSelector[corev1.LabelHostname]; ok {
		if n := k.node(name); n != nil {
			return *n
		}
	}
	return k.nodes[0]
}

// desired returns the status pod should have next, or nil when it already
// has it, and when to look again.
func (k *kubelet) desired(pod *corev1.Pod, n node, b Behavior) (*corev1.PodStatus, time.Duration) {
	now := k.opts.Now()
	switch b {
	case Ready:
		if running(pod) && podReady(pod) {
			return nil, 0
		}
		return k.status(pod, n, containerSpec{ready: true}), 0
	case NeverReady:
		if running(pod) && !podReady(pod) {
			return nil, 0
		}
		return k.status(pod, n, containerSpec{}), 0
	case CrashLoop:
		restarts := restartCount(pod)
		if restarts >= k.opts.MaxRestarts {
			return nil, 0
		}
		if wait := k.wait(pod, now); wait > 0 && len(pod.Status.ContainerStatuses) > 0 {
			return nil, wait
		}
		return k.status(pod, n, containerSpec{crash: true, restarts: restarts + 1}), k.opts.CrashLoopInterval
	case PullError:
		reason := waitingReason(pod)
		switch reason {
		case "ImagePullBackOff":
			return nil, 0
		case "ErrImagePull":
			if wait := k.wait(pod, now); wait > 0 {
				return nil, wait
			}
			return k.status(pod, n, containerSpec{pull: "ImagePullBackOff"}), 0
		}
		k.wait(pod, now)
		return k.status(pod, n, containerSpec{pull: "ErrImagePull"}), k.opts.CrashLoopInterval
	}
	return nil, 0
}

// wait says how long until the pod's next crash-loop or pull step is due,
// and when one is due now, records now as its time.
func (k *kubelet) wait(pod *corev1.Pod, now time.Time) time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	last, ok := k.changed[pod.UID]
	if ok {
		if left := last.Add(k.opts.CrashLoopInterval).Sub(now); left > 0 {
			return left
		}
	}
	k.changed[pod.UID] = now
	return 0
}

type containerSpec struct {
	ready    bool
	crash    bool
	restarts int32
	pull     string // waiting reason when the image cannot be pulled
}

func (k *kubelet) status(pod *corev1.Pod, n node, c containerSpec) *corev1.PodStatus {
	now := metav1.NewTime(k.opts.Now())
	s := pod.Status.DeepCopy()
	s.HostIP = n.ip
	s.HostIPs = []corev1.HostIP{{IP: n.ip}}
	if s.PodIP == "" {
		ip := k.allocateIP(n)
		s.PodIP = ip
		s.PodIPs = []corev1.PodIP{{IP: ip}}
	}
	if s.StartTime == nil {
		s.StartTime = &now
	}
	s.Phase = corev1.PodRunning
	if c.pull != "" {
		s.Phase = corev1.PodPending
	}
	ready := corev1.ConditionFalse
	if c.ready {
		ready = corev1.ConditionTrue
	}
	setCondition(s, corev1.PodScheduled, corev1.ConditionTrue, now)
	setCondition(s, corev1.PodReadyToStartContainers, corev1.ConditionTrue, now)
	setCondition(s, corev1.PodInitialized, corev1.ConditionTrue, now)
	setCondition(s, corev1.ContainersReady, ready, now)
	setCondition(s, corev1.PodReady, ready, now)

	s.InitContainerStatuses = nil
	for _, ic := range pod.Spec.InitContainers {
		s.InitContainerStatuses = append(s.InitContainerStatuses, corev1.ContainerStatus{
			Name: ic.Name, Image: ic.Image, ImageID: ic.Image, ContainerID: containerID(pod, ic.Name),
			Ready: true, Started: new(false),
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now,
			}},
		})
	}
	s.ContainerStatuses = nil
	for _, ct := range pod.Spec.Containers {
		cs := corev1.ContainerStatus{
			Name: ct.Name, Image: ct.Image, ImageID: ct.Image, ContainerID: containerID(pod, ct.Name),
			Ready: c.ready, RestartCount: c.restarts, Started: new(c.pull == "" && !c.crash),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: *s.StartTime}},
		}
		switch {
		case c.crash:
			cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
				Reason:  "CrashLoopBackOff",
				Message: fmt.Sprintf("back-off restarting failed container %s in pod %s", ct.Name, pod.Name),
			}}
			cs.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 1, Reason: "Error", StartedAt: now, FinishedAt: now, ContainerID: cs.ContainerID,
			}}
		case c.pull != "":
			cs.ImageID, cs.ContainerID = "", ""
			// The kubelet's messages: the pull error, then the back-off
			// repeating it.
			msg := fmt.Sprintf("failed to pull image %q: fake node: tag %s cannot be pulled", ct.Image, TagPullError)
			if c.pull == "ImagePullBackOff" {
				msg = fmt.Sprintf("Back-off pulling image %q: ErrImagePull: %s", ct.Image, msg)
			}
			cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: c.pull, Message: msg}}
		}
		s.ContainerStatuses = append(s.ContainerStatuses, cs)
	}
	sort.Slice(s.Conditions, func(i, j int) bool { return s.Conditions[i].Type < s.Conditions[j].Type })
	return s
}

func (k *kubelet) allocateIP(n node) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.nextIP++
	// 10.244.<node>.0/24 per node and wrapping within it: tests never run
	// 250 pods on one node at once.
	return net.IPv4(10, 244, byte(n.index), byte(2+k.nextIP%250)).String()
}

func containerID(pod *corev1.Pod, name string) string {
	return fmt.Sprintf("fake://%s/%s", pod.UID, name)
}

func setCondition(s *corev1.PodStatus, t corev1.PodConditionType, status corev1.ConditionStatus, now metav1.Time) {
	for i := range s.Conditions {
		if s.Conditions[i].Type == t {
			if s.Conditions[i].Status != status {
				s.Conditions[i].Status = status
				s.Conditions[i].LastTransitionTime = now
			}
			return
		}
	}
	s.Conditions = append(s.Conditions, corev1.PodCondition{Type: t, Status: status, LastTransitionTime: now})
}

func running(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodRunning || len(pod.Status.ContainerStatuses) != len(pod.Spec.Containers) {
		return false
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return true
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func restartCount(pod *corev1.Pod) int32 {
	var n int32
	for _, cs := range pod.Status.ContainerStatuses {
		n = max(n, cs.RestartCount)
	}
	return n
}

func waitingReason(pod *corev1.Pod) string {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Waiting != nil {
			return cs.State.Waiting.Reason
		}
	}
	return ""
}
