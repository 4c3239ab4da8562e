package gcpauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// CloudPlatformScope is the OAuth scope that covers GKE and Artifact Registry.
const CloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform"

// Google API base URLs; Endpoints overrides them in tests.
const (
	DefaultSTSURL            = "https://sts.googleapis.com/v1/token"
	DefaultIAMCredentialsURL = "https://iamcredentials.googleapis.com"
	DefaultGKEURL            = "https://container.googleapis.com"
)

// Endpoints are the Google API URLs the package talks to. Empty fields take
// the public Google defaults; tests point them at loopback servers.
type Endpoints struct {
	// STS is the full token-exchange URL (default DefaultSTSURL).
	STS string
	// IAMCredentials is the base URL of the IAM Service Account Credentials API
	// (default DefaultIAMCredentialsURL).
	IAMCredentials string
	// GKE is the base URL of the Kubernetes Engine API (default DefaultGKEURL).
	GKE string
}

func (e Endpoints) withDefaults() Endpoints {
	if e.STS == "" {
		e.STS = DefaultSTSURL
	}
	if e.IAMCredentials == "" {
		e.IAMCredentials = DefaultIAMCredentialsURL
	}
	if e.GKE == "" {
		e.GKE = DefaultGKEURL
	}
	e.IAMCredentials = strings.TrimSuffix(e.IAMCredentials, "/")
	e.GKE = strings.TrimSuffix(e.GKE, "/")
	return e
}

// Config says where Google credentials come from. Set exactly one of
// AccessToken, CredentialsJSON, or the OIDC request URL and token.
type Config struct {
	// AccessToken is a plain access token (a laptop's
	// `gcloud auth print-access-token`). It is never refreshed: it stops
	// working when it expires, about an hour after it was printed.
	AccessToken string
	// CredentialsJSON is a Google credentials file: external_account (as
	// written by google-github-actions/auth), service_account key, or
	// authorized_user (gcloud application-default credentials).
	CredentialsJSON []byte

	// OIDCRequestURL is the value of ACTIONS_ID_TOKEN_REQUEST_URL. The values
	// are passed in rather than read from the environment because code in a
	// Dagger function cannot see the runner's environment.
	OIDCRequestURL string
	// OIDCRequestToken is the value of ACTIONS_ID_TOKEN_REQUEST_TOKEN.
	OIDCRequestToken string
	// OIDCAudience is the audience of the GitHub OIDC token. Default:
	// "https://iam.googleapis.com/" + WorkloadIdentityProvider, as
	// google-github-actions/auth uses.
	OIDCAudience string
	// WorkloadIdentityProvider is the provider's resource name
	// (projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER).
	// Required with the OIDC pair: identity belongs to the target deployed
	// (ci/targets), never to a package default.
	WorkloadIdentityProvider string
	// ServiceAccount is the email of the service account to impersonate;
	// required with the OIDC pair.
	ServiceAccount string

	// Scopes of the access token. Default CloudPlatformScope.
	Scopes []string
	// HTTPClient makes every request. Default: a client with a 30 s timeout.
	HTTPClient *http.Client
	// Endpoints overrides Google API URLs (tests).
	Endpoints Endpoints
	// AllowedTokenHosts are hosts (host or host:port), besides *.googleapis.com,
	// that a CredentialsJSON may send credentials to. Only tests need it.
	AllowedTokenHosts []string
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// source is what every constructor returns: it serialises Token calls,
// turns library errors into diagnosed ones, and can drop its cache when
// client-go saw a 401 (ResetTokenOlderThan).
type source struct {
	mu        sync.Mutex
	build     func() (oauth2.TokenSource, error)
	diagnose  func(error) error
	beforeTok func() // called with mu held before each inner Token call
	now       func() time.Time

	inner oauth2.TokenSource
	tok   *oauth2.Token
	got   time.Time
}

// Token returns a valid access token, refreshing it when it is about to
// expire.
func (s *source) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inner == nil {
		inner, err := s.build()
		if err != nil {
			return nil, s.diagnose(err)
		}
		s.inner = inner
	}
	if s.beforeTok != nil {
		s.beforeTok()
	}
	tok, err := s.inner.Token()
	if err != nil {
		return nil, s.diagnose(err)
	}
	if tok.AccessToken == "" {
		return nil, fmt.Errorf("get google access token: the token endpoint returned an empty access token; check the credentials and endpoints: %w", ErrExchange)
	}
	if s.tok == nil || s.tok.AccessToken != tok.AccessToken {
		s.tok, s.got = tok, s.now()
	}
	return tok, nil
}

// ResetTokenOlderThan drops the cached token if it was obtained before t, so
// the next Token call fetches a new one. client-go calls it after a 401.
func (s *source) ResetTokenOlderThan(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != nil && s.got.Before(t) {
		s.inner, s.tok = nil, nil
	}
}

