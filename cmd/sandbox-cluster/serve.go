package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ringg/ringg-ci/testcluster/fakekubelet"
	"github.com/ringg/ringg-ci/testcluster/fakenode"
	"github.com/ringg/ringg-ci/testcluster/standin"
	"github.com/ringg/ringg-ci/tools/testcluster/controlplane"
)

// Defaults of serve: the ports and the alias the Dagger module uses.
const (
	DefaultAPIPort   = 6443
	DefaultReadyPort = 6444
	DefaultAlias     = "kube"
	// DefaultBinDir holds etcd, kube-apiserver and kube-controller-manager,
	// where the official images keep them.
	DefaultBinDir = "/usr/local/bin"
	// EnvPKISeed names the environment variable holding the PKI seed. It is
	// read from the environment, not a flag, so it stays out of argv and
	// Dagger's logs.
	EnvPKISeed = "SANDBOX_PKI_SEED"
)

// The control plane's binaries, by the names the official images give them.
const (
	binEtcd              = "etcd"
	binAPIServer         = "kube-apiserver"
	binControllerManager = "kube-controller-manager"
)

// serviceCIDR is the cluster's service IP range.
const serviceCIDR = "10.96.0.0/16"

// serveOptions configure serve.
type serveOptions struct {
	// BinDir holds etcd, kube-apiserver and kube-controller-manager.
	BinDir string
	// DataDir keeps the cluster's state; "" means a temporary directory
	// removed on exit.
	DataDir string
	// BindAddress is where the API server and the ready port listen.
	BindAddress string
	// APIPort and ReadyPort are the API server's and the ready signal's ports.
	APIPort, ReadyPort int
	// Alias is the host name clients use; it goes into the serving
	// certificate and the served kubeconfig.
	Alias string
	// PKISeed, when set, derives the cluster's CA and client keys, so that
	// whoever holds it can rebuild the admin credentials.
	PKISeed string
	// Architectures are the fake nodes' architectures; nil means fakenode's
	// default (amd64 and arm64).
	Architectures []string
	// Namespaces are created before the ready port opens, as a cluster's
	// administrator does before the first deploy.
	Namespaces []string
	// ImageRegistry, when set (host:port, plain HTTP), is the registry
	// whose images' ENV the fake nodes start the stand-in with, as a
	// kubelet applies an image's config.
	ImageRegistry string
	// Verbosity is the components' log level (--v).
	Verbosity int
	// ReadyTimeout bounds the start, from launching etcd to the ready port.
	ReadyTimeout time.Duration
	// StopTimeout bounds each component's shutdown before it is killed.
	StopTimeout time.Duration
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

func parseServe(args []string, getenv func(string) string, stderr io.Writer) (serveOptions, error) {
	o := serveOptions{PKISeed: getenv(EnvPKISeed), StopTimeout: 5 * time.Second}
	fs := flag.NewFlagSet("sandbox-cluster serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.BinDir, "bin-dir", DefaultBinDir, "directory holding etcd, kube-apiserver and kube-controller-manager")
	fs.StringVar(&o.DataDir, "data-dir", "", "directory for the cluster's state (default: a temporary directory removed on exit)")
	fs.StringVar(&o.BindAddress, "bind-address", "0.0.0.0", "address the API server and the ready port listen on")
	fs.IntVar(&o.APIPort, "api-port", DefaultAPIPort, "API server port")
	fs.IntVar(&o.ReadyPort, "ready-port", DefaultReadyPort, "port opened once the cluster and its fake nodes are ready; serves GET /kubeconfig")
	fs.StringVar(&o.Alias, "alias", DefaultAlias, "host name clients reach the API server by (the Dagger service binding alias)")
	fs.IntVar(&o.Verbosity, "v", 0, "log verbosity of kube-apiserver and kube-controller-manager")
	fs.StringVar(&o.ImageRegistry, "image-registry", "", "registry (host:port, plain HTTP) whose images' ENV the fake nodes give the stand-in, as a kubelet applies an image's config")
	fs.Func("namespace", "a namespace to create before the cluster counts as ready (repeatable)", func(ns string) error {
		o.Namespaces = append(o.Namespaces, ns)
		return nil
	})
	fs.DurationVar(&o.ReadyTimeout, "ready-timeout", 3*time.Minute, "give up when the cluster is not ready after this long")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q; every option is a flag", fs.Args())
	}
	if o.Alias == "" {
		return o, errors.New("--alias is empty; pass the host name clients use, e.g. kube")
	}
	return o, nil
}

// serverURL is how clients reach the API server through the alias.
func (o serveOptions) serverURL() string {
	return "https://" + net.JoinHostPort(o.Alias, strconv.Itoa(o.APIPort))
}

// layout is where one cluster keeps its files and which loopback ports
// etcd uses.
type layout struct {
	controlplane.Layout
	etcdClientPort, etcdPeerPort int
	// kubeletCA is the fake kubelet's certificate, which the API server
	// checks it against.
	kubeletCA string
}

// apiServer is how kube-apiserver runs in l.
func (o serveOptions) apiServer(l layout) controlplane.APIServer {
	return controlplane.APIServer{
		EtcdServers:      "http://127.0.0.1:" + strconv.Itoa(l.etcdClientPort),
		BindAddress:      o.BindAddress,
		AdvertiseAddress: "127.0.0.1",
		Port:             o.APIPort,
		ServiceCIDR:      serviceCIDR,
		Names:            []string{o.Alias},
		Verbosity:        o.Verbosity,
	}
}

// component is one process of the control plane.
type component struct {
	name, path string
	args       []string
}

// components are etcd, kube-apiserver and kube-controller-manager for l, in
// the order they start.
func (o serveOptions) components(l layout) []component {
	etcdClient := "http://127.0.0.1:" + strconv.Itoa(l.etcdClientPort)
	etcdPeer := "http://127.0.0.1:" + strconv.Itoa(l.etcdPeerPort)
	etcd := []string{
		"--name=sandbox",
		"--data-dir=" + filepath.Join(l.DataDir, "etcd"),
		"--listen-client-urls=" + etcdClient,
		"--advertise-client-urls=" + etcdClient,
		"--listen-peer-urls=" + etcdPeer,
		"--initial-advertise-peer-urls=" + etcdPeer,
		"--initial-cluster=sandbox=" + etcdPeer,
		// A throwaway cluster: fsync would dominate every write.
		"--unsafe-no-fsync=true",
		"--log-level=error",
	}
	p := l.PKI()
	apiserver := append(o.apiServer(l).Flags(p),
		// The fake kubelet answers pods/log and pods/portforward for every
		// fake node, whose InternalIP is 127.0.0.1 (their Hostname address
		// names no host).
		"--kubelet-certificate-authority="+l.kubeletCA,
		"--kubelet-preferred-address-types=InternalIP",
	)
	return []component{
		{name: binEtcd, path: filepath.Join(o.BinDir, binEtcd), args: etcd},
		{name: binAPIServer, path: filepath.Join(o.BinDir, binAPIServer), args: apiserver},
		{name: binControllerManager, path: filepath.Join(o.BinDir, binControllerManager),
			args: controlplane.ControllerManagerFlags(l.ControllerManagerKubeconfig(), p, o.Verbosity)},
	}
}

// serve runs the cluster until ctx ends or a component exits.
func serve(ctx context.Context, o serveOptions, stdout, stderr io.Writer) error {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 3 * time.Minute
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 5 * time.Second
	}
	start := time.Now()
	l := layout{Layout: controlplane.Layout{DataDir: o.DataDir}}
	if l.DataDir == "" {
		dir, err := os.MkdirTemp("", "sandbox-cluster-")
		if err != nil {
			return fmt.Errorf("create a data directory: %w", err)
		}
		defer os.RemoveAll(dir)
		l.DataDir = dir
	}
	var err error
	if l.etcdClientPort, err = controlplane.FreePort("127.0.0.1"); err != nil {
		return err
	}
	if l.etcdPeerPort, err = controlplane.FreePort("127.0.0.1"); err != nil {
		return err
	}
	adminConfig, served, err := o.preparePKI(l)
	if err != nil {
		return err
	}

	// The fake kubelet looks pods up once the API server answers; the
	// nodes and the kubelet play the stand-in chatbot in its pods (its own
	// start-up code, with each pod's environment).
	var kubeletClient atomic.Pointer[corev1client.CoreV1Client]
	var apps atomic.Pointer[fakenode.Apps]
	kubelet, err := fakekubelet.Start(fakekubelet.Options{
		Logs: fakekubelet.AppLogs(apps.Load),
		Pod: func(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
			c := kubeletClient.Load()
			if c == nil {
				return nil, errors.New("the API server is not ready yet")
			}
			return c.Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		},
		Log: log,
	})
	if err != nil {
		return err
	}
	defer kubelet.Close()
	l.kubeletCA = filepath.Join(l.DataDir, "fake-kubelet-ca.crt")
	if err := os.WriteFile(l.kubeletCA, kubelet.CACertPEM(), 0o644); err != nil {
		return fmt.Errorf("write the fake kubelet's certificate: %w", err)
	}

	startCtx, cancel := context.WithTimeout(ctx, o.ReadyTimeout)
	defer cancel()
	comps := o.components(l)
	procs := &processes{}
	defer procs.stop(o.StopTimeout)
	for _, c := range comps[:2] { // etcd and kube-apiserver
		if err := procs.start(c, stderr); err != nil {
			return err
		}
	}
	client, err := corev1client.NewForConfig(adminConfig)
	if err != nil {
		return fmt.Errorf("create a client for the cluster: %w", err)
	}
	if err := o.apiServer(l).WaitReady(startCtx, l.PKI(), procs.failedBefore); err != nil {
		if ctx.Err() != nil {
			return nil // stopped by a signal while starting
		}
		return err
	}
	log.Info("API server ready", "after", time.Since(start).Round(time.Millisecond))
	if err := procs.start(comps[2], stderr); err != nil {
		return err
	}
	kubeletClient.Store(client)
	appsClient, err := kubernetes.NewForConfig(adminConfig)
	if err != nil {
		return fmt.Errorf("create a client for the cluster: %w", err)
	}
	a := fakenode.NewApps(appsClient, standin.Play)
	if o.ImageRegistry != "" {
		a.ImageEnv = standin.RegistryEnv(func(r string) bool { return r == o.ImageRegistry })
	}
	apps.Store(a)

	nodesCtx, stopNodes := context.WithCancel(context.Background())
	nodesDone := make(chan error, 1)
	go func() {
		nodesDone <- fakenode.Run(nodesCtx, fakenode.Options{
			Config: adminConfig, Architectures: o.Architectures, Log: log, Apps: apps.Load(),
			Kubelet: &fakenode.KubeletEndpoint{Address: kubelet.Address(), Port: kubelet.Port()},
		})
	}()
	defer func() {
		stopNodes()
		<-nodesDone
	}()
	nodes, err := waitNodes(startCtx, client, len(architectures(o.Architectures)), nodesDone, procs)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	if err := createNamespaces(startCtx, client, o.Namespaces); err != nil {
		return err
	}

	listener, err := net.Listen("tcp", net.JoinHostPort(o.BindAddress, strconv.Itoa(o.ReadyPort)))
	if err != nil {
		return fmt.Errorf("open the ready port: %w; is another process using port %d?", err, o.ReadyPort)
	}
	srv := &http.Server{Handler: readyHandler(served), ReadHeaderTimeout: 10 * time.Second}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(listener) }()
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()

	fmt.Fprintf(stdout, "sandbox-cluster: ready in %s: API server %s, admin kubeconfig at http://%s/kubeconfig\n",
		time.Since(start).Round(time.Millisecond), o.serverURL(), net.JoinHostPort(o.Alias, strconv.Itoa(o.ReadyPort)))
	fmt.Fprintf(stdout, "sandbox-cluster: pods are made Ready by a fake node (%s) and their logs and port-forwards answered by a fake kubelet at %s: no container really runs and no image is pulled\n",
		strings.Join(nodes, ", "), kubelet.URL())

	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "sandbox-cluster: stopping")
		return nil
	case <-procs.failed():
		return procs.failure()
	case err := <-nodesDone:
		nodesDone <- err
		return fmt.Errorf("fake nodes stopped: %v", err)
	case err := <-srvDone:
		return fmt.Errorf("ready port stopped serving: %w", err)
	}
}

