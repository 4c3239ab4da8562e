package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/ringg/ringg-ci/runner/gcpauth"
)

// The app's credentials Secret and the runner's sign-in read one table of
// Google credentials types (gcpauth.CredentialTypes). This test fails when
// either grows a rule of its own: for every type, a complete file passes
// both (or, for a type the runner does not sign in with, passes the Secret
// and is refused by the sign-in for its type), and a file missing any
// required field is refused by both, naming the field.
func TestCredentialTypesAgreeWithTheRunnersSignIn(t *testing.T) {
	fixtures := map[string]string{
		"external_account":             "valid-creds-external-account.json",
		"service_account":              "valid-creds-service-account.json",
		"authorized_user":              "valid-creds-authorized-user.json",
		"impersonated_service_account": "valid-creds-impersonated.json",
	}
	signIn := func(doc []byte) error {
		_, err := gcpauth.NewTokenSource(context.Background(), gcpauth.Config{CredentialsJSON: doc})
		return err
	}
	for _, ct := range gcpauth.CredentialTypes() {
		t.Run(ct.Name, func(t *testing.T) {
			file, ok := fixtures[ct.Name]
			assert.Assert(t, ok, "no complete %s file in testdata: add one and name it here", ct.Name)
			doc := readTestdata(t, file)
			assert.Check(t, is.Len(parseCreds(doc), 0), "the app's Secret takes a complete %s file", ct.Name)
			if ct.SignIn {
				assert.Check(t, signIn(doc), "the runner signs in with a complete %s file", ct.Name)
			} else {
				err := signIn(doc)
				assert.Check(t, errors.Is(err, gcpauth.ErrInvalidCredentials), "got %v", err)
				assert.Check(t, is.ErrorContains(err, fmt.Sprintf(`field "type" is %q`, ct.Name)))
			}

			for _, field := range ct.Required {
				var fields map[string]json.RawMessage
				assert.NilError(t, json.Unmarshal(doc, &fields))
				delete(fields, field)
				without, err := json.Marshal(fields)
				assert.NilError(t, err)
				problems := parseCreds(without)
				assert.Check(t, is.Len(problems, 1), "the app's Secret refuses a %s file without %s", ct.Name, field)
				for _, p := range problems {
					assert.Check(t, is.ErrorContains(p, field))
				}
				if ct.SignIn {
					err := signIn(without)
					assert.Check(t, errors.Is(err, gcpauth.ErrInvalidCredentials), "the runner refuses a %s file without %s, got %v", ct.Name, field, err)
					assert.Check(t, is.ErrorContains(err, fmt.Sprintf("field %q is missing", field)))
				}
			}
		})
	}
}
