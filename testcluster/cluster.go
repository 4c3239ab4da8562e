// Package testcluster gives tests a real Kubernetes control plane: etcd,
// kube-apiserver and kube-controller-manager from the tools/testcluster
// helper binary, plus fake nodes (package fakenode) that play the kubelet, so
// Deployments roll out and Helm's wait and atomic work as on a cluster, and a
// fake kubelet (package fakekubelet) behind those nodes, so pods/log and
// pods/portforward work through the API server.
//
// One cluster serves a whole test binary. Start it from TestMain:
//
//	var cluster *testcluster.Cluster
//
//	func TestMain(m *testing.M) { os.Exit(testcluster.Main(m, &cluster)) }
//
// and give every test its own namespace:
//
//	func TestInstall(t *testing.T) {
//		ns := cluster.Namespace(t) // deleted when the test ends
//		_, err := cluster.Client().CoreV1().ConfigMaps(ns).Create(...)
//	}
//
// Test namespaces enforce the "restricted" Pod Security Standard, so a pod
// the chart renders is admitted only if production's hardened namespaces
// would admit it; a pod written by hand in a test goes through Restrict.
//
// A test that needs nodes like production's (probe timing, drains that hold
// their CPU, a full pool) on a time scale gets a namespace with a node pool of
// its own:
//
//	ns := cluster.NamespaceWithNodes(t, fakenode.Options{
//		Architectures: []string{"arm64"}, NodesPerArchitecture: 2,
//		Allocatable:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32")},
//		Timing:        timing, TimeScale: 10 * time.Millisecond,
//	})
//
// With -short no cluster starts and Namespace skips the test. The helper
// binary is built on first use and cached outside the clone (see Build), or
// taken from $RINGG_TESTCLUSTER_BIN. The helper process reads a pipe on its
// stdin and exits when it closes, so no cluster outlives its test process,
// even one killed by a timeout.
package testcluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ringg/ringg-ci/testcluster/fakekubelet"
	"github.com/ringg/ringg-ci/testcluster/fakenode"
	"github.com/ringg/ringg-ci/testcluster/standin"
)

// Options configure Start.
type Options struct {
	// Binary is the testcluster helper; "" means Build(ctx, BuildOptions{}).
	Binary string
	// DataDir keeps the cluster (etcd, certificates, ports); "" means a
	// temporary directory that Stop removes.
	DataDir string
	// Log receives the helper's logs (etcd, API server, controller-manager);
	// nil means <DataDir>/testcluster.log. The last lines are added to a
	// start-up error either way.
	Log io.Writer
	// Args are extra flags for `testcluster serve`, e.g. "--tls-san=kube".
	Args []string
	// NoFakeNodes leaves the cluster without nodes; pods then stay Pending.
	NoFakeNodes bool
	// Behavior decides what the fake nodes do with each pod; nil means
	// fakenode.DefaultBehavior (failures chosen by image tag).
	Behavior func(*corev1.Pod) fakenode.Behavior
	// ReadyTimeout bounds each start and restart; default 2 minutes.
	ReadyTimeout time.Duration
	// NoFakeKubelet leaves the fake nodes without a kubelet endpoint; pod
	// logs and port-forwards then fail as on a node whose kubelet is down.
	NoFakeKubelet bool
	// Kubelet configures the fake kubelet (what containers log, what their
	// ports answer); its Pod lookup is the cluster's own. Without a Logs of
	// its own it serves the lines of the app Play plays (AppLogs).
	Kubelet fakekubelet.Options
	// Play plays the app in the pods the fake nodes would make Ready (see
	// fakenode.Apps); nil means standin.Play, the stand-in chatbot's own
	// start-up code with the pod's environment, including the ENV of
	// images in a registry on this machine. NoApps turns it off.
	Play   fakenode.Play
	NoApps bool
}

