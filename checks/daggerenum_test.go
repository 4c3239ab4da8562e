package checks

import (
	"slices"
	"strings"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/ci/targets"
)

// The Dagger enum Target has one constant per entry of ci/targets, named
// as the face converts it (upper case of the target's name).
func TestTargetEnumMatchesTargets(t *testing.T) {
	m, err := loadModule("../ci")
	assert.NilError(t, err)
	var values []string
	for _, e := range m.Enums {
		if e.Name != "Target" {
			continue
		}
		for _, v := range e.Values {
			values = append(values, v.Value)
		}
	}
	var want []string
	for _, tg := range targets.All() {
		want = append(want, strings.ToUpper(string(tg.Name)))
	}
	slices.Sort(values)
	slices.Sort(want)
	assert.DeepEqual(t, values, want)
}
