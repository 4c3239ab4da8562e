// Package fakenode plays the kubelet (and the scheduler) for a cluster that
// has none: it registers nodes, binds every pending pod to one of them,
// reports bound pods Running and Ready with a pod IP, and finishes the
// deletion of pods Terminating. That makes Deployments roll out, and Helm's
// wait and atomic behave as on a real cluster, against nothing more than an
// API server and a controller-manager.
//
// What happens to a pod is a Behavior chosen per pod by Options.Behavior;
// DefaultBehavior fails pods by image tag ("never-ready", "crashloop",
// "pull-error") so tests can exercise failed rollouts.
//
// By default every step is instant. A test that wants a node that behaves
// like one, on a time scale, sets Options.Timing (per pod: container start,
// app readiness followed through the readiness probe's initialDelaySeconds
// and periodSeconds, the drain of a deleted pod bounded by its grace period,
// crash-loop back-off as the kubelet's), Options.TimeScale (one second of the
// pod spec's numbers lasts that long here) and Options.Allocatable (pods bind
// only where their requests fit, Terminating pods keep theirs, and the rest
// stay Pending with the scheduler's reason). Options.Namespace gives one
// namespace a node pool of its own, so a test's capacity and timing touch
// no other test.
//
// It uses client-go only, so the same loop can run next to a test cluster in a
// test process or in a sandbox. It is driven by a pod informer and a work
// queue, with the kubelet's client limits (50 requests/s, burst 100).
package fakenode

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"sort"
	"strings"
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
	// LabelPool marks a namespace that has a node pool of its own (see
	// Options.Namespace), and that pool's nodes; its value is the
	// namespace. Nodes of a Run without Namespace leave its pods alone.
	LabelPool = "testcluster.ringg.dev/fake-node-pool"
)

// Options configure Run.
type Options struct {
	// Config reaches the API server. Its rate limits are replaced by the
	// kubelet's (QPS 50, burst 100).
	Config *rest.Config
	// Architectures lists the architectures of the nodes, labelled
	// kubernetes.io/arch=<arch>; default amd64 and arm64. Without
	// Allocatable, a pod whose nodeSelector names an architecture goes to
	// its first node and every other pod to the first node.
	Architectures []string
	// NodesPerArchitecture is how many nodes each architecture gets;
	// default 1, named "fake-<arch>", else "fake-<arch>-1", "-2"...
	NodesPerArchitecture int
	// Namespace, when set, makes the nodes a pool for that namespace
	// alone: the namespace is labelled LabelPool, only its pods are bound
	// to these nodes, nodes of a Run without Namespace leave them alone,
	// and the nodes, named "fake-<namespace>-<arch>...", are deleted when
	// Run returns.
	Namespace string
	// Behavior decides each pod's fate; nil means DefaultBehavior. The pod
	// it is given is bound (Spec.NodeName is set), so a behavior may depend
	// on the node.
	Behavior func(*corev1.Pod) Behavior
	// Timing, when set, gives each pod the kubelet's time scale (see
	// Timing); nil keeps every step instant: a pod is Ready once bound and
	// removed once deleted.
	Timing func(*corev1.Pod) Timing
	// TimeScale is how long one second of the pod spec's numbers (probe
	// delays and periods, grace periods) and of Timing lasts here, e.g.
	// 10ms to run production's minutes in seconds; zero means a second.
	TimeScale time.Duration
	// Allocatable, when set, is what each node offers pods (cpu and
	// memory): a pod is bound only to a node its node selector matches and
	// its requests fit, counting every pod bound there that has not gone,
	// Terminating ones included, as kube-scheduler does; the others stay
	// Pending with PodScheduled=False, reason Unschedulable and the
	// scheduler's message ("0/2 nodes are available: 2 Insufficient
	// cpu."), and are bound as soon as room is freed. Nil means no limit.
	Allocatable corev1.ResourceList
	// Log receives progress and errors; nil discards them.
	Log *slog.Logger
	// Now is the clock for status timestamps and Timing; nil means
	// time.Now.
	Now func() time.Time
	// CrashLoopInterval is the time between restarts of a CrashLoop pod and
	// between ErrImagePull and ImagePullBackOff when Timing is nil; default
	// 1s. With Timing the kubelet's back-off applies.
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
	// Apps, when set, plays the app in every pod Behavior leaves Ready: its
	// run, decided from the container's environment, says whether it
	// crashes, how (exit code, and the lines it printed as the termination
	// message of a container with terminationMessagePolicy
	// FallbackToLogsOnError), or whether its readiness probe fails.
	Apps *Apps
}

