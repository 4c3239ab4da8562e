package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestDurations(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name          string
		in            durations
		median, least time.Duration
	}{
		{"empty", nil, 0, 0},
		{"odd", durations{30 * ms, 10 * ms, 20 * ms}, 20 * ms, 10 * ms},
		{"even", durations{40 * ms, 10 * ms, 20 * ms, 30 * ms}, 25 * ms, 10 * ms},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.in.median(), tc.median)
			assert.Equal(t, tc.in.min(), tc.least)
		})
	}
	assert.Equal(t, medianInt([]int{5, 1, 3, 2}), 2)
}

func TestWriteDocKeepsTextOutsideTheMarkers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	res := &results{Machine: machine{CPUs: 2, Go: "go1.26", Deps: map[string]string{}}, Rounds: 3,
		Render: durations{20 * time.Millisecond, 30 * time.Millisecond, 25 * time.Millisecond}}

	// A new file gets a title and the block.
	assert.NilError(t, writeDoc(path, res, res.rows()))
	first, err := os.ReadFile(path)
	assert.NilError(t, err)
	assert.Assert(t, strings.HasPrefix(string(first), "# Benchmarks\n\n"+beginMarker))
	assert.Assert(t, is.Contains(string(first), "| Render all 3 targets in process | 25 ms (min 20 ms) | - | - | ≤ 150 ms | yes |"))

	// Rewriting replaces the block and keeps what is around it.
	edited := strings.Replace(string(first), "# Benchmarks\n", "# Benchmarks\n\nHow to read this.\n", 1) + "\n## Analysis\n\nBy hand.\n"
	assert.NilError(t, os.WriteFile(path, []byte(edited), 0o644))
	res.Render = durations{200 * time.Millisecond}
	assert.NilError(t, writeDoc(path, res, res.rows()))
	second, err := os.ReadFile(path)
	assert.NilError(t, err)
	s := string(second)
	assert.Assert(t, is.Contains(s, "How to read this.\n"))
	assert.Assert(t, is.Contains(s, "## Analysis\n\nBy hand.\n"))
	assert.Assert(t, is.Contains(s, "| 200 ms (min 200 ms) | - | - | ≤ 150 ms | no |"))
	assert.Equal(t, strings.Count(s, beginMarker), 1)
	assert.Equal(t, strings.Count(s, endMarker), 1)

	// Without the markers nothing is overwritten.
	assert.NilError(t, os.WriteFile(path, []byte("# Hand written\n"), 0o644))
	assert.ErrorContains(t, writeDoc(path, res, res.rows()), "the bench markers are missing")
}
