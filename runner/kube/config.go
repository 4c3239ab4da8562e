package kube

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Client-side rate limits for every config built here: a release touches
// many objects, and client-go's default of 5 QPS throttles it.
const (
	defaultQPS   = 50
	defaultBurst = 100
)

// ErrExecPlugin means a kubeconfig runs a credential plugin, which cannot
// work inside a Dagger function container.
var ErrExecPlugin = errors.New("kubeconfig uses an exec credential plugin")

// ForGKE returns a client config for a GKE control plane at endpoint (bare IP
// or host), trusting caPEM, that sends a bearer token from ts. The token is
// cached and refreshed before it expires; a 401 drops it (from ts too, when ts
// has ResetTokenOlderThan, as gcpauth's sources do), so the next request
// carries a new token even if the refused one had not expired.
func ForGKE(endpoint string, caPEM []byte, ts oauth2.TokenSource) *rest.Config {
	cache := &bearerCache{base: ts}
	return &rest.Config{
		Host:            "https://" + endpoint,
		TLSClientConfig: rest.TLSClientConfig{CAData: caPEM},
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
			return &bearerTransport{base: rt, cache: cache}
		},
		QPS:       defaultQPS,
		Burst:     defaultBurst,
		UserAgent: "ringg-ci",
	}
}

// bearerCache holds the token in use. Unlike client-go's
// ResettableTokenSourceWrapTransport, which ignores a 401 for a token fetched
// during the failing request (so a revoked token costs two failed calls), it
// drops exactly the token that was refused.
type bearerCache struct {
	base oauth2.TokenSource
	mu   sync.Mutex
	tok  *oauth2.Token
}

func (c *bearerCache) token() (*oauth2.Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.Valid() {
		return c.tok, nil
	}
	tok, err := c.base.Token()
	if err != nil {
		return nil, err
	}
	c.tok = tok
	return tok, nil
}

// refused drops token if it is still the one in use, here and in the source
// below, so one 401 causes one refresh however many requests saw it.
func (c *bearerCache) refused(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok == nil || c.tok.AccessToken != token {
		return
	}
	c.tok = nil
	if r, ok := c.base.(interface{ ResetTokenOlderThan(time.Time) }); ok {
		r.ResetTokenOlderThan(time.Now())
	}
}

// bearerTransport adds the bearer token to requests that carry no
// Authorization header of their own.
type bearerTransport struct {
	base  http.RoundTripper
	cache *bearerCache
}

// RoundTrip implements http.RoundTripper. A request refused with 401 is
// sent once more with a fresh token when its body can be replayed: the API
// server checks the token before anything else, so the refused attempt had
// no effect. Without it, a token expiring during a long rollout would fail
// the first write after it (e.g. Helm's release record).
func (t *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "" {
		return t.base.RoundTrip(req)
	}
	resp, refused, err := t.send(req)
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if err != nil || !refused || !replayable {
		return resp, err
	}
	again := req.Clone(req.Context())
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		again.Body = body
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	resp, _, err = t.send(again)
	return resp, err
}

// send makes one attempt; refused reports a 401, whose token was dropped.
func (t *bearerTransport) send(req *http.Request) (*http.Response, bool, error) {
	tok, err := t.cache.token()
	if err != nil {
		return nil, false, fmt.Errorf("get a token for the kubernetes api: %w", err)
	}
	r := req.Clone(req.Context())
	tok.SetAuthHeader(r)
	resp, err := t.base.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		t.cache.refused(tok.AccessToken)
		return resp, true, nil
	}
	return resp, false, err
}

// WrappedRoundTripper lets client-go see the transport underneath.
func (t *bearerTransport) WrappedRoundTripper() http.RoundTripper { return t.base }

// KubeconfigOptions adjusts FromKubeconfig.
type KubeconfigOptions struct {
	// Context is the kubeconfig context to use. Default: current-context.
	Context string
	// Server, as host:port, replaces every cluster's server (as
	// https://Server), e.g. a Dagger service endpoint that tunnels to the
	// cluster.
	Server string
	// TLSServerName is the name the server certificate is verified against.
	// Default when Server is set: the host of the cluster's original server,
	// so verification stays complete through the tunnel.
	TLSServerName string
}

