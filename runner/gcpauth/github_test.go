package gcpauth

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestGitHubOIDCExchangesOnceForConcurrentCallers(t *testing.T) {
	f := newFakeGoogle(t)
	ctx, cancel := context.WithCancel(context.Background())
	ts, err := NewTokenSource(ctx, f.config())
	assert.NilError(t, err)
	cancel() // the source must not depend on the construction context's life

	const callers = 100
	var wg sync.WaitGroup
	tokens := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() {
			tok, err := ts.Token()
			errs[i] = err
			if err == nil {
				tokens[i] = tok.AccessToken
			}
		})
	}
	wg.Wait()
	for i := range callers {
		assert.NilError(t, errs[i])
		assert.Check(t, tokens[i] == "ya29.impersonated-token-1", "caller %d got another token", i)
	}
	assert.Check(t, is.Equal(f.oidcCalls.Load(), int32(1)))
	assert.Check(t, is.Equal(f.stsCalls.Load(), int32(1)))
	assert.Check(t, is.Equal(f.iamCalls.Load(), int32(1)))

	// A later call still reuses the cached 1 h token.
	_, err = ts.Token()
	assert.NilError(t, err)
	assert.Check(t, is.Equal(f.iamCalls.Load(), int32(1)))
}

func TestGitHubOIDCRefreshesExpiredTokens(t *testing.T) {
	f := newFakeGoogle(t)
	// Tokens that are already inside oauth2's 10 s expiry margin: every Token
	// call must run the whole chain again, with a fresh OIDC token each time.
	f.set(func(f *fakeGoogle) { f.stsExpiresIn, f.iamLifetime = 1, time.Second })
	ts, err := NewTokenSource(context.Background(), f.config())
	assert.NilError(t, err)

	var got []string
	for range 3 {
		tok, err := ts.Token()
		assert.NilError(t, err)
		got = append(got, tok.AccessToken)
	}
	assert.Check(t, got[0] != got[1] && got[1] != got[2], "expired tokens were reused")
	assert.Check(t, is.Equal(f.oidcCalls.Load(), int32(3)))
	assert.Check(t, is.Equal(f.stsCalls.Load(), int32(3)))
	assert.Check(t, is.Equal(f.iamCalls.Load(), int32(3)))
}

func TestGitHubOIDCRefreshesImpersonatedTokenOnlyWhenSTSTokenIsValid(t *testing.T) {
	f := newFakeGoogle(t)
	f.set(func(f *fakeGoogle) { f.stsExpiresIn, f.iamLifetime = 3600, time.Second })
	ts, err := NewTokenSource(context.Background(), f.config())
	assert.NilError(t, err)
	for range 2 {
		_, err := ts.Token()
		assert.NilError(t, err)
	}
	assert.Check(t, is.Equal(f.oidcCalls.Load(), int32(1)))
	assert.Check(t, is.Equal(f.stsCalls.Load(), int32(1)))
	assert.Check(t, is.Equal(f.iamCalls.Load(), int32(2)))
}

func TestGitHubOIDCResetDropsCache(t *testing.T) {
	f := newFakeGoogle(t)
	ts, err := NewTokenSource(context.Background(), f.config())
	assert.NilError(t, err)
	first, err := ts.Token()
	assert.NilError(t, err)

	r, ok := ts.(interface{ ResetTokenOlderThan(time.Time) })
	assert.Assert(t, ok, "the source must be resettable for client-go's 401 handling")
	r.ResetTokenOlderThan(time.Now().Add(-time.Hour)) // token is newer: kept
	again, err := ts.Token()
	assert.NilError(t, err)
	assert.Check(t, first.AccessToken == again.AccessToken)

	r.ResetTokenOlderThan(time.Now().Add(time.Second))
	fresh, err := ts.Token()
	assert.NilError(t, err)
	assert.Check(t, first.AccessToken != fresh.AccessToken, "reset did not fetch a new token")
	assert.Check(t, is.Equal(f.iamCalls.Load(), int32(2)))
}

