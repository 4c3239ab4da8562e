package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"

	"github.com/ringg/ringg-ci/tools/testcluster/controlplane"
)

// serveOptions are the flags of `testcluster serve`.
type serveOptions struct {
	dataDir          string
	port             int
	bindAddress      string
	advertiseAddress string
	tlsSANs          []string
	pkiSeed          string
	serviceCIDR      string
	controllerMgr    bool
	watchStdin       bool
	verbosity        int
	apiserverArgs    []string
	cmArgs           []string
	readyTimeout     time.Duration
	shutdownGrace    time.Duration
}

func parseServe(args []string, stderr io.Writer) (serveOptions, error) {
	o := serveOptions{}
	fs := flag.NewFlagSet("testcluster serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.dataDir, "data-dir", "", "directory for etcd data, certificates, state.json and kubeconfig (required; reuse it to restart the same cluster)")
	fs.IntVar(&o.port, "port", 0, "API server port (default: the port of the last start with this data dir, else a free one)")
	fs.StringVar(&o.bindAddress, "bind-address", "127.0.0.1", "address the API server listens on (0.0.0.0 inside a container service)")
	fs.StringVar(&o.advertiseAddress, "advertise-address", "127.0.0.1", "address the API server advertises")
	fs.Func("tls-san", "extra DNS name or IP for the serving certificate (repeatable), e.g. a service alias", func(s string) error {
		o.tlsSANs = append(o.tlsSANs, s)
		return nil
	})
	fs.StringVar(&o.pkiSeed, "pki-seed", "", "derive the CA, service account and admin keys from this seed (throwaway clusters only)")
	fs.StringVar(&o.serviceCIDR, "service-cidr", "10.96.0.0/16", "service cluster IP range")
	fs.BoolVar(&o.controllerMgr, "controller-manager", true, "run kube-controller-manager as a child process")
	fs.BoolVar(&o.watchStdin, "watch-stdin", true, "exit when stdin reaches EOF (the parent died); turn off when stdin is /dev/null")
	fs.IntVar(&o.verbosity, "v", 0, "log verbosity of the API server and controller-manager")
	fs.Func("apiserver-arg", "extra kube-apiserver flag, e.g. --apiserver-arg=--audit-log-path=- (repeatable)", func(s string) error {
		o.apiserverArgs = append(o.apiserverArgs, s)
		return nil
	})
	fs.Func("controller-manager-arg", "extra kube-controller-manager flag (repeatable)", func(s string) error {
		o.cmArgs = append(o.cmArgs, s)
		return nil
	})
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 2*time.Minute, "give up when the API server is not ready after this long")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace", time.Second, "time the API server and etcd each get to stop cleanly before the process exits")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.dataDir == "" {
		return o, errors.New("--data-dir is required; pass a directory to keep the cluster in")
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q; every option is a flag", fs.Args())
	}
	dir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return o, fmt.Errorf("resolve --data-dir: %w", err)
	}
	o.dataDir = dir
	return o, nil
}

// apiServer is how the API server runs for these options and state.
func (o serveOptions) apiServer(st state) controlplane.APIServer {
	return controlplane.APIServer{
		EtcdServers:      "http://127.0.0.1:" + strconv.Itoa(st.EtcdClientPort),
		BindAddress:      o.bindAddress,
		AdvertiseAddress: o.advertiseAddress,
		Port:             st.Port,
		ServiceCIDR:      o.serviceCIDR,
		Names:            o.tlsSANs,
		Verbosity:        o.verbosity,
	}
}

func serve(args []string, stdout, stderr io.Writer) int {
	o, err := parseServe(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "testcluster serve: %v\n", err)
		return 2
	}
	if err := run(o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "testcluster serve: %v\n", err)
		return 1
	}
	return 0
}