// KubeletEndpoint is where a (fake) kubelet serves the API server.
type KubeletEndpoint struct {
	Address string // an IP address, e.g. 127.0.0.1
	Port    int32
}

// Run registers the nodes and handles pods until ctx is done. It returns nil
// when ctx ends, or an error if it could not start.
func Run(ctx context.Context, opts Options) error {
	nodes, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	nodes.Wait()
	return nil
}

// Nodes are fake nodes at work, started by Start.
type Nodes struct {
	names []string
	done  chan struct{}
}

// Names lists the nodes' names.
func (n *Nodes) Names() []string { return append([]string(nil), n.names...) }

// Wait returns once the nodes have stopped (their context ended) and, for
// a pool, have been deleted.
func (n *Nodes) Wait() { <-n.done }

// Start registers the nodes, waits until it has seen every pod it may
// handle, and handles pods in the background until ctx is done. It returns
// an error if it could not start.
func Start(ctx context.Context, opts Options) (*Nodes, error) {
	k, err := newKubelet(opts)
	if err != nil {
		return nil, err
	}
	if err := k.claimNamespace(ctx); err != nil {
		return nil, err
	}
	if err := k.registerNodes(ctx); err != nil {
		return nil, err
	}
	stop := func() {
		if k.opts.Namespace != "" {
			k.removeNodes()
		}
	}
	var factoryOpts []informers.SharedInformerOption
	if k.opts.Namespace != "" {
		factoryOpts = append(factoryOpts, informers.WithNamespace(k.opts.Namespace))
	}
	factory := informers.NewSharedInformerFactoryWithOptions(k.client, 0, factoryOpts...)
	pods := factory.Core().V1().Pods()
	k.pods = pods.Lister()
	if k.opts.Namespace == "" {
		// Pools of other Runs are told apart by their namespace's label.
		k.namespaces = factory.Core().V1().Namespaces().Lister()
	}
	_, err = pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    k.observe,
		UpdateFunc: func(_, obj any) { k.observe(obj) },
		DeleteFunc: k.forget,
	})
	if err != nil {
		stop()
		return nil, fmt.Errorf("watch pods: %w", err)
	}
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok && ctx.Err() == nil {
			factory.Shutdown()
			stop()
			return nil, fmt.Errorf("list %v: cache never synced; check the API server and the client's permissions", typ)
		}
	}
	n := &Nodes{done: make(chan struct{})}
	for _, nd := range k.nodes {
		n.names = append(n.names, nd.name)
	}
	var wg sync.WaitGroup
	wg.Go(func() { k.events.run(ctx) })
	for range k.opts.Workers {
		wg.Go(func() {
			for k.next(ctx) {
			}
		})
	}
	go func() {
		defer close(n.done)
		<-ctx.Done()
		k.queue.ShutDown()
		wg.Wait()
		factory.Shutdown()
		stop()
	}()
	return n, nil
}

type node struct {
	name, arch string
	ip         string
	index      int
	labels     map[string]string
}

// life is what the fake kubelet remembers of one pod, in its own clock.
type life struct {
	bound    time.Time // when it was bound (or first seen bound)
	deleting time.Time // when its deletion was first seen; zero before
}

type kubelet struct {
	opts       Options
	client     kubernetes.Interface
	events     *recorder
	log        *slog.Logger
	nodes      []node
	pods       corelisters.PodLister
	namespaces corelisters.NamespaceLister // nil for a pool
	queue      workqueue.TypedRateLimitingInterface[string]
	scale      scale
	ipBase     byte

	// schedule serialises placement, so two workers never both take the
	// last room on a node.
	schedule sync.Mutex

	mu      sync.Mutex
	nextIP  int
	changed map[types.UID]time.Time // last restart or pull-error step (no Timing)
	lives   map[types.UID]*life
	// used holds the node and requests of every pod bound to a node here
	// that has not gone; waiting, the keys of pods left unschedulable.
	used    map[types.UID]allocation
	waiting map[string]bool
}

