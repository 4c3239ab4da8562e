package pipeline

import (
	"testing"

	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/ci/targets"
)

func TestNewTakeover(t *testing.T) {
	p, err := NewTakeover(TakeoverInput{Target: targets.Stable, Overrides: targets.Overrides{Namespace: "ns"}, ChartDir: "deploy/chart", DeleteOldRecords: true})
	assert.NilError(t, err)
	assert.Equal(t, p.Target.Release, "dv-pipecat")
	assert.Equal(t, p.Target.Namespace, "ns")
	assert.Equal(t, p.Holder, DefaultHolder)
	assert.Assert(t, p.DeleteOldRecords)

	_, err = NewTakeover(TakeoverInput{Target: "prod"})
	assert.ErrorContains(t, err, `invalid takeover of "prod": `)
	assert.ErrorContains(t, err, `unknown target "prod"`)
}