// Cluster is a running test cluster. Its methods are safe for concurrent use
// by parallel tests, except Restart and Stop.
type Cluster struct {
	opts       Options
	dataDir    string
	removeDir  bool
	kubeconfig string
	raw        []byte
	config     *rest.Config
	client     kubernetes.Interface
	requests   atomic.Int64
	logFile    *os.File
	log        io.Writer
	tail       *tailBuffer

	mu       sync.Mutex
	proc     *exec.Cmd
	stdin    io.WriteCloser
	exited   chan struct{}
	startDur time.Duration

	stopNodes context.CancelFunc
	nodesDone chan struct{}

	kubelet       *fakekubelet.Kubelet
	kubeletClient atomic.Pointer[kubernetes.Clientset]
	apps          atomic.Pointer[fakenode.Apps]
	extraArgs     []string // flags for serve that Start adds
}

// Main starts a cluster with default options, stores it in *dst, runs the
// tests and stops the cluster. It returns the exit code for os.Exit. With
// -short it starts nothing and leaves *dst nil.
func Main(m *testing.M, dst **Cluster) int {
	return MainWithOptions(m, dst, Options{})
}

// MainWithOptions is Main with options.
func MainWithOptions(m *testing.M, dst **Cluster, opts Options) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	// The first run builds the helper, which takes minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	c, err := Start(ctx, opts)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testcluster: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "testcluster: ready in %s, kubeconfig %s\n", c.StartupDuration().Round(time.Millisecond), c.KubeconfigPath())
	*dst = c
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "testcluster: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Start builds or finds the helper binary, starts a cluster and, unless
// NoFakeNodes, the fake nodes, and returns once the API server is ready.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 2 * time.Minute
	}
	if opts.Binary == "" {
		bin, err := Build(ctx, BuildOptions{})
		if err != nil {
			return nil, err
		}
		opts.Binary = bin
	}
	c := &Cluster{opts: opts, dataDir: opts.DataDir, tail: &tailBuffer{max: 16 << 10}}
	if c.dataDir == "" {
		dir, err := os.MkdirTemp("", "testcluster-")
		if err != nil {
			return nil, fmt.Errorf("create a data directory for the test cluster: %w", err)
		}
		c.dataDir, c.removeDir = dir, true
	}
	c.log = opts.Log
	if c.log == nil {
		f, err := os.OpenFile(filepath.Join(c.dataDir, "testcluster.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			c.cleanup()
			return nil, fmt.Errorf("open the test cluster log: %w", err)
		}
		c.logFile, c.log = f, f
	}
	c.log = io.MultiWriter(c.log, c.tail)
	if !opts.NoFakeNodes && !opts.NoFakeKubelet {
		if err := c.startKubelet(); err != nil {
			c.cleanup()
			return nil, err
		}
	}
	if err := c.launch(ctx); err != nil {
		c.cleanup()
		return nil, err
	}
	raw, err := os.ReadFile(c.kubeconfig)
	if err != nil {
		c.Stop()
		return nil, fmt.Errorf("read the test cluster's kubeconfig: %w", err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(raw)
	if err != nil {
		c.Stop()
		return nil, fmt.Errorf("load the test cluster's kubeconfig: %w", err)
	}
	// Tests burst; client-side throttling would only slow them down.
	cfg.QPS, cfg.Burst = 500, 1000
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return countingTransport{next: rt, n: &c.requests}
	}
	c.raw, c.config = raw, cfg
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		c.Stop()
		return nil, fmt.Errorf("create a client for the test cluster: %w", err)
	}
	c.client = cs
	c.kubeletClient.Store(cs)
	if !opts.NoApps {
		play := opts.Play
		if play == nil {
			play = standin.Play
		}
		apps := fakenode.NewApps(cs, play)
		apps.ImageEnv = standin.RegistryEnv(standin.Loopback)
		c.apps.Store(apps)
	}
	if !opts.NoFakeNodes {
		c.startNodes()
	}
	return c, nil
}