type allocation struct {
	node int
	req  request
}

func newKubelet(opts Options) (*kubelet, error) {
	if opts.Config == nil {
		return nil, errors.New("start fake node: no rest.Config; pass the cluster's config")
	}
	if len(opts.Architectures) == 0 {
		opts.Architectures = []string{"amd64", "arm64"}
	}
	if opts.NodesPerArchitecture <= 0 {
		opts.NodesPerArchitecture = 1
	}
	if opts.Behavior == nil {
		opts.Behavior = DefaultBehavior
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TimeScale <= 0 {
		opts.TimeScale = time.Second
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
	// Events go through a client of their own: its rate limit never delays
	// a status update.
	ecfg := rest.CopyConfig(opts.Config)
	ecfg.QPS, ecfg.Burst = 20, 40
	ecfg.UserAgent = "testcluster-fakenode-events"
	eclient, err := kubernetes.NewForConfig(ecfg)
	if err != nil {
		return nil, fmt.Errorf("start fake node: %w", err)
	}
	k := &kubelet{
		opts:    opts,
		client:  client,
		events:  newRecorder(eclient, opts.Now, log),
		log:     log,
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		scale:   scale(opts.TimeScale),
		ipBase:  244,
		changed: map[types.UID]time.Time{},
		lives:   map[types.UID]*life{},
		used:    map[types.UID]allocation{},
		waiting: map[string]bool{},
	}
	prefix := NodePrefix
	if opts.Namespace != "" {
		prefix += poolName(opts.Namespace, opts.Architectures, opts.NodesPerArchitecture) + "-"
		// Pools get pod addresses of their own: 10.<100-199>.<node>.<n>.
		h := fnv.New32a()
		h.Write([]byte(opts.Namespace))
		k.ipBase = byte(100 + h.Sum32()%100)
	}
	for _, arch := range opts.Architectures {
		for i := range opts.NodesPerArchitecture {
			name := prefix + arch
			if opts.NodesPerArchitecture > 1 {
				name += fmt.Sprintf("-%d", i+1)
			}
			index := len(k.nodes)
			ip := fmt.Sprintf("10.0.0.%d", index+10)
			if opts.Kubelet != nil {
				ip = opts.Kubelet.Address
			}
			labels := map[string]string{
				corev1.LabelArchStable:         arch,
				corev1.LabelOSStable:           "linux",
				corev1.LabelHostname:           name,
				corev1.LabelInstanceTypeStable: "fake",
				LabelFake:                      "true",
			}
			if opts.Namespace != "" {
				labels[LabelPool] = opts.Namespace
			}
			k.nodes = append(k.nodes, node{name: name, arch: arch, ip: ip, index: index, labels: labels})
		}
	}
	return k, nil
}

// poolName shortens a namespace, when need be, so that its node names fit
// the 63 characters of their hostname label: a prefix and a hash.
func poolName(namespace string, archs []string, per int) string {
	longest := 0
	for _, a := range archs {
		longest = max(longest, len(a))
	}
	room := 63 - len(NodePrefix) - 1 - longest
	if per > 1 {
		room -= 1 + len(fmt.Sprint(per))
	}
	if len(namespace) <= room {
		return namespace
	}
	h := fnv.New32a()
	h.Write([]byte(namespace))
	sum := fmt.Sprintf("%08x", h.Sum32())
	return strings.TrimRight(namespace[:max(room-len(sum)-1, 0)], "-") + "-" + sum
}

// claimNamespace labels a pool's namespace, so that nodes without a pool
// leave its pods alone.
func (k *kubelet) claimNamespace(ctx context.Context) error {
	ns := k.opts.Namespace
	if ns == "" {
		return nil
	}
	patch := fmt.Appendf(nil, `{"metadata":{"labels":{%q:%q}}}`, LabelPool, ns)
	if _, err := k.client.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("label namespace %s for its fake node pool: %w; create the namespace first", ns, err)
	}
	return nil
}

func (k *kubelet) registerNodes(ctx context.Context) error {
	for _, n := range k.nodes {
		obj := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: n.labels}}
		created, err := k.client.CoreV1().Nodes().Create(ctx, obj, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			created, err = k.client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		}
		if err != nil {
			return fmt.Errorf("register fake node %s: %w", n.name, err)
		}
		// Controllers annotate a new node at once: retry on their writes.
		for attempt := 0; ; attempt++ {
			created.Status = k.nodeStatus(n)
			if k.opts.Kubelet != nil {
				created.Status.DaemonEndpoints.KubeletEndpoint.Port = k.opts.Kubelet.Port
			}
			_, err = k.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
			if err == nil || !apierrors.IsConflict(err) || attempt == 4 {
				break
			}
			if created, err = k.client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{}); err != nil {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("report status of fake node %s: %w", n.name, err)
		}
		k.log.Info("fake node registered", "node", n.name)
	}
	return nil
}

