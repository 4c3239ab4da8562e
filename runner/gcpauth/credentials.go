package gcpauth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// staticSource serves a token it cannot refresh. It has no expiry: the
// token's real lifetime is unknown, and Google answers 401 once it lapses.
func staticSource(token string) oauth2.TokenSource {
	return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: strings.TrimSpace(token), TokenType: "Bearer"})
}

// credentialsFile holds the fields we validate or must keep out of errors.
type credentialsFile struct {
	Type                           string `json:"type"`
	TokenURI                       string `json:"token_uri"`
	TokenURL                       string `json:"token_url"`
	ServiceAccountImpersonationURL string `json:"service_account_impersonation_url"`
	Audience                       string `json:"audience"`
	ClientEmail                    string `json:"client_email"`
	PrivateKey                     string `json:"private_key"`
	ClientSecret                   string `json:"client_secret"`
	RefreshToken                   string `json:"refresh_token"`
	CredentialSource               *struct {
		Executable json.RawMessage   `json:"executable"`
		Headers    map[string]string `json:"headers"`
	} `json:"credential_source"`
}

var typePattern = regexp.MustCompile(`^[a-z_]{1,40}$`)

func jsonSource(ctx context.Context, c Config, red *redactor) (oauth2.TokenSource, error) {
	const what = "read google credentials JSON"
	var f credentialsFile
	if err := json.Unmarshal(c.CredentialsJSON, &f); err != nil {
		// json errors quote at most a character of the input.
		return nil, fmt.Errorf("%s: it does not parse as JSON (%v): %w; pass the key or credentials file itself", what, err, ErrInvalidCredentials)
	}
	accepted := strings.Join(signInTypes(), ", ")
	ct, known := credentialType(f.Type)
	switch {
	case f.Type == "":
		return nil, fmt.Errorf("%s: field \"type\" is missing: %w; accepted types: %s", what, ErrInvalidCredentials, accepted)
	case !known || !ct.SignIn:
		shown := "an unsupported value"
		if typePattern.MatchString(f.Type) {
			shown = fmt.Sprintf("%q", f.Type)
		}
		return nil, fmt.Errorf("%s: field \"type\" is %s: %w; accepted types: %s", what, shown, ErrInvalidCredentials, accepted)
	}

	for _, s := range []string{f.PrivateKey, f.ClientSecret, f.RefreshToken} {
		red.add(s)
	}
	var problems []error
	check := func(field, raw string) {
		if raw == "" {
			return
		}
		if err := checkTokenURL(raw, c.AllowedTokenHosts); err != nil {
			problems = append(problems, fmt.Errorf("field %q: %w", field, err))
		}
	}
	check("token_uri", f.TokenURI)
	check("token_url", f.TokenURL)
	check("service_account_impersonation_url", f.ServiceAccountImpersonationURL)
	if cs := f.CredentialSource; cs != nil {
		for _, v := range cs.Headers {
			red.add(strings.TrimPrefix(v, "Bearer "))
		}
		if len(cs.Executable) > 0 && string(cs.Executable) != "null" {
			problems = append(problems, fmt.Errorf("field \"credential_source.executable\": executable credential sources are not supported: %w; use the url or file form google-github-actions/auth writes, or pass the GitHub OIDC values", ErrInvalidCredentials))
		}
	}
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(c.CredentialsJSON, &fields) // an object: it parsed into f
	for _, name := range ct.Missing(fields) {
		problems = append(problems, fmt.Errorf("field %q is missing: %w", name, ErrInvalidCredentials))
	}
	if err := joinErrs(problems); err != nil {
		return nil, fmt.Errorf("%s of type %s: %w; pass the file as Google tooling wrote it", what, f.Type, err)
	}

	typ := google.CredentialsType(f.Type)
	params := google.CredentialsParams{Scopes: c.Scopes}
	build := func() (oauth2.TokenSource, error) {
		creds, err := google.CredentialsFromJSONWithTypeAndParams(ctx, c.CredentialsJSON, typ, params)
		if err != nil {
			return nil, err
		}
		return creds.TokenSource, nil
	}
	if _, err := build(); err != nil {
		return nil, fmt.Errorf("%s of type %s: %s: %w; check the file is complete (a service_account key needs client_email and private_key)", what, f.Type, shorten(red.clean(err.Error())), ErrInvalidCredentials)
	}

	var diagnose func(error) error
	switch typ {
	case google.ExternalAccount:
		w := wif{serviceAccount: saFromImpersonationURL(f.ServiceAccountImpersonationURL), impersonate: f.ServiceAccountImpersonationURL != "", redact: red}
		w.provider = strings.TrimPrefix(f.Audience, "//iam.googleapis.com/")
		w.oidcAudience = "the audience in credential_source.url"
		if !strings.Contains(w.provider, "/providers/") {
			w.provider += "/providers/UNKNOWN"
		}
		diagnose = w.diagnose
	default:
		diagnose = func(err error) error { return tokenEndpointError(err, f, red) }
	}
	return &source{build: build, diagnose: diagnose, now: c.Now}, nil
}

func saFromImpersonationURL(u string) string {
	_, after, ok := strings.Cut(u, "/serviceAccounts/")
	if !ok {
		return "(none)"
	}
	sa, _, _ := strings.Cut(after, ":")
	return sa
}

// tokenEndpointError explains failures of the service_account and
// authorized_user flows, which talk to oauth2.googleapis.com/token.
func tokenEndpointError(err error, f credentialsFile, red *redactor) error {
	what := "get google access token with " + f.Type + " credentials"
	if f.ClientEmail != "" {
		what += " of " + f.ClientEmail
	}
	e, _, ok := parseLibError(err)
	if !ok {
		return fmt.Errorf("%s: %s: %w; check network access to the token endpoint", what, shorten(red.clean(transportSummary(err))), ErrUnavailable)
	}
	e.message = shorten(red.clean(e.message))
	e.code = red.clean(e.code)
	switch {
	case e.status >= 500:
		return fmt.Errorf("%s: %s: %w; google had an internal error, retry", what, e, ErrUnavailable)
	case e.code == "invalid_grant" && f.Type == string(google.AuthorizedUser):
		return fmt.Errorf("%s: %s: %w; the refresh token was revoked or expired: run `gcloud auth application-default login` again", what, e, ErrInvalidCredentials)
	case e.code == "invalid_grant":
		return fmt.Errorf("%s: %s: %w; the key was deleted or disabled, or the machine clock is off: create a new key for the service account", what, e, ErrInvalidCredentials)
	case e.status == 403:
		return fmt.Errorf("%s: %s: %w; the account may be disabled", what, e, ErrPermission)
	default:
		return fmt.Errorf("%s: %s: %w; check the credentials file", what, e, ErrInvalidCredentials)
	}
}

// checkTokenURL refuses to send credentials anywhere but Google (or a host
// a test allowed): a credentials file is input, and its URLs receive tokens.
func checkTokenURL(raw string, allowed []string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("not a URL: %w", ErrInvalidCredentials)
	}
	if slices.Contains(allowed, u.Host) || slices.Contains(allowed, u.Hostname()) {
		return nil
	}
	if u.Scheme != "https" || !(u.Hostname() == "googleapis.com" || strings.HasSuffix(u.Hostname(), ".googleapis.com")) {
		return fmt.Errorf("host %s is not a googleapis.com https endpoint: %w; use a credentials file generated by Google tooling", u.Host, ErrInvalidCredentials)
	}
	return nil
}
