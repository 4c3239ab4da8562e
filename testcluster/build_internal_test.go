package testcluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestNamespaceName(t *testing.T) {
	tests := []struct {
		test, prefix string
	}{
		{"TestInstall", "testinstall-"},
		{"TestUpgrade/atomic_rollback", "testupgrade-atomic-rollback-"},
		{"Test" + strings.Repeat("x", 80), "test" + strings.Repeat("x", 46) + "-"},
		{"___", "test-"},
	}
	for _, tt := range tests {
		t.Run(tt.test, func(t *testing.T) {
			got := namespaceName(tt.test)
			assert.Assert(t, strings.HasPrefix(got, tt.prefix), "got %q", got)
			assert.Assert(t, is.Len(got, len(tt.prefix)+5))
			assert.Assert(t, len(got) <= 63)
		})
	}
}

func TestKubernetesVersionAndSourceHashFollowTheModule(t *testing.T) {
	src := t.TempDir()
	write := func(name, content string) {
		assert.NilError(t, os.WriteFile(filepath.Join(src, name), []byte(content), 0o644))
	}
	write("go.mod", "module x\n\nrequire (\n\tk8s.io/kubernetes v1.37.2\n)\n")
	write("main.go", "package main\n")
	write("README.md", "not hashed\n")

	v, err := kubernetesVersion(filepath.Join(src, "go.mod"))
	assert.NilError(t, err)
	assert.Equal(t, v, "v1.37.2")
	major, minor := splitVersion(v)
	assert.Equal(t, major+"."+minor, "1.37")

	first, err := sourceHash(src)
	assert.NilError(t, err)
	write("README.md", "still not hashed\n")
	same, err := sourceHash(src)
	assert.NilError(t, err)
	assert.Equal(t, same, first)
	write("main.go", "package main // changed\n")
	changed, err := sourceHash(src)
	assert.NilError(t, err)
	assert.Assert(t, changed != first)
}

func TestBuildPrefersTheBinaryFromTheEnvironment(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "testcluster")
	assert.NilError(t, os.WriteFile(bin, nil, 0o755))
	env := map[string]string{EnvBinary: bin}
	got, err := Build(t.Context(), BuildOptions{Getenv: func(k string) string { return env[k] }})
	assert.NilError(t, err)
	assert.Equal(t, got, bin)

	env[EnvBinary] = filepath.Join(t.TempDir(), "missing")
	_, err = Build(t.Context(), BuildOptions{Getenv: func(k string) string { return env[k] }})
	assert.ErrorContains(t, err, "unset it to build the helper")
}
