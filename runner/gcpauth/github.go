package gcpauth

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/sethvargo/go-githubactions"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google/externalaccount"
)

const (
	jwtTokenType      = "urn:ietf:params:oauth:token-type:jwt"
	githubOIDCIssuer  = "https://token.actions.githubusercontent.com"
	envOIDCRequestURL = "ACTIONS_ID_TOKEN_REQUEST_URL"
	envOIDCRequestTok = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
)

// oidcSupplier fetches a GitHub OIDC token for every STS exchange (they live
// about 5 minutes, so one is never reused). It records its last error, which
// x/oauth2 flattens into a string when impersonation is on.
type oidcSupplier struct {
	action   *githubactions.Action
	audience string
	redact   *redactor

	mu      sync.Mutex
	lastErr error
}

// SubjectToken implements externalaccount.SubjectTokenSupplier.
func (s *oidcSupplier) SubjectToken(ctx context.Context, _ externalaccount.SupplierOptions) (string, error) {
	tok, err := s.action.GetIDToken(ctx, s.audience)
	switch {
	case err != nil:
		err = fmt.Errorf("get github oidc token for audience %s: %s: %w; check that the job has `permissions: id-token: write` and that the request URL and token come from this job run", s.audience, s.redact.clean(transportSummary(err)), ErrNoOIDC)
	case tok == "":
		err = fmt.Errorf("get github oidc token for audience %s: github answered without a token: %w; check that the job has `permissions: id-token: write` and that the request URL is ACTIONS_ID_TOKEN_REQUEST_URL", s.audience, ErrNoOIDC)
	default:
		s.redact.add(tok)
	}
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
	if err != nil {
		return "", err
	}
	return tok, nil
}

func (s *oidcSupplier) reset() {
	s.mu.Lock()
	s.lastErr = nil
	s.mu.Unlock()
}

func (s *oidcSupplier) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// wif is a validated Workload Identity Federation setup; it explains
// failures in its own terms.
type wif struct {
	provider       string // projects/N/locations/global/workloadIdentityPools/P/providers/X
	serviceAccount string
	oidcAudience   string
	impersonate    bool
	redact         *redactor
	supplier       *oidcSupplier // nil for a credentials JSON
}

func (w wif) stsAudience() string { return "//iam.googleapis.com/" + w.provider }

// principalSet is the member to grant roles/iam.workloadIdentityUser to:
// the jobs of one GitHub environment (each target's account has its own,
// ci/targets), the provider's condition having pinned repository and branch.
func (w wif) principalSet() string {
	pool := w.provider[:strings.Index(w.provider, "/providers/")]
	return "principalSet://iam.googleapis.com/" + pool + "/attribute.environment/ENVIRONMENT"
}

func githubSource(ctx context.Context, c Config, red *redactor) (oauth2.TokenSource, error) {
	var problems []error
	if c.OIDCRequestURL == "" || c.OIDCRequestToken == "" {
		missing := envOIDCRequestURL
		if c.OIDCRequestURL != "" {
			missing = envOIDCRequestTok
		}
		problems = append(problems, fmt.Errorf("github oidc: %s is empty: %w; give the job `permissions: id-token: write` (GitHub sets ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN only then) and pass both values", missing, ErrNoOIDC))
	}
	var provider string
	if c.WorkloadIdentityProvider == "" {
		problems = append(problems, fmt.Errorf("no Workload Identity provider: %w; pass --workload-identity-provider or set the target's identity in ci/targets", ErrConfig))
	} else if p, err := parseProvider(c.WorkloadIdentityProvider); err != nil {
		problems = append(problems, err)
	} else {
		provider = p
	}
	if c.ServiceAccount == "" {
		problems = append(problems, fmt.Errorf("no service account to impersonate: %w; pass --service-account or set the target's identity in ci/targets", ErrConfig))
	} else if !strings.Contains(c.ServiceAccount, "@") || strings.ContainsAny(c.ServiceAccount, "/ :") {
		problems = append(problems, fmt.Errorf("service account %q is not an email (NAME@PROJECT.iam.gserviceaccount.com): %w", c.ServiceAccount, ErrConfig))
	}
	if err := joinErrs(problems); err != nil {
		return nil, fmt.Errorf("set up github workload identity federation: %w", err)
	}
	if c.OIDCAudience == "" {
		c.OIDCAudience = "https://iam.googleapis.com/" + provider
	}

	red.add(c.OIDCRequestToken)
	getenv := func(key string) string {
		switch key {
		case envOIDCRequestURL:
			return c.OIDCRequestURL
		case envOIDCRequestTok:
			return c.OIDCRequestToken
		}
		return ""
	}
	sup := &oidcSupplier{
		action: githubactions.New(
			githubactions.WithGetenv(getenv),
			githubactions.WithHTTPClient(c.HTTPClient),
			githubactions.WithWriter(io.Discard),
		),
		audience: c.OIDCAudience,
		redact:   red,
	}
	w := wif{
		provider:       provider,
		serviceAccount: c.ServiceAccount,
		oidcAudience:   c.OIDCAudience,
		impersonate:    true,
		redact:         red,
		supplier:       sup,
	}
	conf := externalaccount.Config{
		Audience:                       w.stsAudience(),
		SubjectTokenType:               jwtTokenType,
		TokenURL:                       c.Endpoints.STS,
		ServiceAccountImpersonationURL: c.Endpoints.IAMCredentials + "/v1/projects/-/serviceAccounts/" + c.ServiceAccount + ":generateAccessToken",
		Scopes:                         c.Scopes,
		SubjectTokenSupplier:           sup,
	}
	// Build once now so configuration errors surface here, not at first use.
	if _, err := externalaccount.NewTokenSource(ctx, conf); err != nil {
		return nil, fmt.Errorf("set up github workload identity federation: %s: %w", shorten(err.Error()), ErrConfig)
	}
	return &source{
		build:     func() (oauth2.TokenSource, error) { return externalaccount.NewTokenSource(ctx, conf) },
		diagnose:  w.diagnose,
		beforeTok: sup.reset,
		now:       c.Now,
	}, nil
}