func TestGitHubOIDCErrors(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(f *fakeGoogle)
		sentinel []error
		contains []string
	}{
		{
			name:     "oidc answer without value",
			setup:    func(f *fakeGoogle) { f.oidcStatus, f.oidcBody = 200, `{"count":0}` },
			sentinel: []error{ErrNoOIDC},
			contains: []string{"without a token", "permissions: id-token: write"},
		},
		{
			name:     "oidc request token refused",
			setup:    func(f *fakeGoogle) { f.oidcStatus, f.oidcBody = 403, `{"message":"bad token %s"}` },
			sentinel: []error{ErrNoOIDC},
			contains: []string{"permissions: id-token: write"},
		},
		{
			name: "sts audience mismatch",
			setup: func(f *fakeGoogle) {
				f.stsStatus, f.stsBody = 400, `{"error":"invalid_grant","error_description":"The audience in ID Token [https://example.com] does not match the expected audience. Token: %s"}`
			},
			sentinel: []error{ErrExchange},
			contains: []string{"invalid_grant", "allowed audiences", "https://iam.googleapis.com/" + testProvider},
		},
		{
			name: "sts provider not found",
			setup: func(f *fakeGoogle) {
				f.stsStatus, f.stsBody = 400, `{"error":"invalid_target","error_description":"The target service indicated by the \"audience\" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist."}`
			},
			sentinel: []error{ErrExchange},
			contains: []string{"does not exist or is disabled", "project NUMBER", testProvider},
		},
		{
			name: "sts attribute condition",
			setup: func(f *fakeGoogle) {
				f.stsStatus, f.stsBody = 400, `{"error":"unauthorized_client","error_description":"The given credential is rejected by the attribute condition."}`
			},
			sentinel: []error{ErrExchange, ErrPermission},
			contains: []string{"attribute condition", "assertion.repository"},
		},
		{
			name:     "sts down",
			setup:    func(f *fakeGoogle) { f.stsStatus, f.stsBody = 503, `{"error":"temporarily_unavailable"}` },
			sentinel: []error{ErrUnavailable},
			contains: []string{"retry"},
		},
		{
			name: "missing getAccessToken permission",
			setup: func(f *fakeGoogle) {
				f.iamStatus, f.iamBody = 403, `{"error":{"code":403,"message":"Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist). caller token %s","status":"PERMISSION_DENIED"}}`
			},
			sentinel: []error{ErrPermission},
			contains: []string{"iam.serviceAccounts.getAccessToken", "roles/iam.workloadIdentityUser", "principalSet://iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/test-pool/attribute.environment/ENVIRONMENT", testSA},
		},
		{
			name: "missing workloadIdentityUser binding",
			setup: func(f *fakeGoogle) {
				f.iamStatus, f.iamBody = 403, `{"error":{"code":403,"message":"The caller does not have permission","status":"PERMISSION_DENIED"}}`
			},
			sentinel: []error{ErrPermission},
			contains: []string{"grant roles/iam.workloadIdentityUser on " + testSA, "attribute condition"},
		},
		{
			name: "service account not found",
			setup: func(f *fakeGoogle) {
				f.iamStatus, f.iamBody = 404, `{"error":{"code":404,"message":"Not found; Gaia id not found for email deployer@test-project.iam.gserviceaccount.com","status":"NOT_FOUND"}}`
			},
			sentinel: []error{ErrNotFound},
			contains: []string{"does not exist", testSA},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeGoogle(t)
			f.set(tc.setup)
			ts, err := NewTokenSource(context.Background(), f.config())
			assert.NilError(t, err)
			_, err = ts.Token()
			assert.Assert(t, err != nil)
			for _, s := range tc.sentinel {
				assert.Check(t, errors.Is(err, s), "want %v in: %v", s, err)
			}
			for _, s := range tc.contains {
				assert.Check(t, is.Contains(err.Error(), s))
			}
			assertNoSecrets(t, err, f.secrets())
			assert.Check(t, !strings.Contains(err.Error(), "eyJ"), "error contains a JWT")
		})
	}
}

func TestNewTokenSourceValidation(t *testing.T) {
	tests := []struct {
		name     string
		config   Config
		sentinel error
		contains []string
	}{
		{
			name:     "no credentials at all",
			config:   Config{},
			sentinel: ErrNoCredentials,
			contains: []string{"permissions: id-token: write", "access token", "credentials JSON"},
		},
		{
			name:     "two kinds of credentials",
			config:   Config{AccessToken: "ya29.static-SECRET", CredentialsJSON: []byte(`{}`)},
			sentinel: ErrNoCredentials,
			contains: []string{"pass only one"},
		},
		{
			name:     "oidc request token missing",
			config:   Config{OIDCRequestURL: "https://example.invalid/token"},
			sentinel: ErrNoOIDC,
			contains: []string{"ACTIONS_ID_TOKEN_REQUEST_TOKEN is empty", "permissions: id-token: write"},
		},
		{
			name:     "oidc request url missing",
			config:   Config{OIDCRequestToken: testRequestToken},
			sentinel: ErrNoOIDC,
			contains: []string{"ACTIONS_ID_TOKEN_REQUEST_URL is empty"},
		},
		{
			name:     "no identity: it belongs to the target, never to a default",
			config:   Config{OIDCRequestURL: "https://example.invalid/token", OIDCRequestToken: testRequestToken},
			sentinel: ErrConfig,
			contains: []string{"no Workload Identity provider", "--workload-identity-provider", "no service account to impersonate", "--service-account"},
		},
		{
			name: "project id instead of number, and a bad service account",
			config: Config{
				OIDCRequestURL: "https://example.invalid/token", OIDCRequestToken: testRequestToken,
				WorkloadIdentityProvider: "projects/desivocalprod01/locations/global/workloadIdentityPools/p/providers/github",
				ServiceAccount:           "deployer",
			},
			sentinel: ErrConfig,
			contains: []string{"project NUMBER", `service account "deployer" is not an email`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTokenSource(context.Background(), tc.config)
			assert.Assert(t, errors.Is(err, tc.sentinel), "got %v", err)
			for _, s := range tc.contains {
				assert.Check(t, is.Contains(err.Error(), s))
			}
			assertNoSecrets(t, err, []string{testRequestToken, "ya29.static-SECRET"})
		})
	}
}

func TestParseProviderAcceptsAudienceForms(t *testing.T) {
	for _, in := range []string{
		testProvider,
		"//iam.googleapis.com/" + testProvider,
		"https://iam.googleapis.com/" + testProvider,
	} {
		got, err := parseProvider(in)
		assert.NilError(t, err)
		assert.Check(t, is.Equal(got, testProvider))
	}
}

func TestAccessTokenIsStatic(t *testing.T) {
	ts, err := NewTokenSource(context.Background(), Config{AccessToken: " ya29.laptop-token\n"})
	assert.NilError(t, err)
	tok, err := ts.Token()
	assert.NilError(t, err)
	assert.Check(t, tok.AccessToken == "ya29.laptop-token", "token not trimmed")
	assert.Check(t, tok.Valid())
	_, isStatic := ts.(interface{ ResetTokenOlderThan(time.Time) })
	assert.Check(t, !isStatic, "a static token cannot be reset")
	var _ oauth2.TokenSource = ts
}
