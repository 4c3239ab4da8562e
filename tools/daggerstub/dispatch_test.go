package daggerstub

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/ringg/ringg-ci/tools/daggerstub/codegen"
)

// The stand-in for a module is what the engine would generate for it, as far
// as compiling goes; its text is reviewed through a golden file (-update).
func TestMainStubRendersTheDispatcher(t *testing.T) {
	m, err := codegen.Load("testdata/param-renamed", "")
	assert.NilError(t, err)
	src, err := MainStub("github.com/ringg/ringg-ci/ci", m)
	assert.NilError(t, err)
	golden.Assert(t, string(src), "param-renamed.dagger_gen.go.golden")
}

// A module that compiles on the engine compiles and vets with the stand-in.
func TestStandInBuildsWhatTheEngineBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a Dagger module")
	}
	dir := tinyModule(t, readFile(t, "testdata/param-renamed/main.go"))
	standIn(t, dir)
	for _, verb := range []string{"build", "vet"} {
		out, err := goCmd(dir, verb)
		assert.NilError(t, err, "go %s with the stand-in:\n%s", verb, out)
	}
}

// A module that does not compile on the engine does not compile with the
// stand-in either, with the compiler's message about the generated code.
func TestStandInFailsWhereTheEngineFails(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles Dagger modules")
	}
	renamed := readFile(t, "testdata/param-renamed/main.go")
	arg := func(name string) string { return strings.ReplaceAll(renamed, "asJson", name) }
	cases := []struct {
		name, src, wantErr string
	}{
		{"argument named json", readFile(t, "testdata/param-named-json/main.go"),
			"json.Unmarshal undefined (type bool has no field or method Unmarshal)"},
		{"argument named ctx", arg("ctx"), "cannot use ctx (variable of type bool) as context.Context value in argument"},
		{"argument named err", arg("err"), "cannot use json.Unmarshal("},
		{"argument named parent", arg("parent"), "parent redeclared in this block"},
		{"argument named fmt", arg("fmt"), "fmt.Errorf undefined (type bool has no field or method Errorf)"},
		{"argument named inputArgs", arg("inputArgs"), "cannot index inputArgs (variable of type bool)"},
		{"MarshalJSON on the main object", renamed + "\nfunc (m Tiny) MarshalJSON() ([]byte, error) { return nil, nil }\n",
			"method Tiny.MarshalJSON already declared"},
		{"Name on an enum", renamed + "\nfunc (l Level) Name() string { return string(l) }\n",
			"method Level.Name already declared"},
		{"package-level dispatch", renamed + "\nfunc dispatch() {}\n", "dispatch redeclared in this block"},
		{"package-level trace", renamed + "\nvar trace = 1\n", "trace already declared through import of package"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := tinyModule(t, tc.src)
			standIn(t, dir)
			out, err := goCmd(dir, "build")
			assert.Assert(t, err != nil, "the build must fail:\n%s", out)
			assert.Check(t, is.Contains(out, "dagger.gen.go"), "the error is in the generated code")
			assert.Check(t, is.Contains(out, tc.wantErr))
		})
	}
}

// faceDir is the module's face: its go.mod and its generated API.
const faceDir = "../../ci"

// tinyModule makes a Go module of one main.go with the face's go.mod and
// go.sum and its real generated API (internal/dagger), so that it builds
// against what the engine generates.
func tinyModule(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"go.mod", "go.sum", "internal/dagger/dagger.gen.go"} {
		assert.NilError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		assert.NilError(t, os.WriteFile(filepath.Join(dir, name), []byte(readFile(t, filepath.Join(faceDir, name))), 0o644))
	}
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644))
	return dir
}

// standIn writes the stand-in dagger.gen.go for the module in dir.
func standIn(t *testing.T, dir string) {
	t.Helper()
	m, err := codegen.Load(dir, "")
	assert.NilError(t, err)
	src, err := MainStub("github.com/ringg/ringg-ci/ci", m)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "dagger.gen.go"), src, 0o644))
}

func goCmd(dir, verb string) (string, error) {
	args := []string{verb}
	if verb == "build" {
		args = append(args, "-o", os.DevNull)
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	assert.NilError(t, err)
	return string(b)
}
