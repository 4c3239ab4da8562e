package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ringg/ringg-ci/ci/command"
	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/gcpauth"
	"github.com/ringg/ringg-ci/runner/kube"
	"github.com/ringg/ringg-ci/runner/release"
	"github.com/ringg/ringg-ci/runner/secrets"
)

// tokenSource turns the credential options into a Google token source that
// refreshes by itself during long rollouts; a GitHub OIDC token is exchanged
// for t's identity.
func (r *runner) tokenSource(ctx context.Context, t targets.Target) (oauth2.TokenSource, error) {
	var c gcpauth.Config
	var err error
	if c.AccessToken, err = r.document(r.conn.accessTokenFile, EnvAccessToken, "--access-token-file"); err != nil {
		return nil, err
	}
	c.AccessToken = strings.TrimSpace(c.AccessToken)
	creds, err := r.document(r.conn.credentialsFile, EnvCredentialsJSON, "--credentials-json")
	if err != nil {
		return nil, err
	}
	if creds != "" {
		c.CredentialsJSON = []byte(creds)
	}
	c.OIDCRequestURL = r.env.Getenv(EnvOIDCRequestURL)
	c.OIDCRequestToken = r.env.Getenv(EnvOIDCRequestToken)
	c.WorkloadIdentityProvider = t.Identity.Provider
	c.ServiceAccount = t.Identity.ServiceAccount
	c.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	// The context only carries values here: the source keeps refreshing after
	// this call returns.
	return gcpauth.NewTokenSource(context.WithoutCancel(ctx), c)
}

// restConfig connects to the target's cluster: through a kubeconfig when one
// is given, else through the GKE API with the Google credentials. It also
// names what it reached, for results and errors. A kubeconfig context that
// gcloud named after another GKE cluster than the target's is refused
// before anything is read.
func (r *runner) restConfig(ctx context.Context, t targets.Target) (*rest.Config, string, error) {
	data, err := r.document(r.conn.kubeconfig, EnvKubeconfig, "--kubeconfig")
	if err != nil {
		return nil, "", err
	}
	if data != "" {
		opts := kube.KubeconfigOptions{Context: r.conn.kubeContext, Server: r.conn.server, TLSServerName: r.conn.tlsServerName}
		reached, err := kube.DescribeKubeconfig([]byte(data), opts)
		if err != nil {
			return nil, "", err
		}
		if err := checkClusterPin(reached, t); err != nil {
			return nil, "", err
		}
		cfg, err := kube.FromKubeconfig([]byte(data), opts)
		if r.conn.server != "" {
			return cfg, fmt.Sprintf("%s via %s", reached, r.conn.server), err
		}
		return cfg, reached.String(), err
	}
	ts, err := r.tokenSource(ctx, t)
	if err != nil {
		return nil, "", err
	}
	access, err := gcpauth.GKECluster(ctx, ts, gcpauth.Cluster{
		Project: t.Cluster.Project, Location: t.Cluster.Location, Name: t.Cluster.Name,
	}, gcpauth.GKEOptions{})
	if err != nil {
		return nil, "", err
	}
	where := fmt.Sprintf("GKE cluster %s in %s of project %s (https://%s)", t.Cluster.Name, t.Cluster.Location, t.Cluster.Project, access.Endpoint)
	return kube.ForGKE(access.Endpoint, access.CAPEM, ts), where, nil
}

// ErrWrongCluster means a kubeconfig context names another GKE cluster than
// the target's: nothing was read or changed.
var ErrWrongCluster = errors.New("kubeconfig reaches another cluster")

// checkClusterPin refuses a kubeconfig context that gcloud named after a
// GKE cluster other than t's (a laptop's current context left on
// production while deploying staging). Contexts named otherwise (kind, the
// sandbox, a tunnel) are not checked here; the release's own records are.
func checkClusterPin(k kube.KubeconfigTarget, t targets.Target) error {
	g := k.GKE
	if g == nil || (g.Project == t.Cluster.Project && g.Location == t.Cluster.Location && g.Name == t.Cluster.Name) {
		return nil
	}
	return fmt.Errorf("%w: %s is GKE cluster %s in %s of project %s, but %s deploys to %s in %s of project %s: "+
		"pass --context gke_%s_%s_%s (or a kubeconfig for that cluster), or override the target's cluster on purpose with --cluster-name/--cluster-location/--project",
		ErrWrongCluster, k, g.Name, g.Location, g.Project, t.Name, t.Cluster.Name, t.Cluster.Location, t.Cluster.Project,
		t.Cluster.Project, t.Cluster.Location, t.Cluster.Name)
}

// clients connects to the cluster of t.
func (r *runner) clients(ctx context.Context, t targets.Target) (release.Clients, error) {
	cfg, where, err := r.restConfig(ctx, t)
	if err != nil {
		return release.Clients{}, err
	}
	r.log.Info("connected", "target", t.Name, "cluster", where)
	return release.Clients{Config: cfg, Logger: r.log, Cluster: where}, nil
}

// kubeClients connects to the cluster of t with a clientset, for the
// operations that talk to the API directly.
func (r *runner) kubeClients(ctx context.Context, t targets.Target) (release.Clients, error) {
	c, err := r.clients(ctx, t)
	if err != nil {
		return c, err
	}
	if c.Kube, err = kubernetes.NewForConfig(c.Config); err != nil {
		return c, fmt.Errorf("connect to the cluster of %s: %w", t.Name, err)
	}
	return c, nil
}

// secretFiles are a verb's options for the Secret documents.
type secretFiles struct{ appEnv, creds string }

func (f flags) secrets(s *secretFiles) {
	f.StringVar(&s.appEnv, command.SecretsJSON, "", "application environment as a JSON object, a file (or $"+EnvSecretsJSON+"); without it the release keeps its current Secret")
	f.StringVar(&s.creds, command.CredsJSON, "", "GCP credentials JSON mounted at /app/creds.json, a file (or $"+EnvCredsJSON+"); without it the release keeps its current Secret")
}

// bundle validates the Secret documents and returns the bundle to apply with
// its names; both are nil when neither document was given.
func (r *runner) bundle(s secretFiles, namespace string) (*secrets.Bundle, *pipeline.SecretNames, error) {
	app, err := r.document(s.appEnv, EnvSecretsJSON, "--secrets-json")
	if err != nil {
		return nil, nil, err
	}
	cr, err := r.document(s.creds, EnvCredsJSON, "--creds-json")
	if err != nil {
		return nil, nil, err
	}
	if app == "" && cr == "" {
		return nil, nil, nil
	}
	var appData, crData []byte
	if app != "" {
		appData = []byte(app)
	}
	if cr != "" {
		crData = []byte(cr)
	}
	b, err := secrets.Build(appData, crData, secrets.DefaultNames(), namespace)
	if err != nil {
		return nil, nil, err
	}
	for _, w := range b.Warnings() {
		r.log.Warn(w)
	}
	n := b.Names()
	return &b, &pipeline.SecretNames{AppEnv: n.AppEnv, GCPCreds: n.GCPCreds}, nil
}

// progressOptions logs rollout progress at a steady pace and keeps its
// timeline.
func (r *runner) progressOptions(tl *release.Timeline) release.Options {
	return release.Options{
		Progress: func(p release.Progress) {
			r.log.Info(p.String())
			tl.Add(p)
		},
		ProgressInterval: 5 * time.Second,
	}
}

// jsonText renders v as indented JSON.
func jsonText(v any) (string, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode JSON: %w", err)
	}
	return string(b) + "\n", nil
}
