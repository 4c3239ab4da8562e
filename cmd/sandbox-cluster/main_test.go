package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/ringg/ringg-ci/ci/kube"
	"github.com/ringg/ringg-ci/testcluster"
)

// testKubeconfig is a kubeconfig shaped like the helper's, with fake
// credentials.
func testKubeconfig(t *testing.T, server string) []byte {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cl := clientcmdapi.NewCluster()
	cl.Server = server
	cl.CertificateAuthorityData = []byte("fake-ca")
	user := clientcmdapi.NewAuthInfo()
	user.ClientCertificateData = []byte("fake-cert")
	user.ClientKeyData = []byte("fake-key")
	kctx := clientcmdapi.NewContext()
	kctx.Cluster, kctx.AuthInfo = "testcluster", "kubernetes-admin"
	cfg.Clusters["testcluster"] = cl
	cfg.AuthInfos["kubernetes-admin"] = user
	cfg.Contexts["testcluster"] = kctx
	cfg.CurrentContext = "testcluster"
	data, err := clientcmd.Write(*cfg)
	assert.NilError(t, err)
	return data
}

func TestRewriteKubeconfig(t *testing.T) {
	tests := []struct {
		name, original, server, serverName string
		wantServer, wantServerName         string
		wantErr                            string
	}{
		{
			name: "served copy points at the alias", original: "https://127.0.0.1:6443",
			server: "https://kube:6443", serverName: "kube",
			wantServer: "https://kube:6443", wantServerName: "kube",
		},
		{
			name: "endpoint keeps the alias as server name", original: "https://kube:6443",
			server:     "a1b2c3.dagger.local:6443",
			wantServer: "https://a1b2c3.dagger.local:6443", wantServerName: "kube",
		},
		{
			name: "explicit server name wins", original: "https://kube:6443",
			server: "10.87.0.4:6443", serverName: "other",
			wantServer: "https://10.87.0.4:6443", wantServerName: "other",
		},
		{
			name: "server name only", original: "https://127.0.0.1:6443",
			serverName: "kube",
			wantServer: "https://127.0.0.1:6443", wantServerName: "kube",
		},
		{
			name: "no change", original: "https://127.0.0.1:6443",
			wantServer: "https://127.0.0.1:6443",
		},
		{
			name: "bad server", original: "https://kube:6443", server: "no-port",
			wantErr: "neither host:port nor a URL",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := rewriteKubeconfig(testKubeconfig(t, tc.original), tc.server, tc.serverName)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				return
			}
			assert.NilError(t, err)
			cfg, err := clientcmd.Load(out)
			assert.NilError(t, err)
			cl := cfg.Clusters["testcluster"]
			assert.Equal(t, cl.Server, tc.wantServer)
			assert.Equal(t, cl.TLSServerName, tc.wantServerName)
			assert.Equal(t, string(cl.CertificateAuthorityData), "fake-ca", "the CA must be kept")
			assert.Check(t, !cl.InsecureSkipTLSVerify)
			assert.Equal(t, string(cfg.AuthInfos["kubernetes-admin"].ClientKeyData), "fake-key")
		})
	}
}

func TestRewriteKubeconfigRefusesInsecure(t *testing.T) {
	cfg, err := clientcmd.Load(testKubeconfig(t, "https://kube:6443"))
	assert.NilError(t, err)
	cfg.Clusters["testcluster"].InsecureSkipTLSVerify = true
	cfg.Clusters["testcluster"].CertificateAuthorityData = nil
	data, err := clientcmd.Write(*cfg)
	assert.NilError(t, err)
	_, err = rewriteKubeconfig(data, "10.0.0.1:6443", "")
	assert.ErrorContains(t, err, "skips TLS verification")
}

func TestParseServe(t *testing.T) {
	env := map[string]string{EnvPKISeed: "seed-from-env"}
	o, err := parseServe(nil, func(k string) string { return env[k] }, io.Discard)
	assert.NilError(t, err)
	assert.DeepEqual(t, o.childArgs("/data"), []string{
		"serve", "--data-dir", "/data", "--port", "6443", "--bind-address", "0.0.0.0",
		"--tls-san", "kube", "--controller-manager=true", "--watch-stdin=true", "--pki-seed", "seed-from-env",
	})
	assert.Equal(t, o.serverURL(), "https://kube:6443")

	o, err = parseServe([]string{"--alias", "k8s", "--api-port", "7443", "--bind-address", "127.0.0.1"}, func(string) string { return "" }, io.Discard)
	assert.NilError(t, err)
	assert.DeepEqual(t, o.childArgs("/d"), []string{
		"serve", "--data-dir", "/d", "--port", "7443", "--bind-address", "127.0.0.1",
		"--tls-san", "k8s", "--controller-manager=true", "--watch-stdin=true",
	})
}

