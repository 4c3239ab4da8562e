package gcpauth

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
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// tokenEndpoint is a loopback oauth2.googleapis.com/token: check validates
// the form, and it answers with a numbered access token or a fixed error.
type tokenEndpoint struct {
	srv       *httptest.Server
	calls     atomic.Int32
	errStatus int
	errBody   string
}

func newTokenEndpoint(t *testing.T, check func(t *testing.T, form url.Values)) *tokenEndpoint {
	e := &tokenEndpoint{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := e.calls.Add(1)
		assert.Check(t, is.Equal(r.URL.Path, "/token"))
		assert.Check(t, r.ParseForm())
		check(t, r.PostForm)
		w.Header().Set("Content-Type", "application/json")
		if e.errStatus != 0 {
			w.WriteHeader(e.errStatus)
			w.Write([]byte(e.errBody))
			return
		}
		json.NewEncoder(w).Encode(map[string]any{
			"access_token": "ya29.from-token-endpoint-" + string(rune('0'+n)),
			"token_type":   "Bearer",
			"expires_in":   3600,
		})
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *tokenEndpoint) host() string { return strings.TrimPrefix(e.srv.URL, "http://") }

func TestServiceAccountKey(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	assert.NilError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	assert.NilError(t, err)
	var tokenURI string
	e := newTokenEndpoint(t, func(t *testing.T, form url.Values) {
		assert.Check(t, is.Equal(form.Get("grant_type"), "urn:ietf:params:oauth:grant-type:jwt-bearer"))
		claims := verifyJWT(t, form.Get("assertion"), &key.PublicKey)
		assert.Check(t, is.Equal(claims["iss"], testSA))
		assert.Check(t, is.Equal(claims["aud"], tokenURI))
		assert.Check(t, is.Equal(claims["scope"], CloudPlatformScope))
		exp, _ := claims["exp"].(float64)
		iat, _ := claims["iat"].(float64)
		assert.Check(t, is.Equal(exp-iat, float64(3600)))
	})
	tokenURI = e.srv.URL + "/token"
	keyJSON, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "test-project",
		"private_key_id": "key-1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   testSA,
		"token_uri":      tokenURI,
	})
	assert.NilError(t, err)

	ts, err := NewTokenSource(context.Background(), Config{
		CredentialsJSON:   keyJSON,
		HTTPClient:        e.srv.Client(),
		AllowedTokenHosts: []string{e.host()},
	})
	assert.NilError(t, err)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			tok, err := ts.Token()
			assert.Check(t, err)
			if err == nil {
				assert.Check(t, tok.AccessToken == "ya29.from-token-endpoint-1")
			}
		})
	}
	wg.Wait()
	assert.Check(t, is.Equal(e.calls.Load(), int32(1)))

	user, password, err := RegistryCredentials(ts)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(user, "oauth2accesstoken"))
	assert.Check(t, password == "ya29.from-token-endpoint-1")
}

// verifyJWT checks an RS256 signature and returns the claims.
func verifyJWT(t *testing.T, jwt string, pub *rsa.PublicKey) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	assert.Assert(t, is.Len(parts, 3))
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	assert.NilError(t, err)
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	assert.NilError(t, rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig))
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	assert.NilError(t, err)
	claims := map[string]any{}
	assert.NilError(t, json.Unmarshal(payload, &claims))
	return claims
}

const (
	testRefreshToken = "1//refresh-token-SECRET"
	testClientSecret = "client-secret-SECRET"
)

func authorizedUserJSON(tokenURI string) []byte {
	b, _ := json.Marshal(map[string]string{
		"type":          "authorized_user",
		"client_id":     "123-client.apps.googleusercontent.com",
		"client_secret": testClientSecret,
		"refresh_token": testRefreshToken,
		"token_uri":     tokenURI,
	})
	return b
}

func checkRefreshForm(t *testing.T, form url.Values) {
	want := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {testRefreshToken},
		"client_id":     {"123-client.apps.googleusercontent.com"},
		"client_secret": {testClientSecret},
	}
	// Compare without printing secrets on failure.
	for k, v := range want {
		assert.Check(t, form.Get(k) == v[0], "form field %s is wrong", k)
	}
}

func TestAuthorizedUser(t *testing.T) {
	e := newTokenEndpoint(t, checkRefreshForm)
	ts, err := NewTokenSource(context.Background(), Config{
		CredentialsJSON:   authorizedUserJSON(e.srv.URL + "/token"),
		HTTPClient:        e.srv.Client(),
		AllowedTokenHosts: []string{e.host()},
	})
	assert.NilError(t, err)
	for range 3 {
		tok, err := ts.Token()
		assert.NilError(t, err)
		assert.Check(t, tok.AccessToken == "ya29.from-token-endpoint-1")
	}
	assert.Check(t, is.Equal(e.calls.Load(), int32(1)))
}

