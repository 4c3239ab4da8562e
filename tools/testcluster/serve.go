package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/component-base/cli"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
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

// clientHost is where clients in this process and the child reach the API
// server: the bind address, or loopback when it listens everywhere.
func (o serveOptions) clientHost() string {
	if ip := net.ParseIP(o.bindAddress); ip == nil || ip.IsUnspecified() {
		return "127.0.0.1"
	}
	return o.bindAddress
}

func (o serveOptions) sans() []string {
	sans := []string{
		"127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local", o.clientHost(), o.advertiseAddress,
	}
	if ip := firstServiceIP(o.serviceCIDR); ip != "" {
		sans = append(sans, ip)
	}
	return append(sans, o.tlsSANs...)
}

func firstServiceIP(cidr string) string {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return ""
	}
	ip := n.IP.To4()
	if ip == nil {
		return ""
	}
	ip[3]++
	return ip.String()
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
	p := pki{dir: filepath.Join(o.dataDir, "pki")}
	if err := p.ensure(keySource{seed: []byte(o.pkiSeed)}, o.sans()); err != nil {
		return fmt.Errorf("prepare certificates: %w", err)
	}
	server := "https://" + net.JoinHostPort(o.clientHost(), strconv.Itoa(st.Port))
	kubeconfig := filepath.Join(o.dataDir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, server, p, adminUser); err != nil {
		return err
	}
	cmKubeconfig := filepath.Join(o.dataDir, "controller-manager.kubeconfig")
	if err := writeKubeconfig(cmKubeconfig, server, p, controllerManager); err != nil {
		return err
	}

	etcd, err := startEtcd(o.dataDir, st)
	if err != nil {
		return err
	}

	apiDone := make(chan error, 1)
	go func() {
		cmd := apiserver.NewAPIServerCommand()
		cmd.SetArgs(o.apiserverFlags(st, p))
		apiDone <- cli.RunNoErrOutput(cmd)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), o.readyTimeout)
	defer cancel()
	if err := waitReady(ctx, server, p, lifecycle{apiDone: apiDone, stop: stop}); err != nil {
		shutdownAPIServer(apiDone, o.shutdownGrace)
		closeEtcd(etcd, o.shutdownGrace)
		return err
	}

	var child *exec.Cmd
	var childStdin io.WriteCloser
	childDone := make(chan error, 1)
	if o.controllerMgr {
		child, childStdin, err = startControllerManager(o.controllerManagerFlags(cmKubeconfig, p), stderr)
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

func (o serveOptions) apiserverFlags(st state, p pki) []string {
	return append([]string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(st.EtcdClientPort),
		"--bind-address=" + o.bindAddress,
		"--advertise-address=" + o.advertiseAddress,
		"--secure-port=" + strconv.Itoa(st.Port),
		// The default reconciler refuses loopback endpoint addresses.
		"--endpoint-reconciler-type=none",
		"--authorization-mode=RBAC",
		"--client-ca-file=" + p.CAFile(),
		"--tls-cert-file=" + p.servingCert(),
		"--tls-private-key-file=" + p.servingKey(),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.serviceAccountPub(),
		"--service-account-signing-key-file=" + p.serviceAccountKey(),
		"--service-cluster-ip-range=" + o.serviceCIDR,
		"--cert-dir=" + p.dir,
		"--allow-privileged=true",
		// Tests issue bursts of requests; flow control only adds queueing.
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=" + strconv.Itoa(o.verbosity),
	}, o.apiserverArgs...)
}

func (o serveOptions) controllerManagerFlags(kubeconfig string, p pki) []string {
	return append([]string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		// Fake nodes post no heartbeats; the lifecycle controller would
		// taint them and evict their pods.
		"--controllers=*,-node-lifecycle-controller",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + p.serviceAccountKey(),
		"--root-ca-file=" + p.CAFile(),
		"--cluster-signing-cert-file=" + p.CAFile(),
		"--cluster-signing-key-file=" + p.path("ca.key"),
		"--v=" + strconv.Itoa(o.verbosity),
	}, o.cmArgs...)
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

// lifecycle carries the events that end a wait early.
type lifecycle struct {
	apiDone chan error    // the API server returned
	stop    <-chan string // a signal or stdin EOF, and which
}

// waitReady polls /readyz as the admin until it answers ok.
func waitReady(ctx context.Context, server string, p pki, l lifecycle) error {
	tlsConfig, err := clientTLS(p, adminUser)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := "no answer yet"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/readyz", nil)
		if err != nil {
			return fmt.Errorf("wait for the API server: %w", err)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		select {
		case err := <-l.apiDone:
			l.apiDone <- err
			return fmt.Errorf("kube-apiserver stopped before it was ready: %v; see the log above", err)
		case why := <-l.stop:
			return fmt.Errorf("stopped before the API server was ready: %s", why)
		case <-ctx.Done():
			return fmt.Errorf("wait for %s/readyz: %w (last answer: %s); see the log above", server, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

func clientTLS(p pki, user string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(p.clientCert(user), p.clientKey(user))
	if err != nil {
		return nil, fmt.Errorf("load client certificate for %s: %w", user, err)
	}
	caPEM, err := os.ReadFile(p.CAFile())
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("read CA %s: no certificate found; delete the data directory to start afresh", p.CAFile())
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
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

func writeKubeconfig(file, server string, p pki, user string) error {
	ca, err := os.ReadFile(p.CAFile())
	if err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	cert, err := os.ReadFile(p.clientCert(user))
	if err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	key, err := os.ReadFile(p.clientKey(user))
	if err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	cfg := clientcmdapi.NewConfig()
	cluster := clientcmdapi.NewCluster()
	cluster.Server = server
	cluster.CertificateAuthorityData = ca
	auth := clientcmdapi.NewAuthInfo()
	auth.ClientCertificateData = cert
	auth.ClientKeyData = key
	kctx := clientcmdapi.NewContext()
	kctx.Cluster = "testcluster"
	kctx.AuthInfo = user
	kctx.Namespace = "default"
	cfg.Clusters["testcluster"] = cluster
	cfg.AuthInfos[user] = auth
	cfg.Contexts["testcluster"] = kctx
	cfg.CurrentContext = "testcluster"
	if err := clientcmd.WriteToFile(*cfg, file); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", file, err)
	}
	return nil
}
