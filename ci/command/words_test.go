package command_test

import (
	"testing"

	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/ci/command"
)

// Each error the runner raises about an input the face passes, as the
// runner words it, reads in the module's flags when the module ran it.
func TestInModuleWords(t *testing.T) {
	tests := []struct{ name, runner, module string }{
		{"no credentials",
			"ringg-ci status: get google credentials: none given: no google credentials; pass an access token (gcloud auth print-access-token), a credentials JSON, or, in GitHub Actions, ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN (the job needs `permissions: id-token: write` for GitHub to set them)",
			"ringg-ci status: get google credentials: none given: no google credentials; " + command.ModuleCredentials},
		{"half of the OIDC pair",
			"github oidc: ACTIONS_ID_TOKEN_REQUEST_TOKEN is empty: no github oidc token; give the job `permissions: id-token: write` (GitHub sets ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN only then) and pass both values",
			"github oidc: --oidc-request-token (ACTIONS_ID_TOKEN_REQUEST_TOKEN) is empty: no github oidc token; give the job `permissions: id-token: write` (GitHub sets ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN only then) and pass both: --oidc-request-url env://ACTIONS_ID_TOKEN_REQUEST_URL --oidc-request-token env://ACTIONS_ID_TOKEN_REQUEST_TOKEN"},
		{"an empty access token",
			"empty document: --access-token-file was given but is empty (a GitHub secret missing from the job's environment expands to an empty string): pass the document, or leave --access-token-file out to keep what the release has",
			"empty document: --access-token was given but is empty (a GitHub secret missing from the job's environment expands to an empty string): pass the document, or leave --access-token out to keep what the release has"},
		{"a kubeconfig that runs a plugin",
			`load kubeconfig: context "gke": user "u" runs "gke-gcloud-auth-plugin": kubeconfig uses an exec credential plugin; it cannot run inside Dagger: pass an access token (--access-token-file or $RINGG_CI_ACCESS_TOKEN: gcloud auth print-access-token) and no kubeconfig, so that the GKE API is used`,
			`load kubeconfig: context "gke": user "u" runs "gke-gcloud-auth-plugin": kubeconfig uses an exec credential plugin; it cannot run inside Dagger: pass --access-token cmd://"gcloud auth print-access-token" and no --kubeconfig, so that the GKE API is used`},
		{"a kubeconfig context for another cluster",
			"kubeconfig reaches another cluster: …: pass --context gke_p_l_c (or a kubeconfig for that cluster), or override the target's cluster on purpose with --cluster-name/--cluster-location/--project",
			"kubeconfig reaches another cluster: …: pass --kube-context gke_p_l_c (or a kubeconfig for that cluster), or override the target's cluster on purpose with --cluster-name/--cluster-location/--project"},
		{"words the module shares are left alone",
			"read --secrets-json: key \"A B\" is not a variable name",
			"read --secrets-json: key \"A B\" is not a variable name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, command.InModuleWords(tc.runner), tc.module)
		})
	}
}
