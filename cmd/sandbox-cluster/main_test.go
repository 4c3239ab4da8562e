package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
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

// A request still in flight at the deadline must not hide the last answer
// the service gave behind "context deadline exceeded".
func TestFetchKubeconfigKeepsTheLastAnswerAtTheDeadline(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "nope", http.StatusNotFound)
			return
		}
		<-r.Context().Done() // answers no more until the client gives up
	}))
	defer srv.Close()
	err := fetchKubeconfig(t.Context(), fetchOptions{URL: srv.URL, Out: filepath.Join(t.TempDir(), "k"), Timeout: 600 * time.Millisecond})
	assert.ErrorContains(t, err, "(last error: 404 Not Found)")
	assert.Assert(t, calls.Load() >= 2, "the second request was never made")
}
