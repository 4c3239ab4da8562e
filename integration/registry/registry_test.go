// Package registry tests that gcpauth's credentials push images the way
// Artifact Registry expects (user oauth2accesstoken, the access token as
// password), against an in-process registry that enforces them. It lives
// outside package integration so it runs without the test cluster.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/gcpauth"
)

// artifactRegistry is an OCI registry that, like Artifact Registry, wants
// Basic auth with user oauth2accesstoken and a valid access token.
type artifactRegistry struct {
	srv      *httptest.Server
	token    atomic.Value // the access token it accepts
	accepted atomic.Int32
	refused  atomic.Int32
}

func newArtifactRegistry(t *testing.T) *artifactRegistry {
	a := &artifactRegistry{}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		want, _ := a.token.Load().(string)
		if !ok || user != gcpauth.RegistryUser || want == "" || pass != want {
			a.refused.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="artifact-registry-test"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		a.accepted.Add(1)
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *artifactRegistry) host() string { return strings.TrimPrefix(a.srv.URL, "http://") }

// tokenEndpoint mints access tokens for gcpauth's authorized_user flow, so
// the password comes from a real, refreshing token source.
func tokenEndpoint(t *testing.T, reg *artifactRegistry) *httptest.Server {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Check(t, r.ParseForm())
		assert.Check(t, is.Equal(r.PostForm.Get("grant_type"), "refresh_token"))
		tok := fmt.Sprintf("ya29.registry-token-%d", n.Add(1))
		reg.token.Store(tok)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRegistryPushWithGoogleToken(t *testing.T) {
	ctx := context.Background()
	reg := newArtifactRegistry(t)
	mint := tokenEndpoint(t, reg)
	creds, _ := json.Marshal(map[string]string{
		"type": "authorized_user", "client_id": "id", "client_secret": "secret",
		"refresh_token": "refresh", "token_uri": mint.URL,
	})
	ts, err := gcpauth.NewTokenSource(ctx, gcpauth.Config{
		CredentialsJSON:   creds,
		HTTPClient:        mint.Client(),
		AllowedTokenHosts: []string{strings.TrimPrefix(mint.URL, "http://")},
	})
	assert.NilError(t, err)

	repo := reg.host() + "/desivocalprod01/ringg-registry-stage/dv-pipecat"
	_, err = targets.RegistryHost(repo)
	assert.Check(t, errors.Is(err, targets.ErrRegistryHost), "a loopback registry must need an explicit allow")
	host, err := targets.RegistryHost(repo, reg.host())
	assert.NilError(t, err)
	assert.Check(t, is.Equal(host, reg.host()))

	user, password, err := gcpauth.RegistryCredentials(ts)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(user, "oauth2accesstoken"))
	auth := authn.FromConfig(authn.AuthConfig{Username: user, Password: password})

	img, err := random.Image(2048, 3)
	assert.NilError(t, err)
	want, err := img.Digest()
	assert.NilError(t, err)
	ref, err := name.ParseReference(repo+":0123abc", name.Insecure)
	assert.NilError(t, err)

	t.Run("right token pushes", func(t *testing.T) {
		assert.NilError(t, remote.Write(ref, img, remote.WithAuth(auth), remote.WithContext(ctx)))
		desc, err := remote.Get(ref, remote.WithAuth(auth), remote.WithContext(ctx))
		assert.NilError(t, err)
		assert.Check(t, is.Equal(desc.Digest, want))
		assert.Check(t, reg.accepted.Load() > 0)
	})

	for _, tc := range []struct {
		name string
		auth authn.Authenticator
	}{
		{"wrong token is refused", authn.FromConfig(authn.AuthConfig{Username: gcpauth.RegistryUser, Password: "ya29.not-the-token"})},
		{"wrong user is refused", authn.FromConfig(authn.AuthConfig{Username: "_token", Password: password})},
		{"anonymous is refused", authn.Anonymous},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := reg.accepted.Load()
			other, err := name.ParseReference(repo+":other", name.Insecure)
			assert.NilError(t, err)
			err = remote.Write(other, img, remote.WithAuth(tc.auth), remote.WithContext(ctx))
			var terr *transport.Error
			assert.Assert(t, errors.As(err, &terr), "got %v", err)
			assert.Check(t, is.Equal(terr.StatusCode, http.StatusUnauthorized))
			assert.Check(t, !strings.Contains(err.Error(), password), "error holds the token")
			assert.Check(t, is.Equal(reg.accepted.Load(), before), "the registry accepted a bad login")
		})
	}
}
