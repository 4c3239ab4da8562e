package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/oauth2"
	"k8s.io/client-go/rest"

	"github.com/ringg/ringg-ci/ci/gcpauth"
	"github.com/ringg/ringg-ci/ci/internal/dagger"
	"github.com/ringg/ringg-ci/ci/kube"
	"github.com/ringg/ringg-ci/ci/targets"
)

// plaintext reads an optional secret argument; a nil secret reads as "".
func plaintext(ctx context.Context, s *dagger.Secret, what string) (string, error) {
	if s == nil {
		return "", nil
	}
	v, err := s.Plaintext(ctx)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	return v, nil
}

// tokenSource turns the module's credential arguments into a Google token
// source that refreshes by itself during long rollouts.
func (m *RinggCi) tokenSource(ctx context.Context) (oauth2.TokenSource, error) {
	var c gcpauth.Config
	var err error
	if c.AccessToken, err = plaintext(ctx, m.AccessToken, "--access-token"); err != nil {
		return nil, err
	}
	creds, err := plaintext(ctx, m.CredentialsJson, "--credentials-json")
	if err != nil {
		return nil, err
	}
	if creds != "" {
		c.CredentialsJSON = []byte(creds)
	}
	if c.OIDCRequestURL, err = plaintext(ctx, m.OidcRequestUrl, "--oidc-request-url"); err != nil {
		return nil, err
	}
	if c.OIDCRequestToken, err = plaintext(ctx, m.OidcRequestToken, "--oidc-request-token"); err != nil {
		return nil, err
	}
	c.WorkloadIdentityProvider = m.WorkloadIdentityProvider
	c.ServiceAccount = m.ServiceAccount
	c.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	// The context only carries values here: the source keeps refreshing after
	// this call returns.
	return gcpauth.NewTokenSource(context.WithoutCancel(ctx), c)
}

// restConfig connects to the target's cluster: through --kubeconfig (and
// --cluster, for an API server on the caller's machine) when given, else
// through the GKE API with the Google credentials.
func (m *RinggCi) restConfig(ctx context.Context, t targets.Target) (*rest.Config, error) {
	if m.Kubeconfig != nil {
		data, err := plaintext(ctx, m.Kubeconfig, "--kubeconfig")
		if err != nil {
			return nil, err
		}
		var opts kube.KubeconfigOptions
		opts.Context = m.KubeContext
		if m.Cluster != nil {
			svc, err := m.Cluster.Start(ctx)
			if err != nil {
				return nil, fmt.Errorf("reach --cluster: %w; pass it as tcp://localhost:PORT of the API server", err)
			}
			if opts.Server, err = svc.Endpoint(ctx); err != nil {
				return nil, fmt.Errorf("reach --cluster: %w", err)
			}
			opts.TLSServerName = m.ClusterTlsServerName
		}
		return kube.FromKubeconfig([]byte(data), opts)
	}
	ts, err := m.tokenSource(ctx)
	if err != nil {
		return nil, err
	}
	access, err := gcpauth.GKECluster(ctx, ts, gcpauth.Cluster{
		Project:  t.Cluster.Project,
		Location: t.Cluster.Location,
		Name:     t.Cluster.Name,
	}, gcpauth.GKEOptions{})
	if err != nil {
		return nil, err
	}
	return kube.ForGKE(access.Endpoint, access.CAPEM, ts), nil
}
