package chart

import (
	"errors"
	"fmt"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
)

// Lint runs `helm lint --strict` on the chart in dir with the values of one
// target (files relative to dir, then computed, as in Values). Errors and
// warnings come back joined in one error; informational messages are dropped.
//
// Lint renders with the release name "test-release" and does not evaluate
// `fail`: Render is what checks the values of a real release.
func Lint(dir string, files []string, computed map[string]any) error {
	what := fmt.Sprintf("lint chart %s with values %v", dir, files)
	vals, err := Values(dir, files, computed)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	kv, err := chartutil.ParseKubeVersion(DefaultKubeVersion)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	l := action.NewLint()
	l.Strict = true
	l.Namespace = DefaultNamespace
	l.KubeVersion = kv
	res := l.Run([]string{dir}, vals)
	if len(res.Errors) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w", what, errors.Join(res.Errors...))
}
