// Package command is the ringg-ci runner's command line as both of its
// sides know it: the verbs, their flags and the environment variables the
// runner reads its credentials and secret documents from. The module's face
// builds invocations from these names and the runner (runner/cli) defines
// its flags with them, so neither can drift from the other.
package command

// The verbs of the runner.
const (
	Deploy        = "deploy"
	Plan          = "plan"
	Promote       = "promote"
	Rollback      = "rollback"
	Status        = "status"
	Takeover      = "takeover"
	Health        = "health"
	Logs          = "logs"
	Scale         = "scale"
	Target        = "target"
	LintChart     = "lint-chart"
	RegistryLogin = "registry-login"
	// PodSpec and RunPod serve a replay: the app's container as the chart
	// configures it, and the app run as the kubelet runs it.
	PodSpec = "pod-spec"
	RunPod  = "run-pod"
	History = "history"
	Verify  = "verify"
)

// The flags of the runner's verbs, without their dashes (Arg adds them).
const (
	Branch           = "branch"
	Image            = "image"
	TargetName       = "target"
	Revision         = "revision"
	Timeout          = "timeout"
	Holder           = "holder"
	Soak             = "soak"
	ExpectedDigest   = "expected-digest"
	DryRun           = "dry-run"
	JSON             = "json"
	Chart            = "chart"
	Replicas         = "replicas"
	Wait             = "wait"
	Force            = "force"
	Since            = "since"
	Pod              = "pod"
	Tail             = "tail"
	DeleteOldRecords = "delete-old-records"
	Check            = "check"
	StandIn          = "stand-in"
	Out              = "out"
	PasswordFile     = "password-file"
	SecretsJSON      = "secrets-json"
	CredsJSON        = "creds-json"
	Reproduce        = "reproduce"
	Spec             = "spec"
	TimeScale        = "time-scale"
	Commit           = "commit"
	WaitUntilHealthy = "wait-until-healthy"
	Verification     = "verification"
	PrometheusURL    = "prometheus-url"
	Window           = "window"

	// Overrides of a target's defaults.
	Project         = "project"
	ImageRepository = "image-repository"
	ClusterName     = "cluster-name"
	ClusterLocation = "cluster-location"
	Namespace       = "namespace"

	// How to reach a cluster and Google.
	Kubeconfig               = "kubeconfig"
	Context                  = "context"
	Server                   = "server"
	TLSServerName            = "tls-server-name"
	WorkloadIdentityProvider = "workload-identity-provider"
	ServiceAccount           = "service-account"
	AccessTokenFile          = "access-token-file"
	CredentialsJSON          = "credentials-json"
)

// The environment variables the runner reads credentials and secret
// documents from; the face mounts each as a Dagger secret.
const (
	EnvKubeconfig      = "RINGG_CI_KUBECONFIG"
	EnvAccessToken     = "RINGG_CI_ACCESS_TOKEN"
	EnvCredentialsJSON = "RINGG_CI_CREDENTIALS_JSON"
	EnvSecretsJSON     = "RINGG_CI_SECRETS_JSON"
	EnvCredsJSON       = "RINGG_CI_CREDS_JSON"
	// GitHub Actions' own names for the OIDC token request.
	EnvOIDCRequestURL   = "ACTIONS_ID_TOKEN_REQUEST_URL"
	EnvOIDCRequestToken = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
)

// Arg is a flag as written on the command line: "--name".
func Arg(name string) string { return "--" + name }
