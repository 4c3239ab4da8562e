package kube_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/ringg/ringg-ci/runner/gcpauth"
	"github.com/ringg/ringg-ci/runner/kube"
)

// fakeAPIServer answers GET /version over TLS to bearers that accept()
// allows and 401 to the rest, recording every bearer it saw.
type fakeAPIServer struct {
	srv    *httptest.Server
	mu     sync.Mutex
	seen   []string
	accept func(bearer string) bool
}

func newFakeAPIServer(t *testing.T, accept func(string) bool) *fakeAPIServer {
	f := &fakeAPIServer{accept: accept}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bearer := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		f.mu.Lock()
		f.seen = append(f.seen, bearer)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if !f.accept(bearer) {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`)
			return
		}
		assert.Check(t, is.Equal(r.URL.Path, "/version"))
		fmt.Fprint(w, `{"major":"1","minor":"33","gitVersion":"v1.33.2-gke.1","platform":"linux/amd64"}`)
	}))
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPIServer) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
}

func (f *fakeAPIServer) hostPort() string { return strings.TrimPrefix(f.srv.URL, "https://") }

func (f *fakeAPIServer) bearers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

// tokenMint is a loopback oauth2.googleapis.com/token for gcpauth's
// authorized_user flow: each refresh returns the next numbered token.
func tokenMint(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Check(t, r.ParseForm())
		assert.Check(t, is.Equal(r.PostForm.Get("grant_type"), "refresh_token"))
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"access_token": fmt.Sprintf("ya29.minted-%d", n.Add(1)),
			"token_type":   "Bearer",
			"expires_in":   3600,
		})
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestForGKERecoversFromRevokedToken: the API server refuses the first
// token (as after a revocation) although it has not expired. client-go must
// drop it from every cache, gcpauth's included, and the next call must carry
// a freshly minted token.
// mintedSource is an authorized_user token source whose loopback token
// endpoint mints ya29.minted-1, -2, … and counts them.
func mintedSource(t *testing.T) (oauth2.TokenSource, *atomic.Int32) {
	t.Helper()
	mint, minted := tokenMint(t)
	creds, _ := json.Marshal(map[string]string{
		"type": "authorized_user", "client_id": "id", "client_secret": "secret",
		"refresh_token": "refresh", "token_uri": mint.URL,
	})
	ts, err := gcpauth.NewTokenSource(context.Background(), gcpauth.Config{
		CredentialsJSON:   creds,
		HTTPClient:        mint.Client(),
		AllowedTokenHosts: []string{strings.TrimPrefix(mint.URL, "http://")},
	})
	assert.NilError(t, err)
	return ts, minted
}

func TestForGKERecoversFromRevokedToken(t *testing.T) {
	ts, minted := mintedSource(t)
	api := newFakeAPIServer(t, func(b string) bool { return b != "ya29.minted-1" })

	cfg := kube.ForGKE(api.hostPort(), api.caPEM(), ts)
	assert.Check(t, is.Equal(cfg.Host, "https://"+api.hostPort()))
	assert.Check(t, is.Equal(cfg.QPS, float32(50)))
	assert.Check(t, is.Equal(cfg.Burst, 100))
	client, err := kubernetes.NewForConfig(cfg)
	assert.NilError(t, err)

	// The refused request is sent again, once, with a fresh token.
	v, err := client.Discovery().ServerVersion()
	assert.NilError(t, err)
	assert.Check(t, is.Equal(v.GitVersion, "v1.33.2-gke.1"))
	assert.Check(t, is.DeepEqual(api.bearers(), []string{"ya29.minted-1", "ya29.minted-2"}))
	assert.Check(t, is.Equal(minted.Load(), int32(2)))

	// Valid tokens are reused: many calls, no new mint.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := client.Discovery().ServerVersion()
			assert.Check(t, err)
		})
	}
	wg.Wait()
	assert.Check(t, is.Equal(minted.Load(), int32(2)))
}

// A token the server keeps refusing is retried once, not forever.
func TestForGKEGivesUpAfterOneRetry(t *testing.T) {
	ts, minted := mintedSource(t)
	api := newFakeAPIServer(t, func(string) bool { return false })
	client, err := kubernetes.NewForConfig(kube.ForGKE(api.hostPort(), api.caPEM(), ts))
	assert.NilError(t, err)
	_, err = client.Discovery().ServerVersion()
	assert.Check(t, apierrors.IsUnauthorized(err), "got %v", err)
	assert.Check(t, is.DeepEqual(api.bearers(), []string{"ya29.minted-1", "ya29.minted-2"}))
	assert.Check(t, is.Equal(minted.Load(), int32(2)))
}

func TestForGKEVerifiesTheCA(t *testing.T) {
	api := newFakeAPIServer(t, func(string) bool { return true })
	wrongCA := selfSignedCA(t)
	ts, err := gcpauth.NewTokenSource(context.Background(), gcpauth.Config{AccessToken: "ya29.laptop"})
	assert.NilError(t, err)
	client, err := kubernetes.NewForConfig(kube.ForGKE(api.hostPort(), wrongCA, ts))
	assert.NilError(t, err)
	_, err = client.Discovery().ServerVersion()
	assert.Check(t, is.ErrorContains(err, "certificate"))
	assert.Check(t, is.Len(api.bearers(), 0), "a token was sent to an unverified server")
}

// selfSignedCA is a CA certificate that signed nothing the test servers use
// (httptest servers all share one certificate).
func selfSignedCA(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	assert.NilError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "other-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	assert.NilError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

type kubeconfigSpec struct {
	server, current string
	user            clientcmdapi.AuthInfo
	ca              []byte
}

func kubeconfig(t *testing.T, s kubeconfigSpec) []byte {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["gke"] = &clientcmdapi.Cluster{Server: s.server, CertificateAuthorityData: s.ca}
	cfg.AuthInfos["me"] = &s.user
	cfg.Contexts["gke"] = &clientcmdapi.Context{Cluster: "gke", AuthInfo: "me"}
	cfg.Contexts["other"] = &clientcmdapi.Context{Cluster: "gke", AuthInfo: "me", Namespace: "x"}
	cfg.CurrentContext = s.current
	b, err := clientcmd.Write(*cfg)
	assert.NilError(t, err)
	return b
}

func TestFromKubeconfigThroughTunnel(t *testing.T) {
	api := newFakeAPIServer(t, func(b string) bool { return b == "kube-static-token" })
	user := clientcmdapi.AuthInfo{Token: "kube-static-token"}
	tests := []struct {
		name       string
		server     string // the kubeconfig's original server
		opts       kube.KubeconfigOptions
		serverName string
		wantErr    string
	}{
		// httptest certificates are valid for example.com, 127.0.0.1 and ::1.
		{name: "server name from the original server", server: "https://example.com:6443", serverName: "example.com"},
		{name: "explicit server name", server: "https://10.0.0.1", opts: kube.KubeconfigOptions{TLSServerName: "example.com"}, serverName: "example.com"},
		{name: "original IP still verified", server: "https://10.0.0.1", serverName: "10.0.0.1", wantErr: "certificate is valid for"},
		{name: "wrong name is refused", server: "https://cluster.example.org", serverName: "cluster.example.org", wantErr: "certificate is valid for"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := kubeconfig(t, kubeconfigSpec{server: tc.server, current: "gke", user: user, ca: api.caPEM()})
			opts := tc.opts
			opts.Server = api.hostPort()
			cfg, err := kube.FromKubeconfig(data, opts)
			assert.NilError(t, err)
			assert.Check(t, is.Equal(cfg.Host, "https://"+api.hostPort()))
			assert.Check(t, is.Equal(cfg.TLSClientConfig.ServerName, tc.serverName))
			assert.Check(t, !cfg.TLSClientConfig.Insecure)
			assert.Check(t, is.Equal(cfg.QPS, float32(50)))
			client, err := kubernetes.NewForConfig(cfg)
			assert.NilError(t, err)
			v, err := client.Discovery().ServerVersion()
			if tc.wantErr != "" {
				assert.Check(t, is.ErrorContains(err, tc.wantErr))
				return
			}
			assert.NilError(t, err)
			assert.Check(t, is.Equal(v.Minor, "33"))
		})
	}
}

func TestFromKubeconfigErrors(t *testing.T) {
	execUser := clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{
		APIVersion: "client.authentication.k8s.io/v1beta1", Command: "gke-gcloud-auth-plugin", InteractiveMode: clientcmdapi.IfAvailableExecInteractiveMode,
	}}
	providerUser := clientcmdapi.AuthInfo{AuthProvider: &clientcmdapi.AuthProviderConfig{Name: "gcp"}}
	tests := []struct {
		name     string
		data     []byte
		opts     kube.KubeconfigOptions
		exec     bool
		contains []string
	}{
		{
			name:     "gke-gcloud-auth-plugin",
			data:     kubeconfig(t, kubeconfigSpec{server: "https://1.2.3.4", current: "gke", user: execUser}),
			exec:     true,
			contains: []string{`runs "gke-gcloud-auth-plugin"`, "--access-token", "no kubeconfig, so that the GKE API is used"},
		},
		{
			name:     "legacy gcp auth provider",
			data:     kubeconfig(t, kubeconfigSpec{server: "https://1.2.3.4", current: "gke", user: providerUser}),
			exec:     true,
			contains: []string{`auth-provider "gcp"`, "--access-token"},
		},
		{
			name:     "unknown context",
			data:     kubeconfig(t, kubeconfigSpec{server: "https://1.2.3.4", current: "gke"}),
			opts:     kube.KubeconfigOptions{Context: "prod"},
			contains: []string{`context "prod" not found`, "[gke other]"},
		},
		{
			name:     "no current context",
			data:     kubeconfig(t, kubeconfigSpec{server: "https://1.2.3.4"}),
			contains: []string{"no current-context", "[gke other]"},
		},
		{
			name:     "not yaml",
			data:     []byte("\x00\x01 not a kubeconfig"),
			contains: []string{"load kubeconfig"},
		},
		{
			name:     "server override without port",
			data:     kubeconfig(t, kubeconfigSpec{server: "https://1.2.3.4", current: "gke"}),
			opts:     kube.KubeconfigOptions{Server: "localhost"},
			contains: []string{`server override "localhost" is not host:port`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := kube.FromKubeconfig(tc.data, tc.opts)
			assert.Assert(t, err != nil)
			assert.Check(t, is.Equal(errors.Is(err, kube.ErrExecPlugin), tc.exec))
			for _, s := range tc.contains {
				assert.Check(t, is.ErrorContains(err, s))
			}
		})
	}
}

func TestFromKubeconfigPicksContext(t *testing.T) {
	data := kubeconfig(t, kubeconfigSpec{server: "https://1.2.3.4:443", current: "gke", user: clientcmdapi.AuthInfo{Token: "t"}})
	cfg, err := kube.FromKubeconfig(data, kube.KubeconfigOptions{Context: "other"})
	assert.NilError(t, err)
	assert.Check(t, is.Equal(cfg.Host, "https://1.2.3.4:443"))
	assert.Check(t, is.Equal(cfg.TLSClientConfig.ServerName, ""))
	assert.Check(t, is.Equal(cfg.Burst, 100))
}
