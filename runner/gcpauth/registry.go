package gcpauth

import (
	"fmt"

	"golang.org/x/oauth2"
)

// RegistryUser is the user name Artifact Registry expects with an access
// token as password.
const RegistryUser = "oauth2accesstoken"

// RegistryCredentials returns the user and password to log in to Artifact
// Registry: RegistryUser and a fresh access token from ts. The password is a
// secret: hand it to a secret store, never to a log.
func RegistryCredentials(ts oauth2.TokenSource) (user, password string, err error) {
	tok, err := ts.Token()
	if err != nil {
		return "", "", fmt.Errorf("get registry credentials: %w", err)
	}
	return RegistryUser, tok.AccessToken, nil
}
