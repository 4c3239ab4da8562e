package targets_test

import (
	"errors"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/ci/targets"
)

func TestForBranch(t *testing.T) {
	cases := []struct {
		branch      string
		wantTarget  targets.Name
		wantRelease string
		wantValues  []string
		wantPlatf   []string
	}{
		{"dv-stage", targets.Staging, "dv-pipecat", []string{"values-stage.yaml"}, []string{"linux/amd64"}},
		{"dv-main", targets.Canary, "dv-pipecat-canary", []string{"values-prod.yaml", "values-canary.yaml"}, []string{"linux/arm64"}},
	}
	for _, tc := range cases {
		t.Run(tc.branch, func(t *testing.T) {
			got, err := targets.ForBranch(tc.branch)
			assert.NilError(t, err)
			assert.Equal(t, got.Name, tc.wantTarget)
			assert.Equal(t, got.Release, tc.wantRelease)
			assert.DeepEqual(t, got.ValuesFiles, tc.wantValues)
			assert.DeepEqual(t, got.Platforms, tc.wantPlatf)
			assert.Equal(t, got.Namespace, "default")
			assert.Equal(t, got.Cluster.Project, "desivocalprod01")
		})
	}
}

func TestForBranchUnknownListsKnownBranches(t *testing.T) {
	for _, branch := range []string{"", "main", "dv-stage ", "DV-MAIN", "refs/heads/dv-main"} {
		t.Run(branch, func(t *testing.T) {
			_, err := targets.ForBranch(branch)
			assert.Assert(t, errors.Is(err, targets.ErrUnknown))
			assert.ErrorContains(t, err, "known branches are dv-stage, dv-main")
		})
	}
}

func TestStableIsReachedOnlyByPromotion(t *testing.T) {
	stable, err := targets.Get(targets.Stable)
	assert.NilError(t, err)
	assert.Equal(t, stable.Branch, "")
	assert.DeepEqual(t, stable.ValuesFiles, []string{"values-prod.yaml"})
	assert.Equal(t, stable.Release, "dv-pipecat")

	canary, err := targets.Get(targets.Canary)
	assert.NilError(t, err)
	assert.Equal(t, canary.PromotesTo, targets.Stable)
	// Canary and stable share the production cluster, namespace and registry:
	// promotion moves a digest, never an image between registries.
	assert.Equal(t, canary.Cluster, stable.Cluster)
	assert.Equal(t, canary.Namespace, stable.Namespace)
	assert.Equal(t, canary.Image, stable.Image)
	assert.Assert(t, canary.Release != stable.Release)
}

func TestProductionCoordinates(t *testing.T) {
	staging, err := targets.Get(targets.Staging)
	assert.NilError(t, err)
	assert.Equal(t, staging.Image, "asia-south1-docker.pkg.dev/desivocalprod01/ringg-registry-stage/dv-pipecat")
	assert.Equal(t, staging.Cluster, targets.Cluster{Project: "desivocalprod01", Location: "asia-south1-a", Name: "desivocal-staging-cluster"})
	canary, err := targets.Get(targets.Canary)
	assert.NilError(t, err)
	assert.Equal(t, canary.Image, "asia-south1-docker.pkg.dev/desivocalprod01/ringg-registry-prod/dv-pipecat")
	assert.Equal(t, canary.Cluster, targets.Cluster{Project: "desivocalprod01", Location: "us-east1", Name: "desivocal-prod-us-e1-cluster"})
}

func TestGetUnknown(t *testing.T) {
	_, err := targets.Get("prod")
	assert.Assert(t, errors.Is(err, targets.ErrUnknown))
	assert.ErrorContains(t, err, `"prod": use one of staging, canary, stable`)
}

func TestAllIsACopy(t *testing.T) {
	a := targets.All()
	a[0].ValuesFiles[0] = "changed.yaml"
	a[0].Release = "changed"
	b := targets.All()
	assert.Equal(t, b[0].ValuesFiles[0], "values-stage.yaml")
	assert.Equal(t, b[0].Release, "dv-pipecat")
}