// removeNodes deletes a pool's nodes once its Run ends.
func (k *kubelet) removeNodes() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range k.nodes {
		err := k.client.CoreV1().Nodes().Delete(ctx, n.name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			k.log.Warn("fake node: delete pool node", "node", n.name, "err", err)
		}
	}
}

func (k *kubelet) nodeStatus(n node) corev1.NodeStatus {
	now := metav1.NewTime(k.opts.Now())
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("64"),
		corev1.ResourceMemory:           resource.MustParse("256Gi"),
		corev1.ResourcePods:             resource.MustParse("1000"),
		corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
	}
	for name, q := range k.opts.Allocatable {
		capacity[name] = q.DeepCopy()
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

// observe notes where a pod runs and queues it if it is this kubelet's.
func (k *kubelet) observe(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if pod.Spec.NodeName != "" {
		n := k.node(pod.Spec.NodeName)
		if n == nil {
			return
		}
		if k.opts.Allocatable != nil {
			terminal := pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
			k.mu.Lock()
			if terminal {
				delete(k.used, pod.UID)
			} else {
				k.used[pod.UID] = allocation{node: n.index, req: podRequest(pod)}
			}
			k.mu.Unlock()
			if terminal {
				k.retryWaiting()
			}
		}
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
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	k.opts.Apps.forget(pod.UID)
	k.mu.Lock()
	delete(k.changed, pod.UID)
	delete(k.lives, pod.UID)
	_, held := k.used[pod.UID]
	delete(k.used, pod.UID)
	if key, err := cache.MetaNamespaceKeyFunc(pod); err == nil {
		delete(k.waiting, key)
	}
	k.mu.Unlock()
	if held {
		k.retryWaiting()
	}
}

// retryWaiting queues every pod left unschedulable: room was freed.
func (k *kubelet) retryWaiting() {
	k.mu.Lock()
	keys := make([]string, 0, len(k.waiting))
	for key := range k.waiting {
		keys = append(keys, key)
	}
	k.mu.Unlock()
	sort.Strings(keys)
	for _, key := range keys {
		k.queue.Add(key)
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
		if pod.Spec.NodeName == "" || k.node(pod.Spec.NodeName) == nil {
			return 0, nil
		}
		if left := k.drainLeft(pod); left > 0 {
			return left, nil
		}
		// The container has stopped: finish the deletion a kubelet would
		// finish once it has.
		err := k.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64),
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return 0, nil
		}
		return 0, err
	case pod.Spec.NodeName == "":
		return k.bind(ctx, pod)
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		return 0, nil
	}
	n := k.node(pod.Spec.NodeName)
	if n == nil {
		return 0, nil
	}
	b, run := k.behavior(ctx, pod)
	status, again := k.desired(pod, *n, b, run)
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
	if err == nil {
		k.events.emit(pod, eventsFor(pod, &pod.Status, status, b, run)...)
	}
	return again, err
}

// behavior is what becomes of a bound pod: Options.Behavior's choice, or,
// for a pod it leaves Ready, the run Options.Apps plays.
func (k *kubelet) behavior(ctx context.Context, pod *corev1.Pod) (Behavior, *AppRun) {
	b := k.opts.Behavior(pod)
	if b != Ready || k.opts.Apps == nil {
		return b, nil
	}
	run, ok := k.opts.Apps.Run(ctx, pod)
	if !ok {
		return b, nil
	}
	return run.Behavior, &run
}

