package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
)

func TestRolloutRowsJudgeOursAgainstTheFloor(t *testing.T) {
	scale := 100 * time.Millisecond
	floor := 140 * time.Second // 4 × 350 s of production at 100 ms
	tests := []struct {
		name  string
		walls durations
		met   string
	}{
		{"within 1 %", durations{floor + time.Second, floor + 1400*time.Millisecond}, "yes"},
		{"worst run over 1 %", durations{floor + time.Second, floor + 1500*time.Millisecond}, "no"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &rolloutResults{Scale: scale, Ours: rolloutSeries{Wall: tc.walls}, HelmWait: rolloutSeries{Wall: durations{floor}}}
			rows := r.rows()
			assert.Equal(t, rows[0].Met, tc.met)
			assert.Assert(t, strings.Contains(rows[0].Ours, "of production"), rows[0].Ours)
			assert.Equal(t, rows[1].Met, "yes", "no healthy rollout failed")
		})
	}
	r := &rolloutResults{Scale: scale, Ours: rolloutSeries{Wall: durations{floor}, Failed: 1}}
	assert.Equal(t, r.rows()[1].Met, "no")
}

func TestReplaceBlockKeepsTheRest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	assert.NilError(t, os.WriteFile(path, []byte("# B\n\nbefore\n"+rolloutBegin+"\nold\n"+rolloutEnd+"\nafter\n"), 0o644))
	assert.NilError(t, replaceBlock(path, rolloutBegin, rolloutEnd, rolloutBegin+"\nnew\n"+rolloutEnd+"\n"))
	got, err := os.ReadFile(path)
	assert.NilError(t, err)
	assert.Equal(t, string(got), "# B\n\nbefore\n"+rolloutBegin+"\nnew\n"+rolloutEnd+"\nafter\n")

	assert.NilError(t, os.WriteFile(path, []byte("no markers\n"), 0o644))
	assert.ErrorContains(t, replaceBlock(path, rolloutBegin, rolloutEnd, "x"), "the bench markers are missing")
}