func (c *Cluster) startNodes() {
	ctx, cancel := context.WithCancel(context.Background())
	c.stopNodes, c.nodesDone = cancel, make(chan struct{})
	log := slog.New(slog.NewTextHandler(c.log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() {
		defer close(c.nodesDone)
		opts := fakenode.Options{Config: c.config, Behavior: c.opts.Behavior, Log: log, Apps: c.apps.Load()}
		if c.kubelet != nil {
			opts.Kubelet = &fakenode.KubeletEndpoint{Address: c.kubelet.Address(), Port: c.kubelet.Port()}
		}
		err := fakenode.Run(ctx, opts)
		if err != nil {
			log.Error("fake nodes stopped", "err", err)
		}
	}()
}

// launch starts the helper process and waits for its ready line.
func (c *Cluster) launch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ReadyTimeout)
	defer cancel()
	start := time.Now()
	args := append(append([]string{"serve", "--data-dir", c.dataDir}, c.extraArgs...), c.opts.Args...)
	cmd := exec.Command(c.opts.Binary, args...)
	cmd.Stderr = c.log
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("start the test cluster: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("start the test cluster: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the test cluster %s: %w", c.opts.Binary, err)
	}
	exited := make(chan struct{})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var kubeconfig string
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(c.log, line)
			if path, ok := strings.CutPrefix(line, "kubeconfig: "); ok {
				kubeconfig = path
			}
			if line == "ready" {
				ready <- kubeconfig
			}
		}
		_, _ = io.Copy(c.log, stdout)
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case path := <-ready:
		c.mu.Lock()
		c.proc, c.stdin, c.exited = cmd, stdin, exited
		c.startDur = time.Since(start)
		c.kubeconfig = path
		c.mu.Unlock()
		return nil
	case <-exited:
		return fmt.Errorf("start the test cluster: the helper exited with %v before it was ready; its last log lines:\n%s", cmd.ProcessState, c.tail.String())
	case <-ctx.Done():
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("start the test cluster: not ready after %s: %w; its last log lines:\n%s", time.Since(start).Round(time.Second), ctx.Err(), c.tail.String())
	}
}

// halt stops the helper: closing stdin asks it to shut down; it is killed if
// it takes longer than 20 seconds.
func (c *Cluster) halt() error {
	c.mu.Lock()
	proc, stdin, exited := c.proc, c.stdin, c.exited
	c.proc = nil
	c.mu.Unlock()
	if proc == nil {
		return nil
	}
	_ = stdin.Close()
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = proc.Process.Kill()
		<-exited
		return errors.New("stop the test cluster: it ignored stdin closing for 20s and was killed; check its log")
	}
	return nil
}

// Stop stops the fake nodes and the helper and removes a temporary data
// directory. It is safe to call more than once.
func (c *Cluster) Stop() error {
	if c.stopNodes != nil {
		c.stopNodes()
		<-c.nodesDone
		c.stopNodes = nil
	}
	err := c.halt()
	c.cleanup()
	return err
}

// startKubelet starts the fake kubelet and has the API server trust its
// certificate and reach nodes by InternalIP (its default prefers the
// Hostname address, which names no host here).
func (c *Cluster) startKubelet() error {
	opts := c.opts.Kubelet
	opts.Pod = func(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
		cs := c.kubeletClient.Load()
		if cs == nil {
			return nil, errors.New("the test cluster is not ready yet")
		}
		return cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(c.log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if opts.Logs == nil {
		opts.Logs = fakekubelet.AppLogs(c.apps.Load)
	}
	k, err := fakekubelet.Start(opts)
	if err != nil {
		return err
	}
	ca := filepath.Join(c.dataDir, "fake-kubelet-ca.crt")
	if err := os.WriteFile(ca, k.CACertPEM(), 0o644); err != nil {
		k.Close()
		return fmt.Errorf("write the fake kubelet's certificate: %w", err)
	}
	c.kubelet = k
	c.extraArgs = append(c.extraArgs,
		"--apiserver-arg=--kubelet-certificate-authority="+ca,
		"--apiserver-arg=--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
	)
	return nil
}

// KubeletURL is the fake kubelet's address, or "" when there is none.
func (c *Cluster) KubeletURL() string {
	if c.kubelet == nil {
		return ""
	}
	return c.kubelet.URL()
}

func (c *Cluster) cleanup() {
	if c.kubelet != nil {
		_ = c.kubelet.Close()
	}
	if c.logFile != nil {
		c.logFile.Close()
		c.logFile = nil
	}
	if c.removeDir {
		os.RemoveAll(c.dataDir)
		c.removeDir = false
	}
}

// Restart stops the helper process and starts it again on the same data
// directory: same port, certificates and stored objects. Clients and the
// fake nodes reconnect by themselves. It fails t if the cluster does not
// come back.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	c.Outage(t, 0)
}

// Outage takes the API server away for at least d, then restarts it as
// Restart does: a fault of a given length (longer than a lease, say), not a
// wait for anything.
func (c *Cluster) Outage(t testing.TB, d time.Duration) {
	t.Helper()
	if c == nil {
		t.Skip("no test cluster (-short)")
	}
	// The shared fake nodes start again with the API server: informers that
	// lost it back off for up to 30 s, and after two restarts in a row the
	// nodes would stay blind for longer than a rollout waits (kubelets come
	// back on their own; what is tested here is our code, not theirs).
	nodes := c.stopNodes != nil
	if nodes {
		c.stopNodes()
		<-c.nodesDone
	}
	stopped := time.Now()
	if err := c.halt(); err != nil {
		t.Fatal(err)
	}
	down := time.Since(stopped)
	<-time.After(d - down)
	if err := c.launch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if nodes {
		c.startNodes()
	}
	t.Logf("test cluster restarted: stopped in %s, ready again in %s", down.Round(time.Millisecond), c.StartupDuration().Round(time.Millisecond))
}

// Namespace creates a namespace for t, named after the test, that enforces
// the "restricted" Pod Security Standard (LabelEnforce), waits for its
// default ServiceAccount (pods need it), and deletes it when t ends. Without
// a cluster (-short) it skips t.
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	return c.namespace(t, nil)
}