// bind places an unbound pod on a node, or reports why it cannot.
func (k *kubelet) bind(ctx context.Context, pod *corev1.Pod) (time.Duration, error) {
	if k.namespaces != nil {
		nsObj, err := k.namespaces.Get(pod.Namespace)
		if apierrors.IsNotFound(err) {
			// Created a moment ago: wait to see whether it has a pool.
			return 100 * time.Millisecond, nil
		}
		if err == nil && nsObj.Labels[LabelPool] != "" {
			return 0, nil
		}
	}
	key, _ := cache.MetaNamespaceKeyFunc(pod)
	// Placement and its reservation are one step, as the scheduler's
	// "assume"; the binding itself runs unlocked, so workers bind at once.
	k.schedule.Lock()
	// Waiting before looking: room freed from now on queues the pod again.
	k.mu.Lock()
	k.waiting[key] = true
	k.mu.Unlock()
	target, why := k.pick(pod)
	if target == nil {
		k.schedule.Unlock()
		return 0, k.markUnschedulable(ctx, pod, why)
	}
	k.mu.Lock()
	_, had := k.used[pod.UID]
	k.used[pod.UID] = allocation{node: target.index, req: podRequest(pod)}
	k.mu.Unlock()
	k.schedule.Unlock()
	err := k.client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: target.name},
	}, metav1.CreateOptions{})
	if err != nil {
		k.mu.Lock()
		if !had {
			delete(k.used, pod.UID)
		}
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			delete(k.waiting, key)
			err = nil
		}
		k.mu.Unlock()
		if !had {
			k.retryWaiting() // the reservation is room again
		}
		return 0, err
	}
	k.mu.Lock()
	delete(k.waiting, key)
	k.lives[pod.UID] = &life{bound: k.opts.Now()}
	k.mu.Unlock()
	return 0, nil
}

// pick chooses a node for pod. Without Allocatable it honours a
// kubernetes.io/arch or hostname node selector and otherwise takes the first
// node; with it, it schedules as kube-scheduler does (see place) and says
// why nothing fits.
func (k *kubelet) pick(pod *corev1.Pod) (*node, string) {
	if k.opts.Allocatable == nil {
		if arch, ok := pod.Spec.NodeSelector[corev1.LabelArchStable]; ok {
			for i := range k.nodes {
				if k.nodes[i].arch == arch {
					return &k.nodes[i], ""
				}
			}
		}
		if name, ok := pod.Spec.NodeSelector[corev1.LabelHostname]; ok {
			if n := k.node(name); n != nil {
				return n, ""
			}
		}
		return &k.nodes[0], ""
	}
	used := make([]request, len(k.nodes))
	k.mu.Lock()
	for uid, a := range k.used {
		if uid != pod.UID {
			used[a.node] = used[a.node].add(a.req)
		}
	}
	k.mu.Unlock()
	p := place(pod, k.nodes, capacity(k.opts.Allocatable), used)
	if p.node < 0 {
		return nil, p.message
	}
	return &k.nodes[p.node], ""
}

// markUnschedulable reports, as the scheduler does, why an unbound pod
// stays Pending.
func (k *kubelet) markUnschedulable(ctx context.Context, pod *corev1.Pod, why string) error {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable && c.Message == why {
			return nil
		}
	}
	update := pod.DeepCopy()
	update.Status.Phase = corev1.PodPending
	now := metav1.NewTime(k.opts.Now())
	found := false
	for i := range update.Status.Conditions {
		c := &update.Status.Conditions[i]
		if c.Type == corev1.PodScheduled {
			if c.Status != corev1.ConditionFalse {
				c.LastTransitionTime = now
			}
			c.Status, c.Reason, c.Message, found = corev1.ConditionFalse, corev1.PodReasonUnschedulable, why, true
		}
	}
	if !found {
		update.Status.Conditions = append(update.Status.Conditions, corev1.PodCondition{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: why, LastTransitionTime: now,
		})
	}
	_, err := k.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, update, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err == nil {
		k.events.emit(pod, event{corev1.EventTypeWarning, "FailedScheduling", why, fromScheduler})
	}
	return err
}

// lifeOf returns what is remembered of a bound pod, starting a record for
// one bound before this kubelet saw it (from its start time, if any).
func (k *kubelet) lifeOf(pod *corev1.Pod) *life {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.lives[pod.UID]
	if !ok {
		l = &life{bound: k.opts.Now()}
		if pod.Status.StartTime != nil {
			l.bound = pod.Status.StartTime.Time
		}
		k.lives[pod.UID] = l
	}
	if pod.DeletionTimestamp != nil && l.deleting.IsZero() {
		l.deleting = k.opts.Now()
	}
	return l
}

