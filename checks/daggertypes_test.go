package checks

import (
	"testing"

	"gotest.tools/v3/assert"
)

// The module in ci/ must load in the engine: every exported function,
// argument, result and field uses only types Dagger's codegen accepts.
func TestDaggerModuleUsesOnlyMainOrDaggerTypes(t *testing.T) {
	problems, err := ForeignTypes("../ci")
	assert.NilError(t, err)
	assert.DeepEqual(t, problems, []string(nil))
}

func TestForeignTypesFindsViolations(t *testing.T) {
	problems, err := ForeignTypes("testdata/foreign-types")
	assert.NilError(t, err)
	assert.DeepEqual(t, problems, []string{
		"Mod.Bad (main.go): type targets.Name is not from package main or dagger",
		"Mod.Target (main.go): type targets.Name is not from package main or dagger",
		"Result.Pods (main.go): type map[string]int is not from package main or dagger",
	})
}