func TestAuthorizedUserRevoked(t *testing.T) {
	e := newTokenEndpoint(t, checkRefreshForm)
	e.errStatus, e.errBody = 400, `{"error":"invalid_grant","error_description":"Token has been expired or revoked: `+testRefreshToken+`"}`
	ts, err := NewTokenSource(context.Background(), Config{
		CredentialsJSON:   authorizedUserJSON(e.srv.URL + "/token"),
		HTTPClient:        e.srv.Client(),
		AllowedTokenHosts: []string{e.host()},
	})
	assert.NilError(t, err)
	_, err = ts.Token()
	assert.Check(t, errors.Is(err, ErrInvalidCredentials), "got %v", err)
	assert.Check(t, is.ErrorContains(err, "gcloud auth application-default login"))
	assert.Check(t, is.ErrorContains(err, "invalid_grant"))
	assertNoSecrets(t, err, []string{testRefreshToken, testClientSecret})
}

func externalAccountJSON(t *testing.T, f *fakeGoogle) []byte {
	b, err := os.ReadFile("testdata/credentials/external-account-github.json")
	assert.NilError(t, err)
	s := strings.ReplaceAll(string(b), "{{BASE}}", f.srv.URL)
	return []byte(strings.ReplaceAll(s, "{{REQUEST_TOKEN}}", testRequestToken))
}

func TestExternalAccountAsWrittenByGitHubAuthAction(t *testing.T) {
	f := newFakeGoogle(t)
	c := Config{
		CredentialsJSON:   externalAccountJSON(t, f),
		HTTPClient:        f.srv.Client(),
		AllowedTokenHosts: []string{strings.TrimPrefix(f.srv.URL, "http://")},
	}
	ts, err := NewTokenSource(context.Background(), c)
	assert.NilError(t, err)
	for range 5 {
		tok, err := ts.Token()
		assert.NilError(t, err)
		assert.Check(t, tok.AccessToken == "ya29.impersonated-token-1")
	}
	assert.Check(t, is.Equal(f.oidcCalls.Load(), int32(1)))
	assert.Check(t, is.Equal(f.stsCalls.Load(), int32(1)))
	assert.Check(t, is.Equal(f.iamCalls.Load(), int32(1)))

	t.Run("impersonation refused", func(t *testing.T) {
		f := newFakeGoogle(t)
		f.set(func(f *fakeGoogle) {
			f.iamStatus, f.iamBody = 403, `{"error":{"code":403,"message":"Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist). %s","status":"PERMISSION_DENIED"}}`
		})
		ts, err := NewTokenSource(context.Background(), Config{
			CredentialsJSON:   externalAccountJSON(t, f),
			HTTPClient:        f.srv.Client(),
			AllowedTokenHosts: []string{strings.TrimPrefix(f.srv.URL, "http://")},
		})
		assert.NilError(t, err)
		_, err = ts.Token()
		assert.Check(t, errors.Is(err, ErrPermission), "got %v", err)
		assert.Check(t, is.ErrorContains(err, "roles/iam.workloadIdentityUser"))
		assert.Check(t, is.ErrorContains(err, testSA))
		assertNoSecrets(t, err, f.secrets())
	})

	t.Run("oidc refused", func(t *testing.T) {
		f := newFakeGoogle(t)
		f.set(func(f *fakeGoogle) { f.oidcStatus, f.oidcBody = 401, `{"message":"bad credentials %s"}` })
		ts, err := NewTokenSource(context.Background(), Config{
			CredentialsJSON:   externalAccountJSON(t, f),
			HTTPClient:        f.srv.Client(),
			AllowedTokenHosts: []string{strings.TrimPrefix(f.srv.URL, "http://")},
		})
		assert.NilError(t, err)
		_, err = ts.Token()
		assert.Check(t, errors.Is(err, ErrNoOIDC), "got %v", err)
		assert.Check(t, is.ErrorContains(err, "permissions: id-token: write"))
		assertNoSecrets(t, err, f.secrets())
	})
}

func TestInvalidCredentialsFiles(t *testing.T) {
	tests := []struct {
		file     string
		contains []string
	}{
		{"missing-type.json", []string{`field "type" is missing`, "accepted types: external_account, service_account, authorized_user"}},
		{"unknown-type.json", []string{`field "type" is "gdch_service_account"`, "accepted types: external_account, service_account, authorized_user"}},
		{"secrets-json-instead-of-credentials.json", []string{`field "type" is an unsupported value`, "accepted types"}},
		{"not-json.txt", []string{"does not parse as JSON"}},
		{"executable-source.json", []string{"credential_source.executable", "not supported"}},
		{"foreign-token-host.json", []string{`field "token_uri"`, "token-collector.example.com is not a googleapis.com https endpoint"}},
		{"service-account-without-key.json", []string{`field "private_key" is missing`}},
	}
	for _, tc := range tests {
		t.Run(strings.TrimSuffix(tc.file, filepath.Ext(tc.file)), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata/credentials", tc.file))
			assert.NilError(t, err)
			_, err = NewTokenSource(context.Background(), Config{CredentialsJSON: data})
			assert.Check(t, errors.Is(err, ErrInvalidCredentials), "got %v", err)
			for _, s := range tc.contains {
				assert.Check(t, is.ErrorContains(err, s))
			}
			assertNoSecrets(t, err, []string{"not-a-real-key-SECRET", "PRIVATE KEY"})
		})
	}
}
