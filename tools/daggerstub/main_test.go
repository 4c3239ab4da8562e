package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestExportedListsDaggerAPI(t *testing.T) {
	dir := goListDir(t)
	n, err := Exported(dir)
	assert.NilError(t, err)
	for _, typ := range []string{"Client", "Container", "Directory", "Secret", "Service", "Platform", "DirectoryDockerBuildOpts", "ContainerPublishOpts"} {
		assert.Check(t, is.Contains(n.Types, typ))
	}
	assert.Check(t, is.Contains(n.Funcs, "Connect"))
	assert.DeepEqual(t, n.Generic, []string{"Load", "Loadable", "Ref"})
}

// The module check must catch a call to an API dagger.io/dagger v0.21.9 does
// not have, and accept one it has: build package main of .dagger/ with the
// stand-in plus one extra file.
func TestStandInTypeChecksAgainstPinnedVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the Dagger module")
	}
	out := t.TempDir()
	assert.NilError(t, run("../../.dagger", out))
	ci, err := filepath.Abs("../../.dagger")
	assert.NilError(t, err)

	cases := []struct {
		name, body, wantErr string
	}{
		{"existing API", `func probe() { _ = dag.Container().From("alpine").WithExec([]string{"true"}) }`, ""},
		{"missing method", `func probe() { _ = dag.Container().WithTeleport("mars") }`, "WithTeleport"},
		{"removed in v0.19", `func probe() { _ = dag.Container().Build(nil) }`, "Build"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			probe := filepath.Join(t.TempDir(), "probe.go")
			assert.NilError(t, os.WriteFile(probe, []byte("package main\n\n"+tc.body+"\n"), 0o644))
			overlay := readOverlay(t, filepath.Join(out, "overlay.json"))
			overlay.Replace[filepath.Join(ci, "zz_probe.go")] = probe
			path := filepath.Join(t.TempDir(), "overlay.json")
			b, err := json.Marshal(overlay)
			assert.NilError(t, err)
			assert.NilError(t, os.WriteFile(path, b, 0o644))

			cmd := exec.Command("go", "build", "-overlay", path, "-o", os.DevNull, ".")
			cmd.Dir = ci
			combined, err := cmd.CombinedOutput()
			if tc.wantErr == "" {
				assert.NilError(t, err, string(combined))
				return
			}
			assert.Assert(t, err != nil, "the build must fail")
			assert.Check(t, is.Contains(string(combined), "has no field or method "+tc.wantErr))
		})
	}
}

type overlayFile struct {
	Replace map[string]string
}

func readOverlay(t *testing.T, path string) overlayFile {
	t.Helper()
	b, err := os.ReadFile(path)
	assert.NilError(t, err)
	var o overlayFile
	assert.NilError(t, json.Unmarshal(b, &o))
	return o
}

func goListDir(t *testing.T) string {
	t.Helper()
	dir, err := goList("../../.dagger", "-m", "-f", "{{.Dir}}", "dagger.io/dagger")
	assert.NilError(t, err)
	return dir
}
