package gcpauth

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

const (
	testProvider     = "projects/123456789/locations/global/workloadIdentityPools/test-pool/providers/github"
	testSA           = "deployer@test-project.iam.gserviceaccount.com"
	testRequestToken = "gh-request-token-SECRET-1f2e3d"
)

// fakeGoogle is one loopback server speaking GitHub's OIDC token endpoint,
// Google STS and IAM Credentials generateAccessToken. Handlers check the
// requests as the real services would need them and count calls.
type fakeGoogle struct {
	t   *testing.T
	srv *httptest.Server

	oidcCalls, stsCalls, iamCalls atomic.Int32

	mu sync.Mutex
	// Overrides: a non-zero status makes the endpoint fail with that status
	// and body; a body containing %s gets the caller's secret (subject token
	// or bearer) echoed into it, to prove errors redact it.
	oidcStatus int
	oidcBody   string
	stsStatus  int
	stsBody    string
	iamStatus  int
	iamBody    string
	// Lifetimes of issued tokens.
	stsExpiresIn int
	iamLifetime  time.Duration
	// wantOIDCAudience is the audience the OIDC endpoint expects.
	wantOIDCAudience string

	issued []string // every JWT and access token handed out
}

func newFakeGoogle(t *testing.T) *fakeGoogle {
	f := &fakeGoogle{
		t:                t,
		stsExpiresIn:     3600,
		iamLifetime:      time.Hour,
		wantOIDCAudience: "https://iam.googleapis.com/" + testProvider,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /oidc", f.oidc)
	mux.HandleFunc("POST /sts/v1/token", f.sts)
	mux.HandleFunc("POST /iam/v1/projects/-/serviceAccounts/{name}", f.iam)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGoogle) set(fn func(f *fakeGoogle)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeGoogle) issue(s string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.issued = append(f.issued, s)
	return s
}

// secrets are the values no error may contain.
func (f *fakeGoogle) secrets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{testRequestToken}, f.issued...)
}

func (f *fakeGoogle) config() Config {
	return Config{
		OIDCRequestURL:           f.srv.URL + "/oidc?api-version=2.0",
		OIDCRequestToken:         testRequestToken,
		WorkloadIdentityProvider: testProvider,
		ServiceAccount:           testSA,
		HTTPClient:               f.srv.Client(),
		Endpoints: Endpoints{
			STS:            f.srv.URL + "/sts/v1/token",
			IAMCredentials: f.srv.URL + "/iam",
		},
	}
}

func (f *fakeGoogle) fail(w http.ResponseWriter, status int, body, secret string) {
	if strings.Contains(body, "%s") {
		body = fmt.Sprintf(body, secret)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func (f *fakeGoogle) oidc(w http.ResponseWriter, r *http.Request) {
	n := f.oidcCalls.Add(1)
	assert.Check(f.t, r.Header.Get("Authorization") == "Bearer "+testRequestToken, "oidc: wrong or missing request token")
	assert.Check(f.t, is.Equal(r.URL.Query().Get("api-version"), "2.0"))
	f.mu.Lock()
	status, body, aud := f.oidcStatus, f.oidcBody, f.wantOIDCAudience
	f.mu.Unlock()
	assert.Check(f.t, is.Equal(r.URL.Query().Get("audience"), aud))
	if status != 0 {
		f.fail(w, status, body, testRequestToken)
		return
	}
	jwt := f.issue(fmt.Sprintf("eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJyZXBvOm93bmVyL3JlcG8ifQ.sig-%d", n))
	json.NewEncoder(w).Encode(map[string]any{"count": 1, "value": jwt})
}

func (f *fakeGoogle) sts(w http.ResponseWriter, r *http.Request) {
	n := f.stsCalls.Add(1)
	assert.Check(f.t, is.Equal(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded"))
	assert.Check(f.t, r.Header.Get("Authorization") == "", "sts: unexpected Authorization header")
	assert.Check(f.t, r.ParseForm())
	subject := r.PostForm.Get("subject_token")
	got := url.Values{}
	for k, v := range r.PostForm {
		got[k] = v
	}
	got["subject_token"] = []string{"<checked below>"}
	want := url.Values{
		"audience":             {"//iam.googleapis.com/" + testProvider},
		"grant_type":           {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"requested_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
		"scope":                {CloudPlatformScope},
		"subject_token":        {"<checked below>"},
		"subject_token_type":   {"urn:ietf:params:oauth:token-type:jwt"},
	}
	assert.Check(f.t, is.DeepEqual(got, want))
	f.mu.Lock()
	status, body, expires := f.stsStatus, f.stsBody, f.stsExpiresIn
	known := strings.Join(f.issued, " ")
	f.mu.Unlock()
	assert.Check(f.t, subject != "" && strings.Contains(known, subject), "subject_token is not a JWT the OIDC endpoint issued")
	if status != 0 {
		f.fail(w, status, body, subject)
		return
	}
	tok := f.issue(fmt.Sprintf("sts-federated-token-%d", n))
	json.NewEncoder(w).Encode(map[string]any{
		"access_token":      tok,
		"issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
		"token_type":        "Bearer",
		"expires_in":        expires,
	})
}

func (f *fakeGoogle) iam(w http.ResponseWriter, r *http.Request) {
	n := f.iamCalls.Add(1)
	assert.Check(f.t, is.Equal(r.PathValue("name"), testSA+":generateAccessToken"))
	bearer := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	status, body, lifetime := f.iamStatus, f.iamBody, f.iamLifetime
	var lastSTS string
	for _, s := range f.issued {
		if strings.HasPrefix(s, "sts-federated-token-") {
			lastSTS = s
		}
	}
	f.mu.Unlock()
	assert.Check(f.t, bearer == lastSTS, "impersonation must use the newest STS token as bearer")
	var req struct {
		Lifetime string   `json:"lifetime"`
		Scope    []string `json:"scope"`
	}
	assert.Check(f.t, json.NewDecoder(r.Body).Decode(&req))
	assert.Check(f.t, is.Equal(req.Lifetime, "3600s"))
	assert.Check(f.t, is.DeepEqual(req.Scope, []string{CloudPlatformScope}))
	if status != 0 {
		f.fail(w, status, body, bearer)
		return
	}
	tok := f.issue(fmt.Sprintf("ya29.impersonated-token-%d", n))
	json.NewEncoder(w).Encode(map[string]any{
		"accessToken": tok,
		"expireTime":  time.Now().Add(lifetime).UTC().Format(time.RFC3339),
	})
}

// assertNoSecrets fails if err's text holds any of the secrets.
func assertNoSecrets(t *testing.T, err error, secrets []string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		assert.Check(t, !strings.Contains(err.Error(), s), "error contains a secret (%d chars)", len(s))
	}
}
