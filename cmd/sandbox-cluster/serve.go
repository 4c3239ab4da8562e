package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ringg/ringg-ci/testcluster/fakenode"
)

// Defaults of serve: the ports and the alias the Dagger module uses.
const (
	DefaultAPIPort   = 6443
	DefaultReadyPort = 6444
	DefaultAlias     = "kube"
	// EnvPKISeed names the environment variable holding the PKI seed. It is
	// read from the environment, not a flag, so it stays out of argv and
	// Dagger's logs.
	EnvPKISeed = "SANDBOX_PKI_SEED"
)

// serveOptions configure serve.
type serveOptions struct {
	// Binary is the testcluster helper.
	Binary string
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
	// PKISeed, when set, derives the cluster's keys (testcluster --pki-seed).
	PKISeed string
	// Architectures are the fake nodes' architectures; nil means fakenode's
	// default (amd64 and arm64).
	Architectures []string
	// ReadyTimeout bounds the start, from launching the helper to the ready port.
	ReadyTimeout time.Duration
	// StopTimeout bounds the child's shutdown before it is killed.
	StopTimeout time.Duration
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

func parseServe(args []string, getenv func(string) string, stderr io.Writer) (serveOptions, error) {
	o := serveOptions{PKISeed: getenv(EnvPKISeed), StopTimeout: 20 * time.Second}
	fs := flag.NewFlagSet("sandbox-cluster serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Binary, "testcluster", "testcluster", "the testcluster helper binary (built from tools/testcluster)")
	fs.StringVar(&o.DataDir, "data-dir", "", "directory for the cluster's state (default: a temporary directory removed on exit)")
	fs.StringVar(&o.BindAddress, "bind-address", "0.0.0.0", "address the API server and the ready port listen on")
	fs.IntVar(&o.APIPort, "api-port", DefaultAPIPort, "API server port")
	fs.IntVar(&o.ReadyPort, "ready-port", DefaultReadyPort, "port opened once the cluster and its fake nodes are ready; serves GET /kubeconfig")
	fs.StringVar(&o.Alias, "alias", DefaultAlias, "host name clients reach the API server by (the Dagger service binding alias)")
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

// childArgs are the flags of `testcluster serve` for these options.
func (o serveOptions) childArgs(dataDir string) []string {
	args := []string{
		"serve",
		"--data-dir", dataDir,
		"--port", strconv.Itoa(o.APIPort),
		"--bind-address", o.BindAddress,
		"--tls-san", o.Alias,
		"--controller-manager=true",
		// stdin is a pipe from this process: the helper stops when it
		// closes, so it cannot outlive us.
		"--watch-stdin=true",
	}
	if o.PKISeed != "" {
		args = append(args, "--pki-seed", o.PKISeed)
	}
	return args
}

// serverURL is how clients reach the API server through the alias.
func (o serveOptions) serverURL() string {
	return "https://" + net.JoinHostPort(o.Alias, strconv.Itoa(o.APIPort))
}

// child is the running testcluster helper.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed when it has exited
	err   error         // its exit status, set before done closes
}

// serve runs the cluster until ctx ends or the helper exits.
func serve(ctx context.Context, o serveOptions, stdout, stderr io.Writer) error {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 3 * time.Minute
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 20 * time.Second
	}
	dataDir := o.DataDir
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "sandbox-cluster-")
		if err != nil {
			return fmt.Errorf("create a data directory: %w", err)
		}
		defer os.RemoveAll(dir)
		dataDir = dir
	}
	start := time.Now()
	c, ready, err := startChild(o.Binary, o.childArgs(dataDir), stdout, stderr)
	if err != nil {
		return err
	}
	defer c.stop(o.StopTimeout)

	startCtx, cancel := context.WithTimeout(ctx, o.ReadyTimeout)
	defer cancel()
	var kubeconfigPath string
	select {
	case kubeconfigPath = <-ready:
	case <-c.done:
		return fmt.Errorf("testcluster exited before it was ready: %v; see its log above", c.err)
	case <-startCtx.Done():
		if ctx.Err() != nil {
			return nil // stopped by a signal while starting
		}
		return fmt.Errorf("testcluster not ready after %s; see its log above", o.ReadyTimeout)
	}
	log.Info("API server ready", "after", time.Since(start).Round(time.Millisecond))

	cfg, served, err := loadKubeconfig(kubeconfigPath, o.serverURL(), o.Alias)
	if err != nil {
		return err
	}
	if err := waitReadyz(startCtx, cfg, c.done); err != nil {
		return err
	}

	nodesCtx, stopNodes := context.WithCancel(context.Background())
	nodesDone := make(chan error, 1)
	go func() {
		nodesDone <- fakenode.Run(nodesCtx, fakenode.Options{Config: cfg, Architectures: o.Architectures, Log: log})
	}()
	defer func() {
		stopNodes()
		<-nodesDone
	}()
	nodes, err := waitNodes(startCtx, cfg, len(architectures(o.Architectures)), nodesDone, c.done)
	if err != nil {
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
	fmt.Fprintf(stdout, "sandbox-cluster: pods are made Ready by a fake node (%s): no container really runs and no image is pulled\n",
		strings.Join(nodes, ", "))

	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "sandbox-cluster: stopping")
		return nil
	case <-c.done:
		return fmt.Errorf("testcluster exited: %v; see its log above", c.err)
	case err := <-nodesDone:
		nodesDone <- err
		return fmt.Errorf("fake nodes stopped: %v", err)
	case err := <-srvDone:
		return fmt.Errorf("ready port stopped serving: %w", err)
	}
}

