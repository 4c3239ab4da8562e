package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// A loadCase is one module whose first load on an empty engine the bench
// measures, side by side with ours: the floor (a module with only the Dagger
// SDK) and the module as it was before the face was split off.
type loadCase struct {
	name string
	// prepare writes the module into dir, or names another directory that
	// holds it.
	prepare func(e *env, dir string) (string, error)
}

// beforeSplit is the last commit whose module held the runner's code in
// package main (Helm SDK, client-go, Google auth).
const beforeSplit = "3c60f5b"

var loadCases = []loadCase{
	{name: "only the Dagger SDK (the floor)", prepare: writeFloorModule},
	{name: "this module", prepare: func(e *env, _ string) (string, error) { return e.dir, nil }},
	{name: "before: the runner's code in the module (" + beforeSplit + ", `json` renamed so it loads)", prepare: writeModuleBeforeSplit},
}

// loads measures `dagger functions` of each case on an emptied engine,
// rounds times, the cases interleaved so that a slow spell of the machine
// falls on all of them, and returns a markdown table.
func (e *env) loads(ctx context.Context, o options, rounds int) (string, error) {
	dirs := make([]string, len(loadCases))
	for i, c := range loadCases {
		dir := filepath.Join(e.tmp, fmt.Sprintf("load-%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		var err error
		if dirs[i], err = c.prepare(e, dir); err != nil {
			return "", fmt.Errorf("prepare the module %q: %w", c.name, err)
		}
	}
	took := make([][]time.Duration, len(loadCases))
	for r := 1; r <= rounds; r++ {
		for i, c := range loadCases {
			fmt.Fprintf(os.Stderr, "== round %d of %d, first load: %s\n", r, rounds, c.name)
			if _, err := e.emptyEngine(ctx, o); err != nil {
				return "", err
			}
			t := time.Now()
			out, err := e.dagger(ctx, dirs[i], "functions")
			d := time.Since(t)
			if err != nil {
				return "", fmt.Errorf("load %q: %w\n%s", c.name, err, lastLines(out, 20))
			}
			took[i] = append(took[i], d)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| module, first load on an empty engine (`dagger functions`), %d rounds | median | min | max | vs the floor (median) |\n|---|---|---|---|---|\n", rounds)
	floor := median(took[0])
	for i, c := range loadCases {
		m := median(took[i])
		fmt.Fprintf(&b, "| %s | %.1f s | %.1f s | %.1f s | %+.1f s |\n", c.name, m.Seconds(), slices.Min(took[i]).Seconds(), slices.Max(took[i]).Seconds(), (m - floor).Seconds())
	}
	return b.String(), nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// writeFloorModule writes a module with one function and only the Dagger
// SDK, pinned as ours is (ci/go.mod).
func writeFloorModule(e *env, dir string) (string, error) {
	src := filepath.Join(e.dir, "ci")
	for _, f := range []string{"go.mod", "go.sum", "tools.go"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return "", err
		}
	}
	files := map[string]string{
		"dagger.json": `{"name": "floor", "engineVersion": "v0.21.9", "sdk": {"source": "go"}}` + "\n",
		"main.go":     "package main\n\n// Floor is the smallest module: what any Go module pays to load.\ntype Floor struct{}\n\n// Hello says hello.\nfunc (m *Floor) Hello() string { return \"hello\" }\n",
	}
	for f, text := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(text), 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// writeModuleBeforeSplit extracts the module as it was at beforeSplit and
// renames the `json` parameters that kept it from loading at all.
func writeModuleBeforeSplit(e *env, dir string) (string, error) {
	cmd := exec.Command("sh", "-c", fmt.Sprintf("git -C %q archive %s | tar -x -C %q", e.repo, beforeSplit, dir))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("git archive %s: %w: %s", beforeSplit, err, out)
	}
	main := filepath.Join(dir, "ci", "main.go")
	b, err := os.ReadFile(main)
	if err != nil {
		return "", err
	}
	s := regexp.MustCompile(`(?m)^\tjson bool,$`).ReplaceAllString(string(b), "\tasJson bool,")
	s = strings.ReplaceAll(s, "if json {", "if asJson {")
	if s == string(b) {
		return "", fmt.Errorf("%s: no `json` parameter to rename", main)
	}
	return dir, os.WriteFile(main, []byte(s), 0o644)
}
