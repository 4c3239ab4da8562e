package pipeline

import (
	"fmt"
	"regexp"
	"unicode/utf8"
)

// tagRE is the OCI distribution grammar of a tag.
var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// ValidateCommit checks that a --commit value can be the image's tag, so a
// bad one is refused before the slow build rather than at the push.
func ValidateCommit(commit string) error {
	if tagRE.MatchString(commit) {
		return nil
	}
	shown := fmt.Sprintf("%q", commit)
	if len(commit) > 80 {
		cut := 80
		for cut > 0 && !utf8.RuneStart(commit[cut]) {
			cut--
		}
		shown = fmt.Sprintf("%q… (%d bytes)", commit[:cut], len(commit))
	}
	return fmt.Errorf(`--commit %s is not a valid image tag (1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'): pass the commit SHA (--commit "$GITHUB_SHA"), or leave --commit out for a manual-<time> tag`, shown)
}
