package integration

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	"k8s.io/client-go/rest"

	"github.com/ringg/ringg-ci/internal/lockedbuffer"
	"github.com/ringg/ringg-ci/runner/gcpauth"
	cikube "github.com/ringg/ringg-ci/runner/kube"
	"github.com/ringg/ringg-ci/runner/release"
)

// tokenMint is a loopback oauth2.googleapis.com/token for one service-account
// key: it accepts only JWT-bearer grants signed by that key and mints
// numbered access tokens, remembering when. It claims an hour of validity,
// as Google does, so a client only learns that a token died from a 401.
type tokenMint struct {
	srv *httptest.Server
	pub *rsa.PublicKey

	mu     sync.Mutex
	minted map[string]time.Time
}

func newTokenMint(t *testing.T, pub *rsa.PublicKey) *tokenMint {
	m := &tokenMint{pub: pub, minted: map[string]time.Time{}}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/token" || r.ParseForm() != nil ||
			r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || !m.signed(r.PostForm.Get("assertion")) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error": "invalid_grant", "error_description": "bad grant"}`)
			return
		}
		m.mu.Lock()
		tok := fmt.Sprintf("ya29.proxy-test-%d", len(m.minted)+1)
		m.minted[tok] = time.Now()
		m.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(m.srv.Close)
	return m
}

// signed checks an RS256 JWT against the key.
func (m *tokenMint) signed(jwt string) bool {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	return rsa.VerifyPKCS1v15(m.pub, crypto.SHA256, sum[:], sig) == nil
}

func (m *tokenMint) mintedAt(tok string) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	at, ok := m.minted[tok]
	return at, ok
}

func (m *tokenMint) tokens() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for tok := range m.minted {
		out = append(out, tok)
	}
	return out
}

// serviceAccountKey returns a service-account key file whose token_uri is
// the mint, with the leak marker in its key id.
func (m *tokenMint) serviceAccountKey(t *testing.T, key *rsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	assert.NilError(t, err)
	b, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "test-project",
		"private_key_id": leakMarker + "-key-id",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "deployer@test-project.iam.gserviceaccount.com",
		"token_uri":      m.srv.URL + "/token",
	})
	assert.NilError(t, err)
	return b
}

// authProxy is a loopback TLS front of the test cluster's API server, in the
// role of GKE's: it accepts only bearer tokens the mint issued, for lifetime
// after they were minted, answers 401 otherwise, and forwards accepted
// requests upstream with the cluster's admin credentials.
type authProxy struct {
	srv       *httptest.Server
	mint      *tokenMint
	lifetime  time.Duration
	refused   atomic.Int64
	forwarded atomic.Int64
}

func newAuthProxy(t *testing.T, mint *tokenMint, lifetime time.Duration) *authProxy {
	t.Helper()
	up := cluster.RESTConfig()
	rt, err := rest.TransportFor(up)
	assert.NilError(t, err)
	target, err := url.Parse(up.Host)
	assert.NilError(t, err)
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Header.Del("Authorization")
		},
		Transport:     rt,
		FlushInterval: -1, // watches stream
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	p := &authProxy{mint: mint, lifetime: lifetime}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		at, known := mint.mintedAt(tok)
		if !ok || !known || time.Since(at) > p.lifetime {
			p.refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`)
			return
		}
		p.forwarded.Add(1)
		rp.ServeHTTP(w, r)
	}))
	p.srv.StartTLS()
	t.Cleanup(func() {
		p.srv.CloseClientConnections()
		p.srv.Close()
	})
	return p
}

func (p *authProxy) endpoint() string { return p.srv.Listener.Addr().String() }

func (p *authProxy) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
}

// TestReliabilityTokenExpiresMidRollout deploys through an API server front
// whose tokens die long before the rollout ends, while the token endpoint
// claims they last an hour. The runner connects as in production:
// gcpauth's service-account key flow feeding kube.ForGKE. Every refused
// token must be dropped and a new one minted, and the deploy must succeed.
func TestReliabilityTokenExpiresMidRollout(t *testing.T) {
	const lifetime = 1500 * time.Millisecond
	e := newRelEnv(t)
	_, err := e.deploy(e.stablePlan(digest("a")), nil, release.Options{})
	assert.NilError(t, err)

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	assert.NilError(t, err)
	mint := newTokenMint(t, &key.PublicKey)
	proxy := newAuthProxy(t, mint, lifetime)
	ts, err := gcpauth.NewTokenSource(context.Background(), gcpauth.Config{
		CredentialsJSON:   mint.serviceAccountKey(t, key),
		HTTPClient:        mint.srv.Client(),
		AllowedTokenHosts: []string{strings.TrimPrefix(mint.srv.URL, "http://")},
	})
	assert.NilError(t, err)
	logs := &lockedbuffer.Buffer{}
	clients := release.Clients{
		Config: cikube.ForGKE(proxy.endpoint(), proxy.caPEM(), ts),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}

	// 60 pods in waves take several token lifetimes on the fake node.
	res, err := (&release.Deploy{Clients: clients, Plan: e.stablePlan(digest("b"))}).Run(context.Background())
	if err != nil {
		t.Logf("runner log:\n%s", logs.String())
	}
	assert.NilError(t, err)
	assert.Equal(t, res.Revision, 2)
	assert.Equal(t, res.Status, "deployed")
	assert.Equal(t, res.Pods.Ready, int32(60))
	assert.Equal(t, image(e.deployment("dv-pipecat")), prodRepo+"@"+digest("b"))
	assert.DeepEqual(t, statuses(e.history("dv-pipecat")), []string{"1:superseded/proven", "2:deployed/proven"})

	minted := mint.tokens()
	t.Logf("deploy took %s: %d tokens minted, %d requests refused, %d forwarded",
		res.Duration.Round(time.Millisecond), len(minted), proxy.refused.Load(), proxy.forwarded.Load())
	assert.Assert(t, res.Duration > 2*lifetime, "the rollout (%s) must outlast several token lifetimes (%s) to test anything", res.Duration, lifetime)
	assert.Assert(t, len(minted) >= 2, "tokens are refreshed: %d minted", len(minted))
	assert.Assert(t, proxy.refused.Load() >= 1, "expired tokens were refused, and the deploy recovered")
	for _, tok := range minted {
		assert.Assert(t, !strings.Contains(logs.String(), tok), "the runner log holds an access token")
	}
	assert.Assert(t, !strings.Contains(logs.String(), leakMarker), "the runner log holds a secret value")
}