func TestCLIExitCodes(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{name: "no command", args: nil, code: 2, stderr: "usage:"},
		{name: "unknown command", args: []string{"deploy"}, code: 2, stderr: `unknown command "deploy"`},
		{name: "help", args: []string{"serve", "-h"}, code: 0},
		{name: "kubeconfig needs out", args: []string{"kubeconfig"}, code: 2, stderr: "--out is required"},
		{name: "serve rejects arguments", args: []string{"serve", "extra"}, code: 2, stderr: "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := cli(t.Context(), tc.args, func(string) string { return "" }, io.Discard, &stderr)
			assert.Equal(t, code, tc.code, stderr.String())
			assert.Check(t, is.Contains(stderr.String(), tc.stderr))
		})
	}
}

func TestFetchKubeconfigRetriesUntilServed(t *testing.T) {
	kubeconfig := testKubeconfig(t, "https://kube:6443")
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(kubeconfig)
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "sub", "kubeconfig")
	err := fetchKubeconfig(t.Context(), fetchOptions{URL: srv.URL + "/kubeconfig", Out: out, Server: "endpoint.example:6443", Timeout: 10 * time.Second})
	assert.NilError(t, err)
	assert.Equal(t, calls.Load(), int32(3))
	info, err := os.Stat(out)
	assert.NilError(t, err)
	assert.Equal(t, info.Mode().Perm(), os.FileMode(0o600))
	cfg, err := clientcmd.LoadFromFile(out)
	assert.NilError(t, err)
	assert.Equal(t, cfg.Clusters["testcluster"].Server, "https://endpoint.example:6443")
	assert.Equal(t, cfg.Clusters["testcluster"].TLSServerName, "kube")
}

func TestFetchKubeconfigGivesUp(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusNotFound)
	}))
	defer srv.Close()
	err := fetchKubeconfig(t.Context(), fetchOptions{URL: srv.URL, Out: filepath.Join(t.TempDir(), "k"), Timeout: 600 * time.Millisecond})
	assert.ErrorContains(t, err, "404 Not Found")
	assert.ErrorContains(t, err, "is the sandbox-cluster service running")
}

