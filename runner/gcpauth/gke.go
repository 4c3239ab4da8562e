package gcpauth

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Cluster names a GKE cluster.
type Cluster struct {
	// Project is the project id (desivocalprod01).
	Project string
	// Location is a zone (asia-south1-a) or a region (us-east1), as the
	// cluster was created.
	Location string
	// Name is the cluster name.
	Name string
}

func (c Cluster) String() string {
	return "projects/" + c.Project + "/locations/" + c.Location + "/clusters/" + c.Name
}

var (
	namePattern     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	locationPattern = regexp.MustCompile(`^[a-z]+-[a-z]+[0-9]+(-[a-z])?$`)
)

// Validate reports every malformed field at once.
func (c Cluster) Validate() error {
	var errs []error
	if !namePattern.MatchString(c.Project) {
		errs = append(errs, fmt.Errorf("project %q is not a project id: %w", c.Project, ErrConfig))
	}
	if !locationPattern.MatchString(c.Location) {
		errs = append(errs, fmt.Errorf("location %q is neither a zone (asia-south1-a) nor a region (us-east1): %w", c.Location, ErrConfig))
	}
	if !namePattern.MatchString(c.Name) {
		errs = append(errs, fmt.Errorf("cluster name %q is not a GKE cluster name: %w", c.Name, ErrConfig))
	}
	return joinErrs(errs)
}

// ClusterAccess is what client-go needs to reach a GKE control plane.
type ClusterAccess struct {
	// Endpoint is the control plane's bare IP or host name.
	Endpoint string
	// CAPEM is the cluster CA certificate, PEM encoded.
	CAPEM []byte
}

// GKEOptions configures GKECluster.
type GKEOptions struct {
	// HTTPClient makes the request. Default: a client with a 30 s timeout.
	HTTPClient *http.Client
	// Endpoints overrides the GKE API URL (tests).
	Endpoints Endpoints
}

// GKECluster reads a cluster's endpoint and CA certificate from the GKE API,
// as `gcloud container clusters get-credentials` would, with a token from ts.
func GKECluster(ctx context.Context, ts oauth2.TokenSource, c Cluster, opts GKEOptions) (ClusterAccess, error) {
	what := "read GKE cluster " + c.String()
	if err := c.Validate(); err != nil {
		return ClusterAccess{}, fmt.Errorf("%s: %w", what, err)
	}
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	tok, err := ts.Token()
	if err != nil {
		return ClusterAccess{}, fmt.Errorf("%s: %w", what, err)
	}
	u := opts.Endpoints.withDefaults().GKE + "/v1/projects/" + url.PathEscape(c.Project) + "/locations/" + url.PathEscape(c.Location) + "/clusters/" + url.PathEscape(c.Name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return ClusterAccess{}, fmt.Errorf("%s: %w", what, err)
	}
	tok.SetAuthHeader(req)
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return ClusterAccess{}, fmt.Errorf("%s: %s: %w; check network access to container.googleapis.com", what, shorten(redactJWTs(err.Error())), ErrUnavailable)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return ClusterAccess{}, fmt.Errorf("%s: read response: %w", what, err)
	}
	if resp.StatusCode != http.StatusOK {
		return ClusterAccess{}, gkeError(what, c, parseBody(resp.StatusCode, body), tok.AccessToken)
	}
	var cl struct {
		Endpoint   string `json:"endpoint"`
		MasterAuth struct {
			ClusterCACertificate string `json:"clusterCaCertificate"`
		} `json:"masterAuth"`
	}
	if err := json.Unmarshal(body, &cl); err != nil {
		return ClusterAccess{}, fmt.Errorf("%s: the GKE API answer does not parse (%v): %w; check the GKE endpoint URL", what, err, ErrUnavailable)
	}
	if cl.Endpoint == "" {
		return ClusterAccess{}, fmt.Errorf("%s: the cluster has no endpoint: %w; wait until it is RUNNING", what, ErrNotFound)
	}
	ca, err := parseCA(cl.MasterAuth.ClusterCACertificate)
	if err != nil {
		return ClusterAccess{}, fmt.Errorf("%s: %w", what, err)
	}
	return ClusterAccess{Endpoint: cl.Endpoint, CAPEM: ca}, nil
}

func gkeError(what string, c Cluster, e apiError, token string) error {
	e.message = shorten(redactJWTs(strings.ReplaceAll(e.message, token, "[redacted]")))
	switch {
	case e.status == http.StatusNotFound:
		return fmt.Errorf("%s: %s: %w; check the cluster name and that location %s is the zone or region it was created in (gcloud container clusters list --project %s)", what, e, ErrNotFound, c.Location, c.Project)
	case e.status == http.StatusForbidden:
		return fmt.Errorf("%s: %s: %w; grant the deploying service account roles/container.developer (it carries container.clusters.get) on project %s, and check the Kubernetes Engine API is enabled", what, e, ErrPermission, c.Project)
	case e.status == http.StatusUnauthorized:
		return fmt.Errorf("%s: %s: %w; the access token was refused: get a fresh one (gcloud auth print-access-token) or check the credentials", what, e, ErrPermission)
	case e.status >= 500:
		return fmt.Errorf("%s: %s: %w; retry", what, e, ErrUnavailable)
	default:
		return fmt.Errorf("%s: %s: %w; check the project, location and cluster name", what, e, ErrConfig)
	}
}

// parseCA decodes GKE's base64 PEM and checks it holds certificates.
func parseCA(b64 string) ([]byte, error) {
	if b64 == "" {
		return nil, fmt.Errorf("the cluster has no CA certificate: %w; check the cluster in the console", ErrInvalidCA)
	}
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("decode the cluster CA certificate: not base64 (%v): %w; check the GKE endpoint URL", err, ErrInvalidCA)
	}
	rest, n := data, 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("decode the cluster CA certificate: found a %q PEM block: %w; check the GKE endpoint URL", block.Type, ErrInvalidCA)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return nil, fmt.Errorf("decode the cluster CA certificate: %v: %w; check the GKE endpoint URL", err, ErrInvalidCA)
		}
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("decode the cluster CA certificate: no PEM certificate in it: %w; check the GKE endpoint URL", ErrInvalidCA)
	}
	return data, nil
}