func run(o serveOptions, stdout, stderr io.Writer) error {
	// Listen before the API server does so a signal during start-up still
	// shuts down in order.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	stop := make(chan string, 4)
	go func() { stop <- "signal " + (<-signals).String() }()
	if o.watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			stop <- "stdin closed"
		}()
	}

	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	st, err := loadState(o.dataDir, o.bindAddress, o.port)
	if err != nil {
		return err
	}
	api := o.apiServer(st)
	layout := controlplane.Layout{DataDir: o.dataDir}
	p, err := layout.Prepare(api, []byte(o.pkiSeed))
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(o.dataDir, "kubeconfig")
	if err := p.WriteKubeconfig(kubeconfig, api.ClientURL(), controlplane.AdminUser); err != nil {
		return err
	}

	etcd, err := startEtcd(o.dataDir, st)
	if err != nil {
		return err
	}

	apiDone := make(chan error, 1)
	go func() {
		cmd := apiserver.NewAPIServerCommand()
		cmd.SetArgs(append(api.Flags(p), o.apiserverArgs...))
		apiDone <- cli.RunNoErrOutput(cmd)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), o.readyTimeout)
	defer cancel()
	if err := api.WaitReady(ctx, p, startAborted(apiDone, stop)); err != nil {
		shutdownAPIServer(apiDone, o.shutdownGrace)
		closeEtcd(etcd, o.shutdownGrace)
		return err
	}

	var child *exec.Cmd
	var childStdin io.WriteCloser
	childDone := make(chan error, 1)
	if o.controllerMgr {
		child, childStdin, err = startControllerManager(append(controlplane.ControllerManagerFlags(layout.ControllerManagerKubeconfig(), p, o.verbosity), o.cmArgs...), stderr)
		if err != nil {
			shutdownAPIServer(apiDone, o.shutdownGrace)
			closeEtcd(etcd, o.shutdownGrace)
			return err
		}
		go func() { childDone <- child.Wait() }()
	}
	fmt.Fprintf(stdout, "kubeconfig: %s\n", kubeconfig)
	fmt.Fprintln(stdout, "ready")

	var result error
	select {
	case why := <-stop:
		fmt.Fprintf(stderr, "testcluster: stopping: %s\n", why)
	case err := <-apiDone:
		apiDone <- err
		result = fmt.Errorf("kube-apiserver stopped: %v; see the log above", err)
	case err := <-childDone:
		childDone <- err
		result = fmt.Errorf("kube-controller-manager exited: %v; see the log above", err)
	}
	begin := time.Now()
	if child != nil {
		stopChild(child, childStdin, childDone)
		fmt.Fprintf(stderr, "testcluster: kube-controller-manager stopped after %s\n", time.Since(begin).Round(time.Millisecond))
	}
	shutdownAPIServer(apiDone, o.shutdownGrace)
	closeEtcd(etcd, o.shutdownGrace)
	fmt.Fprintf(stderr, "testcluster: stopped after %s\n", time.Since(begin).Round(time.Millisecond))
	return result
}

func startEtcd(dataDir string, st state) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "testcluster"
	cfg.Dir = filepath.Join(dataDir, "etcd")
	client := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(st.EtcdClientPort)}
	peer := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(st.EtcdPeerPort)}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ListenMetricsUrls = nil
	// A test cluster survives process exits (the page cache keeps the
	// writes), not machine crashes; fsync would dominate every write.
	cfg.UnsafeNoFsync = true
	cfg.LogLevel = "error"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start etcd in %s: %w; is another testcluster using this data dir?", cfg.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("start etcd: %w", err)
	case <-time.After(time.Minute):
		e.Close()
		return nil, errors.New("start etcd: not ready after a minute; see the log above")
	}
}

// startAborted says why a start ends before the API server is ready: it
// stopped, or a signal or stdin EOF came (and which).
func startAborted(apiDone chan error, stop <-chan string) func() error {
	return func() error {
		select {
		case err := <-apiDone:
			apiDone <- err
			return fmt.Errorf("kube-apiserver stopped before it was ready: %v; see the log above", err)
		case why := <-stop:
			return fmt.Errorf("stopped before the API server was ready: %s", why)
		default:
			return nil
		}
	}
}

// shutdownAPIServer triggers the API server's own signal handler, which owns
// its shutdown context, and gives it grace to drain. Open watches keep it
// draining for much longer; cutting it short loses nothing, as every
// acknowledged write is already in etcd.
func shutdownAPIServer(apiDone chan error, grace time.Duration) {
	select {
	case err := <-apiDone:
		apiDone <- err
		return
	default:
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case <-apiDone:
	case <-time.After(grace):
	}
}

// closeEtcd stops etcd, waiting at most grace: its write-ahead log already
// holds every acknowledged write, so exiting without a clean close keeps the
// data (the kernel has it; only a machine crash could lose it).
func closeEtcd(e *embed.Etcd, grace time.Duration) {
	done := make(chan struct{})
	go func() {
		e.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
	}
}