func TestServeFailsWhenHelperExits(t *testing.T) {
	script := filepath.Join(t.TempDir(), "testcluster")
	assert.NilError(t, os.WriteFile(script, []byte("#!/bin/sh\necho 'kubeconfig: /nowhere'\nexit 3\n"), 0o755))
	var stdout bytes.Buffer
	err := serve(t.Context(), serveOptions{
		Binary: script, BindAddress: "127.0.0.1", APIPort: 1, ReadyPort: 1, Alias: "kube",
		ReadyTimeout: 30 * time.Second,
	}, &stdout, io.Discard)
	assert.ErrorContains(t, err, "exited before it was ready: exit status 3")
	assert.Check(t, is.Contains(stdout.String(), "testcluster: kubeconfig: /nowhere"))
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of serve.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// readyzOK asks the API server's /readyz, checking its certificate against
// the CA in dataDir and the alias.
func readyzOK(dataDir, addr, alias string) bool {
	ca, err := os.ReadFile(filepath.Join(dataDir, "pki", "ca.crt"))
	if err != nil {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return false
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: alias, MinVersion: tls.VersionTLS12},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + addr + "/readyz")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TestServe runs sandbox-cluster against the real helper on 127.0.0.1, as
// the Dagger service would on 0.0.0.0, and uses it as the module's function
// would: through an address other than the alias, with the certificate
// checked against the alias.
func TestServe(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no cluster")
	}
	var buildLog bytes.Buffer
	buildCtx, cancelBuild := context.WithTimeout(t.Context(), 30*time.Minute)
	bin, err := testcluster.Build(buildCtx, testcluster.BuildOptions{Log: &buildLog})
	cancelBuild()
	if err != nil {
		t.Skipf("skipping: the testcluster helper could not be built (%v); build log:\n%s", err, buildLog.String())
	}

	const alias = "kube"
	dataDir := t.TempDir()
	apiPort, readyPort := freePort(t), freePort(t)
	apiAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort))
	readyAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(readyPort))
	logFile, err := os.Create(filepath.Join(t.TempDir(), "sandbox-cluster.log"))
	assert.NilError(t, err)
	defer logFile.Close()
	stdout := &syncBuffer{}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := time.Now()
	go func() {
		done <- serve(ctx, serveOptions{
			Binary: bin, DataDir: dataDir, BindAddress: "127.0.0.1",
			APIPort: apiPort, ReadyPort: readyPort, Alias: alias,
			PKISeed: "test-seed", ReadyTimeout: 2 * time.Minute,
		}, stdout, logFile)
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cancel()
			<-done
		}
	})
	dumpLog := func() {
		data, _ := os.ReadFile(logFile.Name())
		if len(data) > 8<<10 {
			data = data[len(data)-8<<10:]
		}
		t.Logf("stdout:\n%s\nlast log lines:\n%s", stdout.String(), data)
	}

	// The ready port must open only once /readyz is ok: whenever a dial
	// succeeds, a /readyz asked after it must answer ok.
	deadline := time.After(2 * time.Minute)
	sawAPIBeforeReadyPort := false
	for {
		conn, dialErr := net.DialTimeout("tcp", readyAddr, 200*time.Millisecond)
		ok := readyzOK(dataDir, apiAddr, alias)
		if dialErr == nil {
			conn.Close()
			if !ok {
				dumpLog()
				t.Fatal("the ready port accepted a connection before the API server's /readyz was ok")
			}
			break
		}
		sawAPIBeforeReadyPort = sawAPIBeforeReadyPort || ok
		select {
		case err := <-done:
			dumpLog()
			t.Fatalf("serve returned before the ready port opened: %v", err)
		case <-deadline:
			dumpLog()
			t.Fatal("the ready port did not open within 2 minutes")
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Logf("ready port open after %s (API ready before it: %v)", time.Since(started).Round(time.Millisecond), sawAPIBeforeReadyPort)
	assert.Check(t, is.Contains(stdout.String(), "pods are made Ready by a fake node"))

	// The served kubeconfig names the alias.
	resp, err := http.Get("http://" + readyAddr + "/kubeconfig")
	assert.NilError(t, err)
	served, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.NilError(t, err)
	assert.Equal(t, resp.StatusCode, http.StatusOK)
	servedCfg, err := clientcmd.Load(served)
	assert.NilError(t, err)
	for name, cl := range servedCfg.Clusters {
		assert.Equal(t, cl.Server, "https://"+net.JoinHostPort(alias, strconv.Itoa(apiPort)), name)
		assert.Check(t, !cl.InsecureSkipTLSVerify)
	}

	// As the function does: fetch it pointed at another address, keeping
	// the alias as the certificate's name.
	out := filepath.Join(t.TempDir(), "kubeconfig")
	assert.NilError(t, fetchKubeconfig(t.Context(), fetchOptions{URL: "http://" + readyAddr + "/kubeconfig", Out: out, Server: apiAddr, Timeout: 10 * time.Second}))
	cfg, err := clientcmd.BuildConfigFromFlags("", out)
	assert.NilError(t, err)
	assert.Equal(t, cfg.Host, "https://"+apiAddr)
	assert.Equal(t, cfg.TLSClientConfig.ServerName, alias)
	assert.Check(t, !cfg.TLSClientConfig.Insecure)
	assert.Check(t, len(cfg.TLSClientConfig.CAData) > 0)
	client, err := kubernetes.NewForConfig(cfg)
	assert.NilError(t, err)
	version, err := client.Discovery().ServerVersion()
	assert.NilError(t, err)
	t.Logf("server version %s", version.GitVersion)

	// The module's own loader gives the same result from the served copy.
	viaKube, err := kube.FromKubeconfig(served, kube.KubeconfigOptions{Server: apiAddr})
	assert.NilError(t, err)
	assert.Equal(t, viaKube.TLSClientConfig.ServerName, alias)
	kubeClient, err := kubernetes.NewForConfig(viaKube)
	assert.NilError(t, err)
	_, err = kubeClient.Discovery().ServerVersion()
	assert.NilError(t, err)

	// Verification is real: another name fails.
	wrong, err := kube.FromKubeconfig(served, kube.KubeconfigOptions{Server: apiAddr, TLSServerName: "not-the-alias"})
	assert.NilError(t, err)
	wrongClient, err := kubernetes.NewForConfig(wrong)
	assert.NilError(t, err)
	_, err = wrongClient.Discovery().ServerVersion()
	assert.ErrorContains(t, err, "certificate")

	// The fake nodes make a Deployment's pods Ready.
	ns := "sandbox-test"
	_, err = client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	assert.NilError(t, err)
	replicas := int32(2)
	labels := map[string]string{"app": "chatbot"}
	_, err = client.AppsV1().Deployments(ns).Create(t.Context(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "chatbot"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "chatbot", Image: "localhost:5000/ringg/chatbot:sandbox",
					Ports: []corev1.ContainerPort{{ContainerPort: 8765}},
				}}},
			},
		},
	}, metav1.CreateOptions{})
	assert.NilError(t, err)
	rolloutDeadline := time.Now().Add(90 * time.Second)
	for {
		d, err := client.AppsV1().Deployments(ns).Get(t.Context(), "chatbot", metav1.GetOptions{})
		assert.NilError(t, err)
		if d.Status.ReadyReplicas == replicas {
			break
		}
		if time.Now().After(rolloutDeadline) {
			dumpLog()
			t.Fatalf("deployment not Ready after 90s: %+v", d.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	pods, err := client.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
	assert.NilError(t, err)
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			assert.Check(t, strings.HasPrefix(p.Spec.NodeName, "fake-"), p.Spec.NodeName)
		}
	}

	// Stopping (SIGTERM in the container) stops the helper too.
	cancel()
	stopped = true
	select {
	case err := <-done:
		assert.NilError(t, err)
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not return within 40s of being stopped")
	}
	_, err = net.DialTimeout("tcp", apiAddr, time.Second)
	assert.Check(t, err != nil, "the API server still accepts connections after serve returned")
	_, err = net.DialTimeout("tcp", readyAddr, time.Second)
	assert.Check(t, err != nil, "the ready port still accepts connections after serve returned")
}
