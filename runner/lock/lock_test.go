package lock

import (
	"context"
	"errors"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
)

// The fake clientset checks neither resourceVersion preconditions nor
// timing; these tests cover decisions and messages. Races, renewal and
// preconditions are tested against a real API server in the root module's
// integration tests.

func TestHolder(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	host := func(name string, err error) func() (string, error) {
		return func() (string, error) { return name, err }
	}
	tests := []struct {
		name     string
		env      map[string]string
		hostname func() (string, error)
		want     string
	}{
		{
			name: "github actions with everything",
			env: map[string]string{
				"GITHUB_RUN_ID": "123", "GITHUB_RUN_ATTEMPT": "2", "GITHUB_REF_NAME": "dv-main",
				"GITHUB_SHA": "abc1234def5678", "GITHUB_ACTOR": "alice",
				"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "ringg/dv-pipecat",
			},
			want: "github-actions run 123 attempt 2 (dv-main@abc1234) by alice, https://github.com/ringg/dv-pipecat/actions/runs/123",
		},
		{
			name: "github actions with only a run id",
			env:  map[string]string{"GITHUB_RUN_ID": "9"},
			want: "github-actions run 9",
		},
		{
			name: "github actions without a ref",
			env:  map[string]string{"GITHUB_RUN_ID": "9", "GITHUB_SHA": "abc"},
			want: "github-actions run 9 (abc)",
		},
		{name: "workstation", env: map[string]string{"USER": "bob"}, hostname: host("laptop", nil), want: "bob@laptop"},
		{name: "logname fallback", env: map[string]string{"LOGNAME": "carol"}, hostname: host("box", nil), want: "carol@box"},
		{name: "nothing known", hostname: host("", errors.New("no hostname")), want: "unknown-user@unknown-host"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, Holder(env(tc.env), tc.hostname), tc.want)
		})
	}
}

func TestAcquireRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{name: "no namespace", opts: Options{Release: "r", Holder: "h"}, want: `namespace ""`},
		{name: "no release", opts: Options{Namespace: "default", Holder: "h"}, want: "release is empty"},
		{name: "bad release", opts: Options{Namespace: "default", Release: "Bad_Name", Holder: "h"}, want: `release "Bad_Name"`},
		{name: "no holder", opts: Options{Namespace: "default", Release: "r", Holder: " "}, want: "holder is empty"},
		{name: "tiny ttl", opts: Options{Namespace: "default", Release: "r", Holder: "h", TTL: time.Millisecond}, want: "below one second"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Acquire(context.Background(), fake.NewClientset(), tc.opts)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

func TestAcquireDecisions(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	at := func(d time.Duration) clock.Clock { return clocktesting.NewFakeClock(t0.Add(d)) }
	c := fake.NewClientset()
	opts := func(holder string, clk clock.Clock) Options {
		return Options{Namespace: "default", Release: "dv-pipecat-canary", Holder: holder, TTL: time.Minute, Clock: clk}
	}

	first, err := Acquire(ctx, c, opts("run 1", at(0)))
	assert.NilError(t, err)
	lease, err := c.CoordinationV1().Leases("default").Get(ctx, "ringg-ci-lock-dv-pipecat-canary", metav1.GetOptions{})
	assert.NilError(t, err)
	assert.Equal(t, *lease.Spec.HolderIdentity, "run 1")
	assert.Equal(t, *lease.Spec.LeaseDurationSeconds, int32(60))
	assert.Equal(t, lease.Labels[LabelRelease], "dv-pipecat-canary")

	_, err = Acquire(ctx, c, opts("run 2", at(30*time.Second)))
	assert.Assert(t, errors.Is(err, ErrHeld))
	var held *HeldError
	assert.Assert(t, errors.As(err, &held))
	assert.Equal(t, held.Holder, "run 1")
	assert.Equal(t, err.Error(), `acquire lock: lock ringg-ci-lock-dv-pipecat-canary in default is held by "run 1" since 2026-03-04T05:06:07Z `+
		`(last renewed 2026-03-04T05:06:07Z); wait for that deploy to finish and run again. If that holder is dead, the lock expires at `+
		`2026-03-04T05:07:07Z (in 30s) unless renewed; or delete it by hand: kubectl -n default delete lease ringg-ci-lock-dv-pipecat-canary`)

	// At exactly renewTime + TTL the lease has expired.
	second, err := Acquire(ctx, c, opts("run 2", at(time.Minute)))
	assert.NilError(t, err)
	lease, err = c.CoordinationV1().Leases("default").Get(ctx, "ringg-ci-lock-dv-pipecat-canary", metav1.GetOptions{})
	assert.NilError(t, err)
	assert.Equal(t, *lease.Spec.HolderIdentity, "run 2")
	assert.Equal(t, *lease.Spec.LeaseTransitions, int32(1))
	assert.Assert(t, lease.Spec.AcquireTime.Time.Equal(t0.Add(time.Minute)))

	assert.NilError(t, second.Release(ctx))
	assert.NilError(t, second.Release(ctx), "a second Release returns the first result")
	_, err = c.CoordinationV1().Leases("default").Get(ctx, "ringg-ci-lock-dv-pipecat-canary", metav1.GetOptions{})
	assert.Assert(t, err != nil, "the lease is deleted")

	// The first holder's lease is gone: releasing it reports the loss.
	err = first.Release(ctx)
	assert.Assert(t, errors.Is(err, ErrLost), "got %v", err)
	assert.Assert(t, is.Contains(err.Error(), "deleted while held"))
}
