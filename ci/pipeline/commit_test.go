package pipeline

import (
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestValidateCommit(t *testing.T) {
	tests := []struct {
		name, commit string
		ok           bool
	}{
		{"a full SHA", "0123456789abcdef0123456789abcdef01234567", true},
		{"a short SHA", "0123abc", true},
		{"a SHA-256 object name", strings.Repeat("ab", 32), true},
		{"a tag with dots, dashes and underscores", "v1.2.3-rc_1", true},
		{"starting with an underscore", "_build", true},
		{"the longest tag", strings.Repeat("a", 128), true},
		{"empty", "", false},
		{"too long", strings.Repeat("a", 129), false},
		{"starting with a dot", ".hidden", false},
		{"starting with a dash", "-rc", false},
		{"a branch name with a slash", "feature/x", false},
		{"a ref", "refs/heads/dv-main", false},
		{"a colon", "abc:def", false},
		{"a space", "abc def", false},
		{"a newline", "abc\n", false},
		{"shell syntax left unexpanded", "${GITHUB_SHA}", false},
		{"non-ASCII", "ünïcode", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateCommit(tc.commit)
			if tc.ok {
				assert.NilError(t, err)
				return
			}
			assert.ErrorContains(t, err, "--commit")
			assert.Check(t, is.Contains(err.Error(), "is not a valid image tag"))
			assert.Check(t, is.Contains(err.Error(), `pass the commit SHA (--commit "$GITHUB_SHA")`))
		})
	}

	// A huge value is not repeated whole.
	err := ValidateCommit(strings.Repeat("x/", 10000))
	assert.Assert(t, err != nil)
	assert.Check(t, len(err.Error()) < 400, "%d bytes", len(err.Error()))
}
