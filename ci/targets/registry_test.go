package targets

import (
	"errors"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestRegistryHost(t *testing.T) {
	tests := []struct {
		repo     string
		allow    []string
		want     string
		contains string
	}{
		{repo: "asia-south1-docker.pkg.dev/desivocalprod01/ringg-registry-stage/dv-pipecat", want: "asia-south1-docker.pkg.dev"},
		{repo: "us-docker.pkg.dev/p/r", want: "us-docker.pkg.dev"},
		{repo: "asia-south1-docker.pkg.dev/desivocalprod01/ringg-registry-prod/dv-pipecat:abc123", want: "asia-south1-docker.pkg.dev"},
		{repo: "127.0.0.1:5000/test/app", allow: []string{"127.0.0.1:5000"}, want: "127.0.0.1:5000"},
		{repo: "127.0.0.1:5000/test/app", contains: "host 127.0.0.1:5000 is not an Artifact Registry docker host"},
		{repo: "docker.io/library/python", contains: "not an Artifact Registry docker host"},
		{repo: "gcr.io/desivocalprod01/dv-pipecat", contains: "Container Registry"},
		{repo: "https://asia-south1-docker.pkg.dev/p/r", contains: "drop the https:// prefix"},
		{repo: "asia-south1-docker.pkg.dev/desivocalprod01", contains: "needs a project and a repository"},
		{repo: "asia-south1-docker.pkg.dev", contains: "expected REGION-docker.pkg.dev/PROJECT/REPOSITORY"},
		{repo: "", contains: "expected REGION-docker.pkg.dev/PROJECT/REPOSITORY"},
	}
	for _, tc := range tests {
		t.Run(tc.repo, func(t *testing.T) {
			got, err := RegistryHost(tc.repo, tc.allow...)
			if tc.contains != "" {
				assert.Check(t, errors.Is(err, ErrRegistryHost), "got %v", err)
				assert.Check(t, is.ErrorContains(err, tc.contains))
				return
			}
			assert.NilError(t, err)
			assert.Check(t, is.Equal(got, tc.want))
		})
	}
}
