package gcpauth

import (
	"bytes"
	"encoding/json"
	"slices"

	"golang.org/x/oauth2/google"
)

// CredentialType is a kind of Google credentials file, named by its "type"
// field, with the fields Google's client libraries need in it.
type CredentialType struct {
	Name     string
	Required []string
	// SignIn is true when the runner signs in with it (NewTokenSource). The
	// app's credentials (runner/secrets) may be of any type listed.
	SignIn bool
}

// CredentialTypes are the Google credentials files ringg-ci knows, the one
// definition for the runner's sign-in and the app's credentials Secret, in
// the order messages list them.
func CredentialTypes() []CredentialType {
	return []CredentialType{
		{Name: string(google.ExternalAccount), Required: []string{"audience", "subject_token_type", "credential_source"}, SignIn: true},
		{Name: string(google.ServiceAccount), Required: []string{"client_email", "private_key"}, SignIn: true},
		{Name: string(google.AuthorizedUser), Required: []string{"client_id", "client_secret", "refresh_token"}, SignIn: true},
		{Name: string(google.ImpersonatedServiceAccount), Required: []string{"service_account_impersonation_url", "source_credentials"}},
	}
}

// credentialType is the CredentialType named name.
func credentialType(name string) (CredentialType, bool) {
	i := slices.IndexFunc(CredentialTypes(), func(c CredentialType) bool { return c.Name == name })
	if i < 0 {
		return CredentialType{}, false
	}
	return CredentialTypes()[i], true
}

// signInTypes names the types NewTokenSource accepts.
func signInTypes() []string {
	var names []string
	for _, c := range CredentialTypes() {
		if c.SignIn {
			names = append(names, c.Name)
		}
	}
	return names
}

// Missing lists the required fields that fields lacks or leaves empty
// (null, "", {} or []), in the order of Required.
func (c CredentialType) Missing(fields map[string]json.RawMessage) []string {
	var out []string
	for _, name := range c.Required {
		switch string(bytes.TrimSpace(fields[name])) {
		case "", "null", `""`, "{}", "[]":
			out = append(out, name)
		}
	}
	return out
}
