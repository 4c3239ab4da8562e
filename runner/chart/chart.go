// Package chart loads, configures, renders and lints the dv-pipecat Helm chart
// (deploy/chart) without a cluster: it is what the pipeline shows in a plan,
// what the tests pin in golden files, and what the runner installs.
// Nothing here touches the network.
package chart

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
)

// Load reads the chart in dir.
func Load(dir string) (*chart.Chart, error) {
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w: check the path points at the directory holding Chart.yaml", dir, err)
	}
	return ch, nil
}

// Values returns the user values of one release: the target's values files
// (paths relative to dir) merged in order as `helm -f a -f b` does, then
// computed (the pipeline's image digest, Secret names, ...) merged on top.
//
// Merge rule, for files and computed alike: a later map wins key by key;
// nested maps merge recursively; anything else (lists, scalars, null) replaces
// the earlier value whole. A null removes the key from the chart's defaults
// when Helm coalesces.
//
// The chart's own values.yaml is not part of the result: Helm applies it
// itself as the base, and passing it again would store a copy of every default
// in each release record, where later chart changes could no longer reach.
func Values(dir string, files []string, computed map[string]any) (map[string]any, error) {
	paths := make([]string, len(files))
	for i, f := range files {
		if filepath.IsAbs(f) {
			paths[i] = f
		} else {
			paths[i] = filepath.Join(dir, f)
		}
	}
	// Empty providers: MergeValues reads every path from disk, never by URL.
	opts := values.Options{ValueFiles: paths}
	merged, err := opts.MergeValues(getter.Providers{})
	if err != nil {
		return nil, fmt.Errorf("merge values files %v of chart %s: %w: check the files exist and are valid YAML", files, dir, err)
	}
	top, err := normalize(computed)
	if err != nil {
		return nil, fmt.Errorf("merge computed values into chart %s values: %w", dir, err)
	}
	return merge(merged, top), nil
}

// normalize turns Go values (ints, structs, typed maps) into what Helm reads
// from YAML files (float64, map[string]any, []any), so that templates and the
// release record see one representation whatever the source.
func normalize(in map[string]any) (map[string]any, error) {
	if len(in) == 0 {
		return map[string]any{}, nil
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("computed values are not JSON-serialisable: %w", err)
	}
	out := map[string]any{}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode computed values: %w", err)
	}
	return out, nil
}

// merge returns a new map with b deep-merged over a (see Values for the rule).
func merge(a, b map[string]any) map[string]any {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range b {
		if bm, ok := v.(map[string]any); ok {
			if am, ok := out[k].(map[string]any); ok {
				out[k] = merge(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}