// NewTokenSource returns a caching, self-refreshing token source for the
// credentials in c. The context carries values only: it may be cancelled
// after NewTokenSource returns without breaking later refreshes.
//
// The source refreshes its token by itself before it expires (OIDC tokens
// live about 5 minutes, federated tokens up to 10, impersonated tokens 1
// hour) and serialises refreshes, so many concurrent callers cause one
// exchange. Errors name the likely fix and never contain a token or
// credential.
func NewTokenSource(ctx context.Context, c Config) (oauth2.TokenSource, error) {
	kinds := 0
	if c.AccessToken != "" {
		kinds++
	}
	if len(c.CredentialsJSON) > 0 {
		kinds++
	}
	oidc := c.OIDCRequestURL != "" || c.OIDCRequestToken != ""
	if oidc {
		kinds++
	}
	switch {
	case kinds == 0:
		return nil, fmt.Errorf("get google credentials: none given: %w; pass an access token (gcloud auth print-access-token), a credentials JSON, or, in GitHub Actions, ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN (the job needs `permissions: id-token: write` for GitHub to set them)", ErrNoCredentials)
	case kinds > 1:
		return nil, fmt.Errorf("get google credentials: more than one of access token, credentials JSON and GitHub OIDC given: %w; pass only one", ErrNoCredentials)
	}
	ctx = context.WithoutCancel(ctx)
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if len(c.Scopes) == 0 {
		c.Scopes = []string{CloudPlatformScope}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Endpoints = c.Endpoints.withDefaults()
	switch {
	case c.AccessToken != "":
		return staticSource(c.AccessToken), nil
	case len(c.CredentialsJSON) > 0:
		red := &redactor{}
		c.HTTPClient = recordBearers(c.HTTPClient, red)
		return jsonSource(context.WithValue(ctx, oauth2.HTTPClient, c.HTTPClient), c, red)
	default:
		red := &redactor{}
		c.HTTPClient = recordBearers(c.HTTPClient, red)
		return githubSource(context.WithValue(ctx, oauth2.HTTPClient, c.HTTPClient), c, red)
	}
}

// providerPattern matches a workload identity provider resource name; the
// project must be the project NUMBER.
var providerPattern = regexp.MustCompile(`^projects/([0-9]+)/locations/global/workloadIdentityPools/([a-z0-9-]+)/providers/([a-z0-9-]+)$`)

// parseProvider validates a provider name, accepting the //iam.googleapis.com/
// and https://iam.googleapis.com/ forms too, and returns the bare form.
func parseProvider(p string) (string, error) {
	p = strings.TrimPrefix(p, "https:")
	p = strings.TrimPrefix(p, "//iam.googleapis.com/")
	if !providerPattern.MatchString(p) {
		hint := ""
		if strings.HasPrefix(p, "projects/") && !regexp.MustCompile(`^projects/[0-9]+/`).MatchString(p) {
			hint = " (the project must be the project NUMBER, not its id: gcloud projects describe PROJECT --format='value(projectNumber)')"
		}
		return "", fmt.Errorf("workload identity provider %q is not of the form projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER%s: %w", p, hint, ErrConfig)
	}
	return p, nil
}

// redactor removes known secret values from text before it goes into an
// error. Values are added as they become known (request token, OIDC JWTs).
type redactor struct {
	mu      sync.Mutex
	secrets []string
}

func (r *redactor) add(s string) {
	if len(s) < 4 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, old := range r.secrets {
		if old == s {
			return
		}
	}
	r.secrets = append(r.secrets, s)
	if len(r.secrets) > 16 { // old JWTs: keep the newest few
		r.secrets = r.secrets[len(r.secrets)-16:]
	}
}

func (r *redactor) clean(s string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, "[redacted]")
	}
	return redactJWTs(s)
}

// jwtPattern matches anything shaped like a JWT or a Google access token so
// that even values we never saw are not echoed.
var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*|ya29\.[A-Za-z0-9_.-]+`)

func redactJWTs(s string) string { return jwtPattern.ReplaceAllString(s, "[redacted]") }

func joinErrs(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errors.Join(errs...)
}

// recordBearers returns a copy of client that tells red every bearer token
// it sends, so an error that echoes one (IAM echoing the STS token) is
// redacted even though the token never passed through our code.
func recordBearers(client *http.Client, red *redactor) *http.Client {
	c := *client
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = bearerRecorder{base: base, red: red}
	return &c
}

type bearerRecorder struct {
	base http.RoundTripper
	red  *redactor
}

func (b bearerRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		b.red.add(v)
	}
	return b.base.RoundTrip(r)
}