// FromKubeconfig builds a client config from kubeconfig data. Kubeconfigs
// whose user runs an exec plugin (gke-gcloud-auth-plugin) or an auth
// provider are refused: neither plugin nor gcloud exists inside Dagger.
func FromKubeconfig(data []byte, opts KubeconfigOptions) (*rest.Config, error) {
	const what = "load kubeconfig"
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w; pass a valid kubeconfig", what, err)
	}
	name := opts.Context
	if name == "" {
		name = cfg.CurrentContext
	}
	kctx, ok := cfg.Contexts[name]
	if !ok {
		names := make([]string, 0, len(cfg.Contexts))
		for n := range cfg.Contexts {
			names = append(names, n)
		}
		sort.Strings(names)
		if name == "" {
			return nil, fmt.Errorf("%s: no current-context: pass a context name, one of %v", what, names)
		}
		return nil, fmt.Errorf("%s: context %q not found: pass one of %v", what, name, names)
	}
	if user, ok := cfg.AuthInfos[kctx.AuthInfo]; ok {
		if user.Exec != nil {
			return nil, fmt.Errorf("%s: context %q: user %q runs %q: %w; it cannot run inside Dagger: pass an access token (--access-token-file or $RINGG_CI_ACCESS_TOKEN: gcloud auth print-access-token) and no kubeconfig, so that the GKE API is used", what, name, kctx.AuthInfo, user.Exec.Command, ErrExecPlugin)
		}
		if user.AuthProvider != nil {
			return nil, fmt.Errorf("%s: context %q: user %q uses auth-provider %q: %w; pass an access token (--access-token-file or $RINGG_CI_ACCESS_TOKEN: gcloud auth print-access-token) and no kubeconfig, so that the GKE API is used", what, name, kctx.AuthInfo, user.AuthProvider.Name, ErrExecPlugin)
		}
	}
	if opts.Server != "" {
		for cname, cl := range cfg.Clusters {
			serverName := opts.TLSServerName
			if serverName == "" {
				serverName = cl.TLSServerName
			}
			if serverName == "" {
				u, err := url.Parse(cl.Server)
				if err != nil || u.Hostname() == "" {
					return nil, fmt.Errorf("%s: cluster %q: server %q is not a URL: pass TLSServerName", what, cname, cl.Server)
				}
				serverName = u.Hostname()
			}
			if _, _, err := net.SplitHostPort(opts.Server); err != nil {
				return nil, fmt.Errorf("%s: server override %q is not host:port: %w", what, opts.Server, err)
			}
			cl.Server = "https://" + opts.Server
			cl.TLSServerName = serverName
		}
	} else if opts.TLSServerName != "" {
		for _, cl := range cfg.Clusters {
			cl.TLSServerName = opts.TLSServerName
		}
	}
	rc, err := clientcmd.NewNonInteractiveClientConfig(*cfg, name, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("%s: context %q: %w", what, name, err)
	}
	rc.QPS, rc.Burst = defaultQPS, defaultBurst
	if rc.UserAgent == "" {
		rc.UserAgent = "ringg-ci"
	}
	return rc, nil
}

// KubeconfigTarget is what a kubeconfig's chosen context reaches, for a
// person and for the pin check: the context, its cluster's server, and, for
// a context gcloud named (gke_PROJECT_LOCATION_CLUSTER), the GKE cluster.
type KubeconfigTarget struct {
	Context, Server string
	// GKE is set for a context named by gcloud.
	GKE *GKECluster
}

// GKECluster names a GKE cluster.
type GKECluster struct{ Project, Location, Name string }

// String reads "context gke_p_l_c (https://1.2.3.4)".
func (k KubeconfigTarget) String() string {
	return fmt.Sprintf("context %s (%s)", k.Context, k.Server)
}

// DescribeKubeconfig says what the context opts.Context (or the current
// one) of a kubeconfig reaches, before any server override.
func DescribeKubeconfig(data []byte, opts KubeconfigOptions) (KubeconfigTarget, error) {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return KubeconfigTarget{}, fmt.Errorf("load kubeconfig: %w; pass a valid kubeconfig", err)
	}
	name := opts.Context
	if name == "" {
		name = cfg.CurrentContext
	}
	out := KubeconfigTarget{Context: name}
	if kctx, ok := cfg.Contexts[name]; ok {
		if cl, ok := cfg.Clusters[kctx.Cluster]; ok {
			out.Server = cl.Server
		}
	}
	if parts := strings.Split(name, "_"); len(parts) == 4 && parts[0] == "gke" && parts[1] != "" && parts[2] != "" && parts[3] != "" {
		out.GKE = &GKECluster{Project: parts[1], Location: parts[2], Name: parts[3]}
	}
	return out, nil
}