// The Pod Security Standard levels a test namespace can enforce.
const (
	// Restricted is every test namespace's level, unless a test asks for
	// another.
	Restricted = "restricted"
	// Privileged checks nothing, as in a namespace without the label (GKE's
	// default namespace, where the old pipeline's pods run as root).
	Privileged = "privileged"
)

// NamespaceEnforcing is Namespace enforcing level instead of Restricted, for
// a test that plays pods a hardened namespace would refuse.
func (c *Cluster) NamespaceEnforcing(t testing.TB, level string) string {
	t.Helper()
	return c.namespace(t, map[string]string{LabelEnforce: level})
}

// NamespaceWithNodes is Namespace with a fake node pool of its own: nodes
// that take only this namespace's pods, as opts describes them (timing, time
// scale, capacity, behavior), while the cluster's shared fake nodes leave
// the namespace alone. opts.Config, Namespace and Log are the cluster's, and
// so is opts.Apps unless set. The nodes are registered when it returns, and
// stopped and deleted when t ends.
func (c *Cluster) NamespaceWithNodes(t testing.TB, opts fakenode.Options) string {
	t.Helper()
	return c.NamespaceWithNodesEnforcing(t, Restricted, opts)
}

// NamespaceWithNodesEnforcing is NamespaceWithNodes enforcing level instead
// of Restricted.
func (c *Cluster) NamespaceWithNodesEnforcing(t testing.TB, level string, opts fakenode.Options) string {
	t.Helper()
	name := c.namespace(t, map[string]string{fakenode.LabelPool: "pending", LabelEnforce: level})
	ctx, cancel := context.WithCancel(context.Background())
	opts.Config, opts.Namespace = c.config, name
	if opts.Apps == nil {
		opts.Apps = c.apps.Load()
	}
	opts.Log = slog.New(slog.NewTextHandler(c.log, &slog.HandlerOptions{Level: slog.LevelInfo})).With("pool", name)
	nodes, err := fakenode.Start(ctx, opts)
	if err != nil {
		cancel()
		t.Fatalf("start the fake node pool of namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		// Pods go with their nodes, at once, as when a node pool is
		// deleted; the namespace's own deletion follows.
		_ = c.client.CoreV1().Pods(name).DeleteCollection(context.Background(),
			metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, metav1.ListOptions{})
		cancel()
		nodes.Wait()
	})
	return name
}

// LabelEnforce is the namespace label of the API server's PodSecurity
// admission that refuses pods breaking a Pod Security Standard. Every test
// namespace sets it to "restricted", the strictest level, so every pod a test
// makes, and every pod the chart renders, must meet it (see Restrict).
const LabelEnforce = "pod-security.kubernetes.io/enforce"

