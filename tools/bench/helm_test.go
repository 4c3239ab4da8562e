package main

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
)

func TestHelmVersion(t *testing.T) {
	tests := []struct {
		name, goMod, want, err string
	}{
		{name: "require block", goMod: "module m\n\nrequire (\n\tdario.cat/mergo v1.0.1 // indirect\n\thelm.sh/helm/v3 v3.22.0 // indirect\n)\n", want: "v3.22.0"},
		{name: "one-line require", goMod: "module m\n\nrequire helm.sh/helm/v3 v3.22.0\n", want: "v3.22.0"},
		{name: "missing", goMod: "module m\n", err: "no helm.sh/helm/v3 requirement"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "go.mod")
			assert.NilError(t, os.WriteFile(path, []byte(tc.goMod), 0o644))
			got, err := helmVersion(path)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, got, tc.want)
		})
	}
	// The pinned module itself.
	got, err := helmVersion(filepath.Join("..", "helmcli", "go.mod"))
	assert.NilError(t, err)
	assert.Equal(t, got, "v3.22.0")
}