func TestWithOverrides(t *testing.T) {
	canary, err := targets.Get(targets.Canary)
	assert.NilError(t, err)
	got := canary.With(targets.Overrides{
		Project:         "other-proj",
		Image:           "europe-west1-docker.pkg.dev/other-proj/r/bot",
		ClusterName:     "c2",
		ClusterLocation: "europe-west1",
		Namespace:       "bots",
	})
	assert.Equal(t, got.Cluster, targets.Cluster{Project: "other-proj", Location: "europe-west1", Name: "c2"})
	assert.Equal(t, got.Image, "europe-west1-docker.pkg.dev/other-proj/r/bot")
	assert.Equal(t, got.Namespace, "bots")
	assert.Equal(t, got.Release, canary.Release)
	assert.NilError(t, got.Validate())

	same := canary.With(targets.Overrides{})
	assert.DeepEqual(t, same, canary)
}

func TestValidate(t *testing.T) {
	canary, err := targets.Get(targets.Canary)
	assert.NilError(t, err)
	cases := []struct {
		name string
		edit func(*targets.Target)
		want []string
	}{
		{"image with tag", func(t *targets.Target) { t.Image = "asia-south1-docker.pkg.dev/p/r/dv-pipecat:latest" }, []string{"image", "without tag or digest"}},
		{"image with digest", func(t *targets.Target) { t.Image = "reg.example/p/img@sha256:abc" }, []string{"without tag or digest"}},
		{"empty namespace and release", func(t *targets.Target) { t.Namespace, t.Release = " ", "" }, []string{"namespace is empty", "release is empty"}},
		{"no platforms", func(t *targets.Target) { t.Platforms = nil }, []string{"no platforms"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tg := canary
			tc.edit(&tg)
			err := tg.Validate()
			for _, w := range tc.want {
				assert.ErrorContains(t, err, w)
			}
		})
	}
	t.Run("registry with port is fine", func(t *testing.T) {
		tg := canary.With(targets.Overrides{Image: "localhost:5000/dv-pipecat"})
		assert.NilError(t, tg.Validate())
	})
	t.Run("every built-in target is valid", func(t *testing.T) {
		for _, tg := range targets.All() {
			assert.Check(t, tg.Validate(), tg.Name)
		}
	})
}

// A push to dv-stage must never hold a token that acts on production, and a
// push to dv-main only the canary's: every target names its identity, each
// is a service account of its own, federated for one GitHub environment,
// and staging's pool is not production's.
func TestIdentityBelongsToTheTarget(t *testing.T) {
	byName := map[targets.Name]targets.Identity{}
	accounts := map[string]targets.Name{}
	environments := map[string]targets.Name{}
	for _, tg := range targets.All() {
		id := tg.Identity
		assert.Check(t, id.Provider != "" && id.ServiceAccount != "" && id.Environment != "", "%s names its identity", tg.Name)
		byName[tg.Name] = id
		if other, ok := accounts[id.ServiceAccount]; ok {
			t.Errorf("%s and %s share the service account %s: give each target its own", other, tg.Name, id.ServiceAccount)
		}
		accounts[id.ServiceAccount] = tg.Name
		if other, ok := environments[id.Environment]; ok {
			t.Errorf("%s and %s share the GitHub environment %s: a token of one could be exchanged for the other's account", other, tg.Name, id.Environment)
		}
		environments[id.Environment] = tg.Name
	}
	assert.Check(t, byName[targets.Canary].ServiceAccount != byName[targets.Stable].ServiceAccount, "a push to dv-main acts as the canary's account, never stable's")
	assert.Check(t, byName[targets.Staging].Provider != byName[targets.Stable].Provider, "staging and production federate through different pools")
	assert.Equal(t, byName[targets.Canary].Provider, byName[targets.Stable].Provider, "canary and stable federate through the production pool")
	assert.Equal(t, byName[targets.Canary].Environment, "production-canary")
	assert.Equal(t, byName[targets.Stable].Environment, "production", "stable's account needs the environment with required reviewers")

	o := targets.Overrides{Identity: targets.Identity{ServiceAccount: "other@p.iam.gserviceaccount.com"}}
	st, err := targets.Get(targets.Staging)
	assert.NilError(t, err)
	got := st.With(o).Identity
	assert.Equal(t, got.ServiceAccount, "other@p.iam.gserviceaccount.com")
	assert.Equal(t, got.Provider, st.Identity.Provider, "an override replaces only what it names")
}
