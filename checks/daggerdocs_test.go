package checks

import (
	"regexp"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// Doc comments are the module's CLI help; live-state functions must never be
// served from Dagger's function cache.
// goStyle matches "Deploy deploys …": Go doc style, which reads oddly as CLI help.
var goStyle = regexp.MustCompile(`^[A-Z][a-zA-Z]* [a-z]+s `)

func TestDaggerFunctionsAreDocumentedAndUncachedWhenLive(t *testing.T) {
	funcs, err := Functions("../ci")
	assert.NilError(t, err)
	live := map[string]bool{"Publish": true, "Deploy": true, "Promote": true, "Rollback": true, "Status": true, "Plan": true}
	seen := map[string]bool{}
	for _, f := range funcs {
		seen[f.Name] = true
		t.Run(f.Name, func(t *testing.T) {
			assert.Check(t, f.Doc != "", "every function has a doc comment: its --help")
			first, _, _ := strings.Cut(f.Doc, "\n")
			assert.Check(t, !goStyle.MatchString(first), "the first line is imperative help text, not Go doc style: %q", first)
			assert.Check(t, is.Len(f.Undocumented, 0), "every argument has a comment line right above it")
			if live[f.Name] {
				assert.Check(t, is.Contains(f.Doc, `+cache="never"`), "reads or changes live state")
			}
		})
	}
	for name := range live {
		assert.Check(t, seen[name], "the module has %s", name)
	}
}

// An argument without its own comment line has no --help text: one declared
// after another on the same line gets none either.
func TestFunctionsFindsUndocumentedArguments(t *testing.T) {
	funcs, err := Functions("testdata/undocumented-arguments")
	assert.NilError(t, err)
	assert.DeepEqual(t, funcs, []Function{{
		Name:         "Deploy",
		Doc:          "Deploy a branch.\n",
		Undocumented: []string{"commit", "image"},
	}})
}
