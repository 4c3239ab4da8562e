package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ringg/ringg-ci/runner/gcpauth"
	"github.com/ringg/ringg-ci/runner/kube"
	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/runner/release"
	"github.com/ringg/ringg-ci/runner/secrets"
	"github.com/ringg/ringg-ci/ci/targets"
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
// is given, else through the GKE API with the Google credentials.
func (r *runner) restConfig(ctx context.Context, t targets.Target) (*rest.Config, error) {
	data, err := r.document(r.conn.kubeconfig, EnvKubeconfig, "--kubeconfig")
	if err != nil {
		return nil, err
	}
	if data != "" {
		return kube.FromKubeconfig([]byte(data), kube.KubeconfigOptions{
			Context: r.conn.kubeContext, Server: r.conn.server, TLSServerName: r.conn.tlsServerName,
		})
	}
	ts, err := r.tokenSource(ctx, t)
	if err != nil {
		return nil, err
	}
	access, err := gcpauth.GKECluster(ctx, ts, gcpauth.Cluster{
		Project: t.Cluster.Project, Location: t.Cluster.Location, Name: t.Cluster.Name,
	}, gcpauth.GKEOptions{})
	if err != nil {
		return nil, err
	}
	return kube.ForGKE(access.Endpoint, access.CAPEM, ts), nil
}

// clients connects to the cluster of t.
func (r *runner) clients(ctx context.Context, t targets.Target) (release.Clients, error) {
	cfg, err := r.restConfig(ctx, t)
	if err != nil {
		return release.Clients{}, err
	}
	return release.Clients{Config: cfg, Logger: r.log}, nil
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
	f.StringVar(&s.appEnv, "secrets-json", "", "application environment as a JSON object, a file (or $"+EnvSecretsJSON+"); without it the release keeps its current Secret")
	f.StringVar(&s.creds, "creds-json", "", "GCP credentials JSON mounted at /app/creds.json, a file (or $"+EnvCredsJSON+"); without it the release keeps its current Secret")
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

// progressOptions logs rollout progress at a steady pace.
func (r *runner) progressOptions() release.Options {
	return release.Options{
		Progress:         func(p release.Progress) { r.log.Info(p.String()) },
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
