package pipeline

import (
	"math"
	"time"
)

// Rollout describes how a Deployment rolls out: the numbers the default
// deploy timeout is computed from. Durations are what the chart renders
// (readiness probe and termination grace period).
type Rollout struct {
	Replicas int
	// MaxSurge and MaxUnavailable are the strategy's values already resolved
	// against Replicas (Kubernetes rounds a surge percentage up and an
	// unavailability percentage down).
	MaxSurge       int
	MaxUnavailable int
	// ReadinessDelay and ReadinessPeriod are the readiness probe's
	// initialDelaySeconds and periodSeconds.
	ReadinessDelay  time.Duration
	ReadinessPeriod time.Duration
	// TerminationGrace is the pod's terminationGracePeriodSeconds: the drain.
	TerminationGrace time.Duration
}

// Margins added by RolloutTimeout. StartMargin covers scheduling, image pull
// and container start of each wave; FixedMargin covers the API round trips of
// the release itself.
const (
	StartMargin = 30 * time.Second
	FixedMargin = 60 * time.Second
)

// Waves returns how many batches of new pods the rollout needs: a Deployment
// replaces at most maxSurge + maxUnavailable pods at a time.
func (r Rollout) Waves() int {
	if r.Replicas <= 0 {
		return 0
	}
	batch := max(r.MaxSurge, 0) + max(r.MaxUnavailable, 0)
	if batch < 1 {
		batch = 1 // the API rejects surge = unavailable = 0; be safe anyway
	}
	return int(math.Ceil(float64(r.Replicas) / float64(batch)))
}

// RolloutTimeout is the default time a deploy waits for its rollout before it
// rolls back. Each wave of new pods costs the readiness delay, one probe
// period (a first failed probe) and the start margin. The termination grace is
// counted once: old pods drain while later waves start (terminating pods do
// not hold back a Deployment), so only the last drain can extend the rollout,
// e.g. when a quota or a replacement policy waits for it. A zero-replica
// Deployment still gets the fixed margin.
func RolloutTimeout(r Rollout) time.Duration {
	perWave := max(r.ReadinessDelay, 0) + max(r.ReadinessPeriod, 0) + StartMargin
	waves := r.Waves()
	d := time.Duration(waves)*perWave + FixedMargin
	if waves > 0 {
		d += max(r.TerminationGrace, 0)
	}
	return d
}
