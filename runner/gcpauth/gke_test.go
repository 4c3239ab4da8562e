package gcpauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/oauth2"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

const gkeToken = "ya29.gke-caller-SECRET"

// fakeGKE is a loopback container.googleapis.com over TLS. It serves
// clusters by "project/location/name"; any other path answers status/body.
type fakeGKE struct {
	srv      *httptest.Server
	calls    atomic.Int32
	clusters map[string]any
	status   int
	body     string
}

func newFakeGKE(t *testing.T) *fakeGKE {
	f := &fakeGKE{clusters: map[string]any{}}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		assert.Check(t, is.Equal(r.Method, http.MethodGet))
		assert.Check(t, r.Header.Get("Authorization") == "Bearer "+gkeToken, "gke: wrong bearer")
		assert.Check(t, strings.HasPrefix(r.URL.Path, "/v1/projects/"), "gke: unexpected path %s", r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		if c, ok := f.clusters[r.URL.Path]; ok {
			json.NewEncoder(w).Encode(c)
			return
		}
		w.WriteHeader(f.status)
		fmt.Fprintf(w, f.body, gkeToken)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// caPEM is the TLS server's own certificate, as GKE would return its CA.
func (f *fakeGKE) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
}

func clusterJSON(endpoint string, ca []byte) map[string]any {
	return map[string]any{
		"name":       "c",
		"endpoint":   endpoint,
		"status":     "RUNNING",
		"masterAuth": map[string]any{"clusterCaCertificate": base64.StdEncoding.EncodeToString(ca)},
	}
}

func TestGKECluster(t *testing.T) {
	f := newFakeGKE(t)
	f.clusters["/v1/projects/desivocalprod01/locations/asia-south1-a/clusters/desivocal-staging-cluster"] = clusterJSON("34.93.1.2", f.caPEM())
	f.clusters["/v1/projects/desivocalprod01/locations/us-east1/clusters/desivocal-prod-us-e1-cluster"] = clusterJSON("35.1.2.3", f.caPEM())
	ts := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: gkeToken})
	opts := GKEOptions{HTTPClient: f.srv.Client(), Endpoints: Endpoints{GKE: f.srv.URL}}

	tests := []struct {
		name     string
		cluster  Cluster
		endpoint string
	}{
		{"zonal", Cluster{"desivocalprod01", "asia-south1-a", "desivocal-staging-cluster"}, "34.93.1.2"},
		{"regional", Cluster{"desivocalprod01", "us-east1", "desivocal-prod-us-e1-cluster"}, "35.1.2.3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := GKECluster(context.Background(), ts, tc.cluster, opts)
			assert.NilError(t, err)
			assert.Check(t, is.Equal(got.Endpoint, tc.endpoint))
			assert.Check(t, is.DeepEqual(got.CAPEM, f.caPEM()))
		})
	}
}

func TestGKEClusterErrors(t *testing.T) {
	const path = "/v1/projects/p1/locations/us-east1/clusters/c1"
	tests := []struct {
		name     string
		cluster  Cluster
		serve    any // cluster JSON at path, if set
		status   int
		body     string
		sentinel error
		contains []string
	}{
		{
			name: "cluster not found", cluster: Cluster{"p1", "us-east1", "c1"},
			status: 404, body: `{"error":{"code":404,"message":"Not found: projects/p1/locations/us-east1/clusters/c1. %s","status":"NOT_FOUND"}}`,
			sentinel: ErrNotFound, contains: []string{"status 404 NOT_FOUND", "zone or region", "gcloud container clusters list --project p1"},
		},
		{
			name: "permission denied", cluster: Cluster{"p1", "us-east1", "c1"},
			status: 403, body: `{"error":{"code":403,"message":"Required \"container.clusters.get\" permission(s) for \"projects/p1/locations/us-east1/clusters/c1\". %s","status":"PERMISSION_DENIED"}}`,
			sentinel: ErrPermission, contains: []string{"roles/container.developer", "Kubernetes Engine API"},
		},
		{
			name: "token refused", cluster: Cluster{"p1", "us-east1", "c1"},
			status: 401, body: `{"error":{"code":401,"message":"Request had invalid authentication credentials %s","status":"UNAUTHENTICATED"}}`,
			sentinel: ErrPermission, contains: []string{"fresh one"},
		},
		{
			name: "ca not base64", cluster: Cluster{"p1", "us-east1", "c1"},
			serve:    map[string]any{"endpoint": "1.2.3.4", "masterAuth": map[string]any{"clusterCaCertificate": "%%%"}},
			sentinel: ErrInvalidCA, contains: []string{"not base64"},
		},
		{
			name: "ca not pem", cluster: Cluster{"p1", "us-east1", "c1"},
			serve:    clusterJSON("1.2.3.4", []byte("hello")),
			sentinel: ErrInvalidCA, contains: []string{"no PEM certificate"},
		},
		{
			name: "ca garbage certificate", cluster: Cluster{"p1", "us-east1", "c1"},
			serve:    clusterJSON("1.2.3.4", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage")})),
			sentinel: ErrInvalidCA, contains: []string{"decode the cluster CA certificate"},
		},
		{
			name: "ca is a key", cluster: Cluster{"p1", "us-east1", "c1"},
			serve:    clusterJSON("1.2.3.4", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte("x")})),
			sentinel: ErrInvalidCA, contains: []string{`"RSA PRIVATE KEY" PEM block`},
		},
		{
			name: "bad coordinates", cluster: Cluster{"P 1", "asia south", ""},
			sentinel: ErrConfig, contains: []string{`project "P 1"`, "neither a zone", `cluster name ""`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeGKE(t)
			f.status, f.body = tc.status, tc.body
			if tc.serve != nil {
				f.clusters[path] = tc.serve
			}
			ts := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: gkeToken})
			_, err := GKECluster(context.Background(), ts, tc.cluster, GKEOptions{HTTPClient: f.srv.Client(), Endpoints: Endpoints{GKE: f.srv.URL}})
			assert.Assert(t, errors.Is(err, tc.sentinel), "got %v", err)
			for _, s := range tc.contains {
				assert.Check(t, is.ErrorContains(err, s))
			}
			assertNoSecrets(t, err, []string{gkeToken})
			if tc.sentinel == ErrConfig {
				assert.Check(t, is.Equal(f.calls.Load(), int32(0)), "invalid coordinates must not reach the API")
			}
		})
	}
}

func TestGKEClusterTokenErrorPassesThrough(t *testing.T) {
	f := newFakeGoogle(t)
	f.set(func(f *fakeGoogle) {
		f.iamStatus, f.iamBody = 404, `{"error":{"code":404,"message":"nope","status":"NOT_FOUND"}}`
	})
	ts, err := NewTokenSource(context.Background(), f.config())
	assert.NilError(t, err)
	_, err = GKECluster(context.Background(), ts, Cluster{"p1", "us-east1", "c1"}, GKEOptions{Endpoints: Endpoints{GKE: "https://127.0.0.1:1"}})
	assert.Check(t, errors.Is(err, ErrNotFound), "got %v", err)
	assert.Check(t, is.ErrorContains(err, "read GKE cluster projects/p1/locations/us-east1/clusters/c1: impersonate service account"))
}