// preparePKI makes the cluster's certificates and the kubeconfig of the
// controller-manager in l, and returns this process's admin client config
// (over loopback) and the admin kubeconfig to serve (through the alias).
func (o serveOptions) preparePKI(l layout) (*rest.Config, []byte, error) {
	api := o.apiServer(l)
	p, err := l.Prepare(api, []byte(o.PKISeed))
	if err != nil {
		return nil, nil, err
	}
	raw, err := p.Kubeconfig(api.ClientURL(), controlplane.AdminUser)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("load the admin kubeconfig: %w", err)
	}
	// The fake kubelet looks up a pod for every log read and port-forward:
	// a kubelet's client limits, not client-go's default of 5 a second.
	cfg.QPS, cfg.Burst = 50, 100
	served, err := rewriteKubeconfig(raw, o.serverURL(), o.Alias)
	if err != nil {
		return nil, nil, err
	}
	return cfg, served, nil
}

func architectures(archs []string) []string {
	if len(archs) == 0 {
		return []string{"amd64", "arm64"}
	}
	return archs
}

// waitNodes waits until want fake nodes are registered and Ready, and
// returns their names.
func waitNodes(ctx context.Context, client corev1client.NodesGetter, want int, nodesDone <-chan error, procs *processes) ([]string, error) {
	var names []string
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		list, err := client.Nodes().List(ctx, metav1.ListOptions{LabelSelector: fakenode.LabelFake + "=true"})
		if err == nil {
			names = nil
			for _, n := range list.Items {
				for _, c := range n.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
						names = append(names, n.Name)
					}
				}
			}
			if len(names) >= want {
				return true, nil
			}
		}
		select {
		case err := <-nodesDone:
			return false, fmt.Errorf("fake nodes stopped before they were ready: %v", err)
		case <-procs.failed():
			return false, fmt.Errorf("while waiting for the fake nodes: %w", procs.failure())
		default:
			return false, nil
		}
	})
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("wait for the fake nodes: %w; see the log above", ctx.Err())
	}
	if err != nil {
		return nil, err
	}
	return names, nil
}

// createNamespaces creates the namespaces; one that exists is fine.
func createNamespaces(ctx context.Context, client corev1client.NamespacesGetter, names []string) error {
	for _, ns := range names {
		_, err := client.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", ns, err)
		}
	}
	return nil
}

// readyHandler serves the ready port: the kubeconfig and a health answer.
func readyHandler(kubeconfig []byte) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /kubeconfig", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(kubeconfig)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}
