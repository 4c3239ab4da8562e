package daggerstub

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

// The committed generated code is what the engine writes for today's
// source.
func TestCommittedGeneratedCodeIsFresh(t *testing.T) {
	assert.NilError(t, Fresh(faceDir, "github.com/ringg/ringg-ci/ci"))
}

// An edit of the module's functions without regenerating is caught: a new
// function, a renamed argument, a removed function.
func TestFreshFindsStaleGeneratedCode(t *testing.T) {
	mainGo := readFile(t, filepath.Join(faceDir, "main.go"))
	cases := []struct{ name, edit, want string }{
		{"a new function", mainGo + "\n// Say hello.\nfunc (m *RinggCi) Hello() string { return \"hi\" }\n", "invoke differs"},
		{"a renamed argument", strings.Replace(mainGo, "deleteOldRecords bool,", "deleteRecords bool,", 1), "invoke differs"},
		{"a new field of the object", strings.Replace(mainGo, "type RinggCi struct {\n", "type RinggCi struct {\n\t// +private\n\tExtra string\n", 1), "RinggCi.MarshalJSON differs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Assert(t, tc.edit != mainGo, "the edit applies")
			dir := t.TempDir()
			assert.NilError(t, os.CopyFS(dir, os.DirFS(faceDir)))
			assert.NilError(t, os.WriteFile(filepath.Join(dir, "dagger.json"), []byte(readFile(t, "../../dagger.json")), 0o644))
			assert.NilError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(tc.edit), 0o644))
			err := Fresh(dir, "github.com/ringg/ringg-ci/ci")
			assert.ErrorContains(t, err, tc.want)
			assert.ErrorContains(t, err, "regenerate it on an engine with `dagger develop`")
		})
	}
}
