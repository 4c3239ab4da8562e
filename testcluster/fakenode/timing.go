package fakenode

import (
	"math"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Timing is how long one pod takes at each step of its life, counted like
// the pod spec's own numbers: in the spec's seconds, which last
// Options.TimeScale each here. The zero Timing still follows the pod spec:
// Ready at the readiness probe's initialDelaySeconds, removed at once when
// deleted.
type Timing struct {
	// Start is from binding to the container running (image pull, container
	// start); the pod is Pending in ContainerCreating meanwhile.
	Start time.Duration
	// Ready is from the container running to the app passing its readiness
	// probe. The kubelet sees it at the first probe at or after that: the
	// first probe runs initialDelaySeconds after the start, the next ones
	// every periodSeconds. A container without a readiness probe is Ready
	// as soon as it runs.
	Ready time.Duration
	// Drain is how long a deleted pod stays Terminating (its preStop, then
	// its exit after SIGTERM), bounded by the deletion's grace period, as
	// the kubelet kills what is left when the grace period ends. WholeGrace
	// uses all of it. A pod whose container is not running goes at once.
	// Until it goes, the pod keeps its resource requests on its node.
	Drain time.Duration
	// CrashAfter is how long a CrashLoop container runs before it exits
	// with code 1. The kubelet then restarts it after its back-off: 10 s,
	// doubling, at most 5 minutes.
	CrashAfter time.Duration
}

// WholeGrace as Timing.Drain keeps a deleted pod Terminating for its whole
// grace period, like a preStop that never returns.
const WholeGrace time.Duration = math.MaxInt64

// Kubelet constants the timing follows.
const (
	// DefaultProbePeriod is periodSeconds when a probe leaves it zero.
	DefaultProbePeriod = 10 * time.Second
	// DefaultGracePeriod is terminationGracePeriodSeconds when unset.
	DefaultGracePeriod = 30 * time.Second
	backOffBase        = 10 * time.Second
	backOffMax         = 5 * time.Minute
	// pullAttempt is how long ErrImagePull shows before the back-off.
	pullAttempt = time.Second
)

// backOff is the kubelet's wait before the n-th retry (n ≥ 1) of a crashed
// container or a failed image pull.
func backOff(n int32) time.Duration {
	d := backOffBase
	for i := int32(1); i < n && d < backOffMax; i++ {
		d *= 2
	}
	return min(d, backOffMax)
}

// probe is a readiness probe's timing.
type probe struct {
	delay, period time.Duration
}

// readinessProbe returns the slowest readiness probe of the pod's
// containers, or nil when none has one.
func readinessProbe(pod *corev1.Pod) *probe {
	var p *probe
	for _, c := range pod.Spec.Containers {
		rp := c.ReadinessProbe
		if rp == nil {
			continue
		}
		if p == nil {
			p = &probe{}
		}
		p.delay = max(p.delay, time.Duration(rp.InitialDelaySeconds)*time.Second)
		period := time.Duration(rp.PeriodSeconds) * time.Second
		if period <= 0 {
			period = DefaultProbePeriod
		}
		p.period = max(p.period, period)
	}
	return p
}

// readyAt is when, after binding, a container that starts at start and whose
// app is ready ready later is first probed Ready.
func readyAt(start, ready time.Duration, p *probe) time.Duration {
	if p == nil {
		return start
	}
	first := start + p.delay
	app := start + ready
	if app <= first {
		return first
	}
	probes := (app - first + p.period - 1) / p.period
	return first + probes*p.period
}

// stage is how far a bound pod's container has got.
type stage int

const (
	stageCreating    stage = iota // bound, container not started
	stageRunning                  // running; ready says whether probed Ready
	stageCrashed                  // exited, waiting in CrashLoopBackOff
	stagePullError                // ErrImagePull
	stagePullBackOff              // ImagePullBackOff
)

// state is what the kubelet reports for a pod.
type state struct {
	stage    stage
	ready    bool
	restarts int32
	// started is when the running container started, counted from binding.
	started time.Duration
}

// course is what decides a bound pod's life: its behavior, its timing, its
// readiness probe (nil: none) and the restart limit.
type course struct {
	b           Behavior
	t           Timing
	p           *probe
	maxRestarts int32
}

// at says where a pod on this course, bound elapsed ago, has got to, and
// how long until that changes (0: never). Every duration is in the pod
// spec's seconds.
func (c course) at(elapsed time.Duration) (state, time.Duration) {
	b, t, p, maxRestarts := c.b, c.t, c.p, c.maxRestarts
	start := max(t.Start, 0)
	if elapsed < start {
		return state{stage: stageCreating}, start - elapsed
	}
	switch b {
	case Ready:
		at := readyAt(start, max(t.Ready, 0), p)
		if elapsed < at {
			return state{stage: stageRunning, started: start}, at - elapsed
		}
		return state{stage: stageRunning, ready: true, started: start}, 0
	case NeverReady:
		return state{stage: stageRunning, started: start}, 0
	case CrashLoop:
		run := max(t.CrashAfter, 0)
		began := start
		for n := int32(0); ; {
			crash := began + run
			if elapsed < crash {
				return state{stage: stageRunning, restarts: n, started: began}, crash - elapsed
			}
			n++
			if n >= maxRestarts {
				return state{stage: stageCrashed, restarts: n}, 0
			}
			restart := crash + backOff(n)
			if elapsed < restart {
				return state{stage: stageCrashed, restarts: n}, restart - elapsed
			}
			began = restart
		}
	case PullError:
		attempt := start
		for n := int32(1); ; n++ {
			failed := attempt + pullAttempt
			if elapsed < failed {
				return state{stage: stagePullError}, failed - elapsed
			}
			attempt = failed + backOff(n)
			if elapsed < attempt {
				return state{stage: stagePullBackOff}, attempt - elapsed
			}
		}
	}
	return state{stage: stageRunning, started: start}, 0
}

// gracePeriod is how long the kubelet gives a deleted pod: the deletion's
// own grace period, else the spec's.
func gracePeriod(pod *corev1.Pod) time.Duration {
	switch {
	case pod.DeletionGracePeriodSeconds != nil:
		return time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return DefaultGracePeriod
}

// drainFor is how long a deleted pod whose container runs stays
// Terminating: its drain, at most its grace period.
func drainFor(pod *corev1.Pod, t Timing) time.Duration {
	return max(min(t.Drain, gracePeriod(pod)), 0)
}

// scale converts between the pod spec's seconds and this process's time.
type scale time.Duration

// real is how long d of the spec's seconds lasts here.
func (s scale) real(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(float64(d) * float64(s) / float64(time.Second))
}

// spec is how many of the spec's seconds d here stands for.
func (s scale) spec(d time.Duration) time.Duration {
	return time.Duration(float64(d) * float64(time.Second) / float64(s))
}
