package command

import "strings"

// The runner's errors name the inputs it takes: its flags and environment
// variables. Run by the Dagger module, it was called by someone who typed
// `dagger call`: its errors must name the module's flags instead. The face
// sets EnvCaller to CallerModule, and the runner rewrites every error it
// prints with InModuleWords.
const (
	EnvCaller    = "RINGG_CI_CALLER"
	CallerModule = "module"
)

// ModuleCredentials says, with the module's flags, how to give it Google
// credentials or a cluster outside GKE.
const ModuleCredentials = `pass the module's --access-token cmd://"gcloud auth print-access-token", ` +
	`--credentials-json file://<credentials JSON>, or, in GitHub Actions, ` +
	`--oidc-request-url env://ACTIONS_ID_TOKEN_REQUEST_URL --oidc-request-token env://ACTIONS_ID_TOKEN_REQUEST_TOKEN ` +
	`(the job needs permissions id-token: write); for a cluster outside GKE, --kubeconfig file://<kubeconfig> --cluster tcp://localhost:<port>`

// moduleWords are the runner's phrases naming an input the face passes, and
// the module's for them, longest first where one holds another.
var moduleWords = []string{
	// gcpauth: no credentials at all.
	"pass an access token (gcloud auth print-access-token), a credentials JSON, or, in GitHub Actions, ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN (the job needs `permissions: id-token: write` for GitHub to set them)",
	ModuleCredentials,
	// gcpauth: half of the OIDC pair.
	"github oidc: " + EnvOIDCRequestURL + " is empty",
	"github oidc: --oidc-request-url (" + EnvOIDCRequestURL + ") is empty",
	"github oidc: " + EnvOIDCRequestToken + " is empty",
	"github oidc: --oidc-request-token (" + EnvOIDCRequestToken + ") is empty",
	"and pass both values",
	"and pass both: --oidc-request-url env://" + EnvOIDCRequestURL + " --oidc-request-token env://" + EnvOIDCRequestToken,
	// kube: a kubeconfig whose user runs a plugin.
	"pass an access token (" + Arg(AccessTokenFile) + " or $" + EnvAccessToken + ": gcloud auth print-access-token) and no kubeconfig",
	`pass --access-token cmd://"gcloud auth print-access-token" and no --kubeconfig`,
	// cli: each input by its flag.
	Arg(AccessTokenFile), "--access-token",
	"pass " + Arg(Context) + " ", "pass --kube-context ",
	Arg(TLSServerName), "--cluster-tls-server-name",
	"pass TLSServerName", "pass --cluster-tls-server-name",
	"$" + EnvKubeconfig, "--kubeconfig",
	"$" + EnvCredentialsJSON, "--credentials-json",
	"$" + EnvSecretsJSON, "--secrets-json",
	"$" + EnvCredsJSON, "--creds-json",
}

var moduleReplacer = strings.NewReplacer(moduleWords...)

// InModuleWords rewrites a runner error so that it names the module's
// flags, for someone who typed `dagger call`.
func InModuleWords(msg string) string { return moduleReplacer.Replace(msg) }
