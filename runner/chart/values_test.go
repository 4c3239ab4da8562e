package chart_test

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/runner/chart"
)

func TestValuesMergeOrder(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		assert.NilError(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600))
	}
	write("values.yaml", "base: only-in-chart\n")
	write("a.yaml", "replicaCount: 60\nimage: {repository: r, pullPolicy: IfNotPresent}\nenv: [{name: A, value: a}, {name: B, value: b}]\n")
	write("b.yaml", "replicaCount: 2\nenv: [{name: C, value: c}]\n")

	got, err := chart.Values(dir, []string{"a.yaml", "b.yaml"}, map[string]any{
		"image":   map[string]any{"digest": "sha256:x"},
		"secrets": map[string]string{"appEnv": "s-1"},
		"drain":   map[string]any{"deadlineSeconds": 200},
	})
	assert.NilError(t, err)
	assert.DeepEqual(t, got, map[string]any{
		// later file wins; lists are replaced, not appended
		"replicaCount": float64(2),
		"env":          []any{map[string]any{"name": "C", "value": "c"}},
		// computed values merge into nested maps
		"image": map[string]any{"repository": "r", "pullPolicy": "IfNotPresent", "digest": "sha256:x"},
		// Go types are normalised to what YAML files give
		"secrets": map[string]any{"appEnv": "s-1"},
		"drain":   map[string]any{"deadlineSeconds": float64(200)},
		// values.yaml is not repeated: Helm applies it as the base
	})
}

func TestValuesErrors(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "broken-yaml.yaml"), []byte("a: [\n"), 0o600))
	cases := []struct {
		name     string
		files    []string
		computed map[string]any
		want     string
	}{
		{name: "missing file", files: []string{"values-nope.yaml"}, want: "values-nope.yaml"},
		{name: "broken yaml", files: []string{"broken-yaml.yaml"}, want: "broken-yaml.yaml"},
		{name: "computed not serialisable", computed: map[string]any{"f": func() {}}, want: "computed values are not JSON-serialisable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := chart.Values(dir, tc.files, tc.computed)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}