// drainLeft is how long a deleted pod has left to drain; zero without
// Timing or when its container does not run.
func (k *kubelet) drainLeft(pod *corev1.Pod) time.Duration {
	if k.opts.Timing == nil || !running(pod) {
		return 0
	}
	l := k.lifeOf(pod)
	drain := k.scale.real(drainFor(pod, k.opts.Timing(pod)))
	return drain - k.opts.Now().Sub(l.deleting)
}

// desired returns the status pod should have next, or nil when it already
// has it, and when to look again.
func (k *kubelet) desired(pod *corev1.Pod, n node, b Behavior, run *AppRun) (*corev1.PodStatus, time.Duration) {
	var st state
	var again time.Duration
	if k.opts.Timing != nil {
		l := k.lifeOf(pod)
		elapsed := k.scale.spec(k.opts.Now().Sub(l.bound))
		var next time.Duration
		st, next = course{b, k.opts.Timing(pod), readinessProbe(pod), k.opts.MaxRestarts}.at(elapsed)
		if next > 0 {
			// A millisecond late rather than early: the next look must
			// see the change.
			again = k.scale.real(next) + time.Millisecond
		}
		status := k.status(pod, n, st, l.bound, run)
		if sameStatus(&pod.Status, status) {
			return nil, again
		}
		return status, again
	}
	now := k.opts.Now()
	switch b {
	case Ready:
		st = state{stage: stageRunning, ready: true}
	case NeverReady:
		st = state{stage: stageRunning}
	case CrashLoop:
		restarts := restartCount(pod)
		if restarts >= k.opts.MaxRestarts {
			return nil, 0
		}
		if wait := k.wait(pod, now); wait > 0 && len(pod.Status.ContainerStatuses) > 0 {
			return nil, wait
		}
		return k.status(pod, n, state{stage: stageCrashed, restarts: restarts + 1}, now, run), k.opts.CrashLoopInterval
	case PullError:
		switch waitingReason(pod) {
		case "ImagePullBackOff":
			return nil, 0
		case "ErrImagePull":
			if wait := k.wait(pod, now); wait > 0 {
				return nil, wait
			}
			return k.status(pod, n, state{stage: stagePullBackOff}, now, run), 0
		}
		k.wait(pod, now)
		return k.status(pod, n, state{stage: stagePullError}, now, run), k.opts.CrashLoopInterval
	default:
		return nil, 0
	}
	status := k.status(pod, n, st, now, run)
	if sameStatus(&pod.Status, status) {
		return nil, 0
	}
	return status, 0
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

// status builds the status a kubelet reports for pod in state st; bound is
// when the pod was bound, the origin of st's times; run, when set, is how
// the app fares (its exit code and last lines when it crashes).
func (k *kubelet) status(pod *corev1.Pod, n node, st state, bound time.Time, run *AppRun) *corev1.PodStatus {
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
	if st.stage == stageCreating || st.stage == stagePullError || st.stage == stagePullBackOff {
		s.Phase = corev1.PodPending
	}
	ready := corev1.ConditionFalse
	if st.ready {
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
				ExitCode: 0, Reason: "Completed", StartedAt: *s.StartTime, FinishedAt: *s.StartTime,
			}},
		})
	}
	started := *s.StartTime
	if k.opts.Timing != nil {
		started = metav1.NewTime(bound.Add(k.scale.real(st.started)))
	}
	s.ContainerStatuses = nil
	for _, ct := range pod.Spec.Containers {
		// A restart count never goes down, whoever raised it.
		restarts := max(st.restarts, containerRestarts(pod, ct.Name))
		cs := corev1.ContainerStatus{
			Name: ct.Name, Image: ct.Image, ImageID: ct.Image, ContainerID: containerID(pod, ct.Name),
			Ready: st.ready, RestartCount: restarts, Started: new(st.stage == stageRunning),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
		}
		if old := previousTermination(pod, ct.Name); old != nil {
			cs.LastTerminationState.Terminated = old
		}
		if st.restarts > 0 && !sameRestarts(pod, ct.Name, restarts) {
			code, msg := int32(1), ""
			if run != nil {
				if run.ExitCode != 0 {
					code = run.ExitCode
				}
				msg = terminationMessage(&ct, run.Logs)
			}
			cs.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: code, Reason: "Error", Message: msg, StartedAt: now, FinishedAt: now, ContainerID: cs.ContainerID,
			}}
		}
		switch st.stage {
		case stageCreating:
			cs.ImageID, cs.ContainerID = "", ""
			cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
		case stageCrashed:
			cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
				Reason:  "CrashLoopBackOff",
				Message: fmt.Sprintf("back-off restarting failed container %s in pod %s", ct.Name, pod.Name),
			}}
		case stagePullError, stagePullBackOff:
			cs.ImageID, cs.ContainerID = "", ""
			// The kubelet's messages: the pull error, then the back-off
			// repeating it.
			msg := fmt.Sprintf("failed to pull image %q: fake node: tag %s cannot be pulled", ct.Image, TagPullError)
			reason := "ErrImagePull"
			if st.stage == stagePullBackOff {
				reason = "ImagePullBackOff"
				msg = fmt.Sprintf("Back-off pulling image %q: ErrImagePull: %s", ct.Image, msg)
			}
			cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}
		}
		s.ContainerStatuses = append(s.ContainerStatuses, cs)
	}
	sort.Slice(s.Conditions, func(i, j int) bool { return s.Conditions[i].Type < s.Conditions[j].Type })
	return s
}

