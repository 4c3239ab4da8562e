package pipeline

import (
	"fmt"
	"math"
	"time"
)

// Rollout describes how a Deployment rolls out: the numbers its deadlines
// are computed from, as the chart renders them (readiness probe, termination
// grace period, strategy). It is the one place those deadlines are derived;
// the chart's progressDeadlineSeconds mirrors Wave (see
// deploy/chart/templates/_helpers.tpl).
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
	// TerminationGrace is the pod's terminationGracePeriodSeconds: the
	// longest an old pod can drain (preStop, then its exit after SIGTERM)
	// while it keeps its CPU and memory on its node.
	TerminationGrace time.Duration
	// ProgressDeadline is the Deployment's progressDeadlineSeconds, after
	// which Kubernetes itself declares the rollout failed.
	ProgressDeadline time.Duration
}

// Margins of the deadlines. StartMargin covers scheduling, image pull and
// container start of one wave; FixedMargin the API round trips of the
// release itself; CapFactor how far the overall cap stands above the
// longest healthy rollout.
const (
	StartMargin = 30 * time.Second
	FixedMargin = 60 * time.Second
	CapFactor   = 2
)

// Batch is how many pods one wave replaces when the node pool is full, as
// production's is: no surge pod fits, so each wave is the maxUnavailable
// old pods the Deployment deletes, whose room the new pods wait for (the
// surge alone when maxUnavailable is zero). With room to spare a wave is
// larger and the rollout quicker.
func (r Rollout) Batch() int {
	switch {
	case r.MaxUnavailable > 0:
		return r.MaxUnavailable
	case r.MaxSurge > 0:
		return r.MaxSurge
	}
	return 1 // the API rejects surge = unavailable = 0; be safe anyway
}

// Waves returns how many batches of new pods the rollout needs.
func (r Rollout) Waves() int {
	if r.Replicas <= 0 {
		return 0
	}
	return int(math.Ceil(float64(r.Replicas) / float64(r.Batch())))
}

// Wave is the longest one wave can legitimately take: the old pods drain for
// up to their grace period before their room is free, the new pods start
// (StartMargin), and pass their readiness probe, allowing one failed probe
// (delay plus one period). A rollout that makes no progress for longer than
// this (no new pod Ready, no old pod gone or going) has stopped; Kubernetes'
// progressDeadlineSeconds is set to it.
func (r Rollout) Wave() time.Duration {
	return max(r.TerminationGrace, 0) + StartMargin + max(r.ReadinessDelay, 0) + max(r.ReadinessPeriod, 0)
}

// ProgressDeadlineSeconds is Wave in whole seconds, rounded up: the value
// the chart renders as the Deployment's progressDeadlineSeconds.
func (r Rollout) ProgressDeadlineSeconds() int32 {
	return int32((r.Wave() + time.Second - 1) / time.Second)
}

// Expected is the longest a healthy rollout takes: every wave as long as a
// wave can be, plus the fixed margin. A 60-replica stable release whose pods
// each drain the whole 270 s grace period takes about 4 × 6.5 min.
func (r Rollout) Expected() time.Duration {
	return time.Duration(r.Waves())*r.Wave() + FixedMargin
}

// RolloutTimeout is the default overall cap on a rollout (what --timeout
// overrides): CapFactor times the longest healthy rollout. A rollout that
// stops making progress fails long before, after one Wave; the cap only ends
// one that keeps crawling. A zero-replica Deployment still gets the fixed
// margin.
func RolloutTimeout(r Rollout) time.Duration {
	return time.Duration(CapFactor*r.Waves())*r.Wave() + FixedMargin
}

// Check reports a Deployment whose own progress deadline is shorter than one
// wave: Kubernetes would declare a healthy rollout failed and the release
// would roll back.
func (r Rollout) Check() error {
	if r.ProgressDeadline > 0 && r.ProgressDeadline < r.Wave() {
		return fmt.Errorf("progressDeadlineSeconds %d is shorter than one wave of the rollout (%d s: drain %s, start %s, readiness %s + %s): Kubernetes would fail a healthy rollout; render it as at least %d",
			int(r.ProgressDeadline.Seconds()), r.ProgressDeadlineSeconds(), r.TerminationGrace, StartMargin, r.ReadinessDelay, r.ReadinessPeriod, r.ProgressDeadlineSeconds())
	}
	return nil
}

// Scaled returns how long d of a Deployment's own numbers lasts when one of
// its seconds lasts second here: tests and benchmarks run production's
// numbers on a time scale. Zero second means real time.
func Scaled(d, second time.Duration) time.Duration {
	if second <= 0 || second == time.Second {
		return d
	}
	return time.Duration(float64(d) * float64(second) / float64(time.Second))
}