// Restrict makes spec meet the "restricted" Pod Security Standard that every
// test namespace enforces, for pods a test writes by hand: it runs as
// non-root with the runtime's default seccomp profile, and each container
// drops every capability and cannot escalate privileges.
func Restrict(spec *corev1.PodSpec) {
	if spec.SecurityContext == nil {
		spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	spec.SecurityContext.RunAsNonRoot = new(true)
	spec.SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			if cs[i].SecurityContext == nil {
				cs[i].SecurityContext = &corev1.SecurityContext{}
			}
			cs[i].SecurityContext.AllowPrivilegeEscalation = new(false)
			cs[i].SecurityContext.Capabilities = &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}
		}
	}
}

// namespace creates t's namespace with extra labels; a pool label is set
// from the start, so the shared fake nodes never see the namespace without,
// and so is LabelEnforce, so no pod is ever admitted without the check.
func (c *Cluster) namespace(t testing.TB, extra map[string]string) string {
	t.Helper()
	if c == nil {
		t.Skip("no test cluster (-short)")
	}
	name := namespaceName(t.Name())
	labels := map[string]string{"testcluster.ringg.dev/test": "true", LabelEnforce: Restricted}
	for k, v := range extra {
		if k == fakenode.LabelPool {
			v = name
		}
		labels[k] = v
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := c.client.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		err := c.client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	// Pods are refused until the controller-manager has created the
	// namespace's default ServiceAccount, as on a fresh real cluster. The
	// first namespace of a package also waits for the controller-manager to
	// start, which takes 15 s and more on a busy 2-core machine.
	const saWait = 90 * time.Second
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, saWait, true, func(ctx context.Context) (bool, error) {
		_, err := c.client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("namespace %s has no default service account after %s: is kube-controller-manager running? see %s", name, saWait, filepath.Join(c.dataDir, "testcluster.log"))
	}
	return name
}

var notDNS = regexp.MustCompile(`[^a-z0-9]+`)

// namespaceName turns a test name into a DNS label with a random suffix.
func namespaceName(test string) string {
	base := strings.Trim(notDNS.ReplaceAllString(strings.ToLower(test), "-"), "-")
	if len(base) > 50 {
		base = strings.TrimRight(base[:50], "-")
	}
	if base == "" {
		base = "test"
	}
	return base + "-" + strings.ToLower(rand.Text()[:5])
}

// KubeconfigPath is the admin kubeconfig file (client certificate embedded).
func (c *Cluster) KubeconfigPath() string { return c.kubeconfig }

// Kubeconfig is the content of the admin kubeconfig.
func (c *Cluster) Kubeconfig() []byte { return bytes.Clone(c.raw) }

// RESTConfig returns a copy of the admin config. Requests made through it
// are counted by Requests.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.config) }

// Client is an admin clientset.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// DataDir is where the helper keeps etcd data, certificates and ports.
func (c *Cluster) DataDir() string { return c.dataDir }

// Requests counts the requests sent through Client and RESTConfig so far
// (fake nodes included, Helm and other kubeconfig users not).
func (c *Cluster) Requests() int64 { return c.requests.Load() }

// StartupDuration is how long the last start or restart took from launching
// the helper to its ready line.
func (c *Cluster) StartupDuration() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.startDur
}

// RSS is the resident memory of the helper and its children (etcd, API
// server, controller-manager) in bytes, read from /proc (Linux only).
func (c *Cluster) RSS() (int64, error) {
	c.mu.Lock()
	proc := c.proc
	c.mu.Unlock()
	if proc == nil {
		return 0, errors.New("measure the test cluster's memory: it is not running")
	}
	return treeRSS(proc.Process.Pid)
}

func treeRSS(pid int) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("measure memory of process %d: %w", pid, err)
	}
	var total int64
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				kb, _ := strconv.ParseInt(fields[0], 10, 64)
				total += kb << 10
			}
		}
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, task := range tasks {
		data, err := os.ReadFile(task)
		if err != nil {
			continue
		}
		for _, child := range strings.Fields(string(data)) {
			cpid, err := strconv.Atoi(child)
			if err != nil {
				continue
			}
			if n, err := treeRSS(cpid); err == nil {
				total += n
			}
		}
	}
	return total, nil
}

type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.n.Add(1)
	return t.next.RoundTrip(req)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