// previousTermination is the last termination a container's status already
// reports, kept so that an unchanged state is not rewritten.
func previousTermination(pod *corev1.Pod, name string) *corev1.ContainerStateTerminated {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == name && cs.LastTerminationState.Terminated != nil {
			return cs.LastTerminationState.Terminated.DeepCopy()
		}
	}
	return nil
}

func containerRestarts(pod *corev1.Pod, name string) int32 {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == name {
			return cs.RestartCount
		}
	}
	return 0
}

func sameRestarts(pod *corev1.Pod, name string, n int32) bool {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == name {
			return cs.RestartCount == n
		}
	}
	return false
}

// sameStatus says whether two statuses report the same state: phase,
// condition values, and per container its state, reason, readiness and
// restarts. Timestamps do not count.
func sameStatus(a, b *corev1.PodStatus) bool {
	if a.Phase != b.Phase || a.PodIP != b.PodIP || len(a.ContainerStatuses) != len(b.ContainerStatuses) ||
		len(a.InitContainerStatuses) != len(b.InitContainerStatuses) {
		return false
	}
	conds := func(s *corev1.PodStatus) map[corev1.PodConditionType]corev1.ConditionStatus {
		m := map[corev1.PodConditionType]corev1.ConditionStatus{}
		for _, c := range s.Conditions {
			m[c.Type] = c.Status
		}
		return m
	}
	ca, cb := conds(a), conds(b)
	if len(ca) != len(cb) {
		return false
	}
	for t, v := range ca {
		if cb[t] != v {
			return false
		}
	}
	for i := range a.ContainerStatuses {
		x, y := a.ContainerStatuses[i], b.ContainerStatuses[i]
		if x.Name != y.Name || x.Ready != y.Ready || x.RestartCount != y.RestartCount || stateOf(x.State) != stateOf(y.State) {
			return false
		}
	}
	return true
}

func stateOf(s corev1.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running"
	case s.Waiting != nil:
		return "waiting " + s.Waiting.Reason
	case s.Terminated != nil:
		return "terminated " + s.Terminated.Reason
	}
	return ""
}

func (k *kubelet) allocateIP(n node) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.nextIP++
	if k.opts.Namespace != "" {
		// 10.<pool>.<node>.<n>, counting on through the third octet's
		// upper half so that busy pools do not wrap.
		third := byte(n.index) + byte(k.nextIP/250)*16
		return net.IPv4(10, k.ipBase, third, byte(2+k.nextIP%250)).String()
	}
	// 10.244.<node>.0/24 per node and wrapping within it: tests never run
	// 250 pods on one node at once.
	return net.IPv4(10, k.ipBase, byte(n.index), byte(2+k.nextIP%250)).String()
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
			if t == corev1.PodScheduled && status == corev1.ConditionTrue {
				s.Conditions[i].Reason, s.Conditions[i].Message = "", ""
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