// diagnose turns an x/oauth2 error from the federation chain into one that
// names the likely fix and holds no token.
func (w wif) diagnose(err error) error {
	if w.supplier != nil {
		if serr := w.supplier.err(); serr != nil {
			return fmt.Errorf("get google access token: %w", serr)
		}
	}
	if msg := err.Error(); strings.Contains(msg, "oauth2/google/externalaccount: status code") ||
		strings.Contains(msg, "URL-sourced credential") || strings.Contains(msg, "subject token") {
		return fmt.Errorf("get the subject token named by the credentials file's credential_source: %s: %w; in GitHub Actions the job needs `permissions: id-token: write`, and the credentials file must come from this job run", shorten(w.redact.clean(msg)), ErrNoOIDC)
	}
	e, nested, ok := parseLibError(err)
	if !ok {
		return fmt.Errorf("get google access token through workload identity federation: %s: %w; check network access to sts.googleapis.com and iamcredentials.googleapis.com", w.redact.clean(transportSummary(err)), ErrUnavailable)
	}
	e.message = shorten(w.redact.clean(e.message))
	e.code = w.redact.clean(e.code)
	if nested || !w.impersonate {
		return w.stsError(e)
	}
	return w.iamError(e)
}

func (w wif) stsError(e apiError) error {
	const what = "exchange the github oidc token at google sts"
	msg := strings.ToLower(e.message)
	switch {
	case e.status >= 500:
		return fmt.Errorf("%s: %s: %w; google had an internal error, retry the job", what, e, ErrUnavailable)
	case e.code == "unauthorized_client" || strings.Contains(msg, "attribute condition"):
		return fmt.Errorf("%s: %s: %w: %w; the provider's attribute condition rejected this job: make the condition of %s accept this repository and branch (for example assertion.repository == 'OWNER/REPO'), or run from an allowed branch", what, e, ErrExchange, ErrPermission, w.provider)
	case e.code == "invalid_target" || strings.Contains(msg, "does not exist") || strings.Contains(msg, "disabled or deleted"):
		return fmt.Errorf("%s: %s: %w; workload identity provider %s does not exist or is disabled: check the project NUMBER, pool and provider names (gcloud iam workload-identity-pools providers list)", what, e, ErrExchange, w.provider)
	case strings.Contains(msg, "audience"):
		return fmt.Errorf("%s: %s: %w; the token's audience does not match the provider: the oidc audience is %s, so the provider %s must list it in its allowed audiences (or leave them empty), and the provider name must be exact", what, e, ErrExchange, w.oidcAudience, w.provider)
	case strings.Contains(msg, "attribute") || strings.Contains(msg, "mapping"):
		return fmt.Errorf("%s: %s: %w; fix the provider's attribute mapping (google.subject=assertion.sub, attribute.repository=assertion.repository, attribute.environment=assertion.environment) on %s", what, e, ErrExchange, w.provider)
	case e.code == "invalid_grant":
		return fmt.Errorf("%s: %s: %w; google did not accept the github token: check that provider %s has issuer %s, allowed audience %s, and that the token is fresh (runner clock)", what, e, ErrExchange, w.provider, githubOIDCIssuer, w.oidcAudience)
	case e.status == 403:
		return fmt.Errorf("%s: %s: %w: %w; check the provider's attribute condition and that the STS API is enabled in the provider's project", what, e, ErrExchange, ErrPermission)
	default:
		return fmt.Errorf("%s: %s: %w; check workload identity provider %s and its audience %s", what, e, ErrExchange, w.provider, w.oidcAudience)
	}
}

func (w wif) iamError(e apiError) error {
	what := "impersonate service account " + w.serviceAccount
	switch {
	case e.status == 403 && strings.Contains(e.message, "iam.serviceAccounts.getAccessToken"):
		return fmt.Errorf("%s: %s: %w; the federated identity lacks iam.serviceAccounts.getAccessToken on %s: grant roles/iam.workloadIdentityUser on the service account to %s (gcloud iam service-accounts add-iam-policy-binding %s --role roles/iam.workloadIdentityUser --member ...), and check that the provider maps attribute.environment", what, e, ErrPermission, w.serviceAccount, w.principalSet(), w.serviceAccount)
	case e.status == 403 || e.status == 401:
		return fmt.Errorf("%s: %s: %w; grant roles/iam.workloadIdentityUser on %s to %s (it carries iam.serviceAccounts.getAccessToken), check the provider's attribute condition, and enable the IAM Service Account Credentials API", what, e, ErrPermission, w.serviceAccount, w.principalSet())
	case e.status == 404:
		return fmt.Errorf("%s: %s: %w; service account %s does not exist: check its email", what, e, ErrNotFound, w.serviceAccount)
	case e.status >= 500:
		return fmt.Errorf("%s: %s: %w; google had an internal error, retry the job", what, e, ErrUnavailable)
	default:
		return fmt.Errorf("%s: %s: %w; check the service account email and the requested scopes", what, e, ErrConfig)
	}
}