// startChild starts the helper and returns a channel that receives the path
// of its kubeconfig once it prints its ready line.
func startChild(binary string, args []string, stdout, stderr io.Writer) (*child, <-chan string, error) {
	cmd := exec.Command(binary, args...)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("start testcluster: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("start testcluster: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start testcluster %s: %w; build it from tools/testcluster or pass --testcluster", binary, err)
	}
	c := &child{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	ready := make(chan string, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		sc := bufio.NewScanner(out)
		var kubeconfig string
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintf(stdout, "testcluster: %s\n", line)
			if path, ok := strings.CutPrefix(line, "kubeconfig: "); ok {
				kubeconfig = path
			}
			if line == "ready" && kubeconfig != "" {
				select {
				case ready <- kubeconfig:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, out)
	})
	go func() {
		wg.Wait() // Wait closes the pipe: read it all first
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, ready, nil
}

// stop asks the helper to stop (SIGTERM and closing its stdin) and kills it
// after timeout.
func (c *child) stop(timeout time.Duration) {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	_ = c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// loadKubeconfig reads the helper's admin kubeconfig and returns a client
// config for this process (loopback, as written) and the copy to serve, whose
// clusters point at server with the certificate checked against alias.
func loadKubeconfig(path, server, alias string) (*rest.Config, []byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read the cluster's kubeconfig: %w", err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("load the cluster's kubeconfig %s: %w", path, err)
	}
	served, err := rewriteKubeconfig(raw, server, alias)
	if err != nil {
		return nil, nil, err
	}
	return cfg, served, nil
}

// waitReadyz polls /readyz until it answers ok.
func waitReadyz(ctx context.Context, cfg *rest.Config, childDone <-chan struct{}) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("create a client for the cluster: %w", err)
	}
	last := "no answer yet"
	for {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil {
			return nil
		}
		last = fmt.Sprintf("%v %s", err, strings.TrimSpace(string(body)))
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for /readyz: %w (last answer: %s)", ctx.Err(), last)
		case <-childDone:
			return errors.New("testcluster exited while waiting for /readyz; see its log above")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func architectures(archs []string) []string {
	if len(archs) == 0 {
		return []string{"amd64", "arm64"}
	}
	return archs
}

// waitNodes waits until want fake nodes are registered and Ready, and
// returns their names.
func waitNodes(ctx context.Context, cfg *rest.Config, want int, nodesDone <-chan error, childDone <-chan struct{}) ([]string, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create a client for the cluster: %w", err)
	}
	for {
		list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: fakenode.LabelFake + "=true"})
		if err == nil {
			var names []string
			for _, n := range list.Items {
				for _, c := range n.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
						names = append(names, n.Name)
					}
				}
			}
			if len(names) >= want {
				return names, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the fake nodes: %w; see the log above", ctx.Err())
		case err := <-nodesDone:
			return nil, fmt.Errorf("fake nodes stopped before they were ready: %v", err)
		case <-childDone:
			return nil, errors.New("testcluster exited while waiting for the fake nodes; see its log above")
		case <-time.After(100 * time.Millisecond):
		}
	}
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
