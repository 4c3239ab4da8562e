package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Sentinels of a failed rollout, inside a *RolloutError.
var (
	// ErrRolloutTimeout: the rollout did not complete within its overall
	// cap (RolloutOptions.Timeout).
	ErrRolloutTimeout = errors.New("rollout timed out")
	// ErrRolloutStalled: the rollout stopped making progress for longer
	// than one wave can take (Budget.Stall).
	ErrRolloutStalled = errors.New("rollout stopped making progress")
	// ErrRolloutFailed: the rollout cannot complete (a crash loop past the
	// restart limit, an image that cannot be pulled).
	ErrRolloutFailed = errors.New("rollout failed")
)

// Defaults of RolloutOptions.
const (
	DefaultProgressInterval = 10 * time.Second
	DefaultMaxRestarts      = 3
	DefaultPullErrorGrace   = 2 * time.Minute
)

// Budget is what the rollout of one Deployment may take, from its own
// numbers (see pipeline.Rollout).
type Budget struct {
	// Stall fails the rollout when, for this long, no new pod became Ready,
	// no new pod was created and no old pod went away or started to;
	// zero means never.
	Stall time.Duration
	// Waves and Batch number the waves in progress reports: wave n of
	// Waves has Batch·(n-1) new pods Ready. Zero leaves them out.
	Waves, Batch int
}

// RolloutOptions say which Deployment to watch and how.
type RolloutOptions struct {
	Namespace string
	Name      string
	// Timeout is the overall cap on the wait; it is required. A rollout
	// that stops making progress fails sooner (Budget).
	Timeout time.Duration
	// Budget, when set, gives the Deployment's stall budget and waves; it
	// is asked again whenever the Deployment's spec changes (a rollback
	// watches the spec it returned to).
	Budget func(*appsv1.Deployment) Budget
	// Interval is the pace of Progress calls; zero means DefaultProgressInterval.
	Interval time.Duration
	// Progress, when set, is called every Interval and once at the end.
	Progress func(RolloutProgress)
	// MaxRestarts makes a container of a new pod that restarted this many
	// times a certain failure; zero means DefaultMaxRestarts.
	MaxRestarts int32
	// PullErrorGrace makes an image pull error that lasts this long a certain
	// failure; zero means DefaultPullErrorGrace.
	PullErrorGrace time.Duration
	// Explain bounds the explanation of a failed rollout (see Explain).
	Explain ExplainOptions
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// RolloutProgress counts the pods of a rollout: Ready and Updated are new
// pods, Desired the Deployment's replicas, Old the pods of older revisions
// still counted, Draining the pods being deleted (preStop running, their
// requests still held on their nodes), Pending the new pods not running
// yet, for the most common PendingReason.
type RolloutProgress struct {
	Desired       int32  `json:"desired"`
	Updated       int32  `json:"updated"`
	Ready         int32  `json:"ready"`
	Available     int32  `json:"available"`
	Old           int32  `json:"old"`
	Draining      int32  `json:"draining,omitempty"`
	Pending       int32  `json:"pending,omitempty"`
	PendingReason string `json:"pendingReason,omitempty"`
	// Deadline is Kubernetes' own verdict when the Deployment's
	// progressDeadlineSeconds passed without progress
	// (ProgressDeadlineExceeded). It is reported, not obeyed: slow image
	// pulls or a drain of minutes trip it while the rollout still moves; the
	// engine's stall budget decides.
	Deadline string `json:"progressDeadlineExceeded,omitempty"`
	// Wave of Waves is the batch of new pods under way (Budget); zero when
	// unknown.
	Wave  int `json:"wave,omitempty"`
	Waves int `json:"waves,omitempty"`
	// The verb's result carries the duration; Idle is the time since the
	// rollout last made progress, Stall its budget (zero: none).
	Elapsed time.Duration `json:"-"`
	Idle    time.Duration `json:"-"`
	Stall   time.Duration `json:"-"`
}

// String reads "3/4 ready, 4/4 updated, 1 old", then, while there are any,
// ", 1 draining, 2 pending (Unschedulable: 0/2 nodes are available: 2
// Insufficient cpu.)".
func (p RolloutProgress) String() string {
	s := fmt.Sprintf("%d/%d ready, %d/%d updated", p.Ready, p.Desired, p.Updated, p.Desired)
	if p.Old > 0 {
		s += fmt.Sprintf(", %d old", p.Old)
	}
	if p.Draining > 0 {
		s += fmt.Sprintf(", %d draining", p.Draining)
	}
	if p.Pending > 0 {
		s += fmt.Sprintf(", %d pending", p.Pending)
		if p.PendingReason != "" {
			s += " (" + p.PendingReason + ")"
		}
	}
	if p.Deadline != "" {
		s += "; Kubernetes reports ProgressDeadlineExceeded (" + p.Deadline + ")"
	}
	return s
}

// PodProblem says why one new pod is not Ready.
type PodProblem struct {
	Pod       string `json:"pod"`
	Container string `json:"container,omitempty"`
	// Reason is the kubelet's waiting reason (ImagePullBackOff, ErrImagePull,
	// CrashLoopBackOff, CreateContainerConfigError...), or NotReady,
	// Unschedulable, Pending, Failed.
	Reason   string `json:"reason"`
	Message  string `json:"message,omitempty"`
	Restarts int32  `json:"restarts,omitempty"`
}

// String reads "pod p container app: CrashLoopBackOff after 5 restarts (...)".
func (p PodProblem) String() string {
	var b strings.Builder
	b.WriteString("pod " + p.Pod)
	if p.Container != "" {
		b.WriteString(" container " + p.Container)
	}
	b.WriteString(": " + p.Reason)
	if p.Restarts > 0 {
		fmt.Fprintf(&b, " after %d restarts", p.Restarts)
	}
	if p.Message != "" {
		b.WriteString(" (" + p.Message + ")")
	}
	return b.String()
}

// RolloutError says which pods kept a rollout from completing, and why.
type RolloutError struct {
	Namespace, Deployment string
	Progress              RolloutProgress
	Problems              []PodProblem
	// Cause is ErrRolloutTimeout, ErrRolloutStalled, ErrRolloutFailed or
	// the context's error.
	Cause  error
	Detail string
	// Explanation groups the failing pods by cause and, unless the watch
	// was stopped from outside, gives each group's events and logs.
	Explanation *Explanation
}

// Error names the Deployment, the cause, the counts and, in one clause per
// group, why the pods fail.
func (e *RolloutError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "deployment %s in %s: %v after %s with %s", e.Deployment, e.Namespace, e.Cause, e.Progress.Elapsed.Round(time.Second), e.Progress)
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if e.Explanation != nil {
		for _, l := range e.Explanation.Lines() {
			b.WriteString("; " + l)
		}
		return b.String()
	}
	for _, p := range e.Problems {
		b.WriteString("; " + p.String())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *RolloutError) Unwrap() error { return e.Cause }

// pullErrors are waiting reasons of an image that cannot be pulled.
var pullErrors = []string{"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}

// DiagnosePods describes why each pod that is not Ready is not, worst
// problem first per pod. Ready pods and pods being deleted give nothing.
func DiagnosePods(pods []*corev1.Pod) []PodProblem {
	var out []PodProblem
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil || PodReady(pod) {
			continue
		}
		out = append(out, diagnosePod(pod)...)
	}
	slices.SortStableFunc(out, func(a, b PodProblem) int { return strings.Compare(a.Pod, b.Pod) })
	return out
}

func diagnosePod(pod *corev1.Pod) []PodProblem {
	if pod.Status.Phase == corev1.PodFailed {
		return []PodProblem{{Pod: pod.Name, Reason: "Failed", Message: firstNonEmpty(pod.Status.Message, pod.Status.Reason)}}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return []PodProblem{{Pod: pod.Name, Reason: "Unschedulable", Message: c.Message}}
		}
	}
	var out []PodProblem
	statuses := append(slices.Clone(pod.Status.InitContainerStatuses), pod.Status.ContainerStatuses...)
	for _, cs := range statuses {
		p := PodProblem{Pod: pod.Name, Container: cs.Name, Restarts: cs.RestartCount}
		switch {
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "ContainerCreating" && cs.State.Waiting.Reason != "PodInitializing":
			p.Reason, p.Message = cs.State.Waiting.Reason, cs.State.Waiting.Message
			if t := cs.LastTerminationState.Terminated; t != nil && p.Reason == "CrashLoopBackOff" {
				p.Message = fmt.Sprintf("last exit code %d %s", t.ExitCode, t.Reason)
			}
		case cs.State.Terminated != nil:
			p.Reason = "Terminated"
			p.Message = fmt.Sprintf("exit code %d %s", cs.State.Terminated.ExitCode, cs.State.Terminated.Reason)
		case cs.State.Running != nil && !cs.Ready:
			p.Reason, p.Message = "NotReady", "running, readiness probe not passing"
		default:
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		msg := string(pod.Status.Phase)
		if msg == "" {
			msg = "no status yet"
		}
		out = append(out, PodProblem{Pod: pod.Name, Reason: "NotReady", Message: msg})
	}
	return out
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// PodReady reports whether the pod's Ready condition is true.
func PodReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// failureRules say when a failing rollout cannot heal any more.
type failureRules struct {
	maxRestarts int32
	pullGrace   time.Duration
}

// certain returns why problems can no longer heal, or "". pullSince says
// since when each pod has had an image pull error.
func (r failureRules) certain(problems []PodProblem, pullSince map[string]time.Time, now time.Time) string {
	maxRestarts, grace := r.maxRestarts, r.pullGrace
	for _, p := range problems {
		if p.Restarts >= maxRestarts {
			return fmt.Sprintf("pod %s container %s restarted %d times (limit %d)", p.Pod, p.Container, p.Restarts, maxRestarts)
		}
		if p.Reason == "InvalidImageName" || p.Reason == "ErrImageNeverPull" {
			return fmt.Sprintf("pod %s cannot pull its image", p.Pod)
		}
		if since, ok := pullSince[p.Pod]; ok && slices.Contains(pullErrors, p.Reason) && now.Sub(since) >= grace {
			return fmt.Sprintf("pod %s has failed to pull its image for %s", p.Pod, now.Sub(since).Round(time.Second))
		}
	}
	return ""
}

// rolloutState is what one look at the caches says.
type rolloutState struct {
	progress RolloutProgress
	done     bool
	problems []PodProblem
	// pods are the new pods not being deleted.
	pods []*corev1.Pod
	// marks counts what only moves one way in a healthy rollout; nil until
	// the new revision is known.
	marks *marks
}

// marks are the counts whose improvement is progress: new pods created and
// Ready, old pods still there and old pods not yet deleted.
type marks struct {
	updated, ready, oldPresent, oldActive int32
}

// progressed says whether now improves on best in any count, and folds now
// into best.
func (best *marks) progressed(now marks) bool {
	moved := now.updated > best.updated || now.ready > best.ready || now.oldPresent < best.oldPresent || now.oldActive < best.oldActive
	best.updated, best.ready = max(best.updated, now.updated), max(best.ready, now.ready)
	best.oldPresent, best.oldActive = min(best.oldPresent, now.oldPresent), min(best.oldActive, now.oldActive)
	return moved
}

// evaluate is the pure decision over cached objects.
func evaluate(dep *appsv1.Deployment, rss []*appsv1.ReplicaSet, pods []*corev1.Pod) rolloutState {
	var st rolloutState
	desired := int32(1)
	if dep.Spec.Replicas != nil {
		desired = *dep.Spec.Replicas
	}
	st.progress.Desired = desired
	st.progress.Updated = dep.Status.UpdatedReplicas
	st.progress.Available = dep.Status.AvailableReplicas
	st.progress.Old = max(dep.Status.Replicas-dep.Status.UpdatedReplicas, 0)
	for _, c := range dep.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			st.progress.Deadline = c.Message
		}
	}
	observed := dep.Status.ObservedGeneration >= dep.Generation
	rev := dep.Annotations["deployment.kubernetes.io/revision"]
	var hash string
	for _, rs := range rss {
		if rev != "" && rs.Annotations["deployment.kubernetes.io/revision"] == rev && metav1.IsControlledBy(rs, dep) {
			hash = rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
		}
	}
	var newPods []*corev1.Pod
	var m marks
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			st.progress.Draining++
		}
		if !observed || hash == "" {
			continue
		}
		if p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != hash {
			m.oldPresent++
			if p.DeletionTimestamp == nil {
				m.oldActive++
			}
			continue
		}
		if p.DeletionTimestamp == nil {
			newPods = append(newPods, p)
			if PodReady(p) {
				st.progress.Ready++
			}
		}
	}
	if observed && hash != "" {
		m.updated, m.ready = dep.Status.UpdatedReplicas, st.progress.Ready
		st.marks = &m
	}
	st.progress.Pending, st.progress.PendingReason = pending(newPods)
	st.problems = DiagnosePods(newPods)
	st.pods = newPods
	st.done = observed &&
		dep.Status.UpdatedReplicas == desired &&
		dep.Status.Replicas == desired &&
		dep.Status.AvailableReplicas >= desired
	return st
}

// pending counts the pods not running yet and names their most common
// reason: the scheduler's ("Unschedulable: 0/2 nodes are available: 2
// Insufficient cpu."), or the kubelet's (ContainerCreating,
// ImagePullBackOff...).
func pending(pods []*corev1.Pod) (int32, string) {
	var n int32
	reasons := map[string]int{}
	for _, p := range pods {
		if p.Status.Phase != corev1.PodPending && p.Status.Phase != "" {
			continue
		}
		n++
		reasons[pendingReason(p)]++
	}
	best := ""
	for r, c := range reasons {
		if best == "" || c > reasons[best] || (c == reasons[best] && r < best) {
			best = r
		}
	}
	return n, best
}

func pendingReason(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			if c.Message != "" {
				return firstNonEmpty(c.Reason, "Unschedulable") + ": " + c.Message
			}
			return firstNonEmpty(c.Reason, "Unschedulable")
		}
	}
	if p.Spec.NodeName == "" {
		return "not scheduled yet"
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Waiting != nil && cs.State.Waiting.Reason != "" {
			return cs.State.Waiting.Reason
		}
	}
	return "ContainerCreating"
}

// WatchRollout waits for a Deployment's rollout to complete, watching the
// Deployment, its ReplicaSets and its pods through informers (which re-list
// after an API server restart) and deciding on every change. It returns as
// soon as every replica is updated and available and no old pod is counted,
// or a *RolloutError naming the pods that failed and why: as soon as failure
// is certain, when the rollout has made no progress for its Budget's Stall,
// or at the overall Timeout.
//
// Each look is three steps: read the caches into an observation, decide
// from it and what earlier looks remembered (decide, a pure function), act
// on the verdict (report, return).
func WatchRollout(ctx context.Context, client kubernetes.Interface, o RolloutOptions) (RolloutProgress, error) {
	if o.Timeout <= 0 {
		return RolloutProgress{}, fmt.Errorf("watch rollout of deployment %s: timeout %s must be positive", o.Name, o.Timeout)
	}
	o = o.withDefaults()
	start := o.Now()
	ctx, cancel := context.WithTimeoutCause(ctx, o.Timeout, ErrRolloutTimeout)
	defer cancel()
	rules := failureRules{o.MaxRestarts, o.PullErrorGrace}
	fail := func(v verdict) (RolloutProgress, error) {
		v.state.progress.Elapsed = o.Now().Sub(start)
		if o.Progress != nil {
			o.Progress(v.state.progress)
		}
		return v.state.progress, o.failure(ctx, client, v)
	}

	dep, err := getDeployment(ctx, client, o)
	if err != nil {
		return fail(verdict{outcome: outcomeFailed, cause: ErrRolloutTimeout, detail: err.Error()})
	}
	sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil {
		return RolloutProgress{}, fmt.Errorf("watch rollout of deployment %s in %s: selector: %w", o.Name, o.Namespace, err)
	}
	c, err := newCaches(client, o, sel)
	if err != nil {
		return RolloutProgress{}, err
	}
	stop := make(chan struct{})
	defer close(stop)
	c.run(stop)

	// Look often enough to notice a stall or a pull error's grace running
	// out without any event (at least every second); report progress every
	// Interval.
	tr := newTracker(start)
	ticker := time.NewTicker(o.lookEvery(tr.budget))
	defer ticker.Stop()
	lastReport := start
	var last verdict
	for {
		tick := false
		select {
		case <-ctx.Done():
			if c.synced() {
				tr, last = decide(tr, c.observe(o, dep), rules)
			}
			cause, detail := context.Cause(ctx), ""
			if errors.Is(cause, ErrRolloutTimeout) {
				cause, detail = ErrRolloutTimeout, fmt.Sprintf("timeout %s", o.Timeout)
			}
			last.outcome, last.cause, last.detail = outcomeFailed, cause, detail
			return fail(last)
		case <-ticker.C:
			if now := o.Now(); now.Sub(lastReport) >= o.Interval-time.Millisecond {
				tick, lastReport = true, now
			}
		case <-c.changed:
		case err := <-c.forbidden:
			return RolloutProgress{}, fmt.Errorf("watch rollout of deployment %s in %s: %w; grant list and watch on deployments, replicasets and pods (deploy/rbac/<cluster>.yaml)", o.Name, o.Namespace, err)
		}
		if c.synced() {
			obs := c.observe(o, dep)
			dep = obs.deployment
			before := tr.budget
			tr, last = decide(tr, obs, rules)
			if tr.budget != before {
				ticker.Reset(o.lookEvery(tr.budget))
			}
			switch last.outcome {
			case outcomeDone:
				if o.Progress != nil {
					o.Progress(last.state.progress)
				}
				return last.state.progress, nil
			case outcomeFailed:
				return fail(last)
			}
		}
		if tick && o.Progress != nil {
			o.Progress(last.state.progress)
		}
	}
}

// withDefaults fills in the options left zero.
func (o RolloutOptions) withDefaults() RolloutOptions {
	if o.Interval <= 0 {
		o.Interval = DefaultProgressInterval
	}
	if o.MaxRestarts <= 0 {
		o.MaxRestarts = DefaultMaxRestarts
	}
	if o.PullErrorGrace <= 0 {
		o.PullErrorGrace = DefaultPullErrorGrace
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// lookEvery is how often the watch looks without an event: often enough to
// see a stall or a pull error's grace end within a twentieth of either.
func (o RolloutOptions) lookEvery(b Budget) time.Duration {
	d := min(o.Interval, time.Second, o.PullErrorGrace/20)
	if b.Stall > 0 {
		d = min(d, b.Stall/20)
	}
	return max(d, 10*time.Millisecond)
}

// failure is the error of a failed verdict, its pods grouped by cause and,
// when the rollout failed by itself (not stopped from outside), explained:
// their events and logs read while they still exist, before any rollback.
func (o RolloutOptions) failure(ctx context.Context, client kubernetes.Interface, v verdict) error {
	e := &RolloutError{Namespace: o.Namespace, Deployment: o.Name, Progress: v.state.progress, Problems: v.state.problems, Cause: v.cause, Detail: v.detail}
	if len(v.state.problems) == 0 {
		return e
	}
	ours := errors.Is(v.cause, ErrRolloutTimeout) || errors.Is(v.cause, ErrRolloutStalled) || errors.Is(v.cause, ErrRolloutFailed)
	var ex Explanation
	if ours && !o.Explain.Off {
		ex = Explain(context.WithoutCancel(ctx), client, v.state.pods, o.Explain)
	} else {
		ex = outline(v.state.pods, o.Explain.withDefaults().MaxGroups)
	}
	e.Explanation = &ex
	for _, l := range ex.Lines() {
		o.Logger.Warn("rollout failing", "deployment", o.Name, "pods", l)
	}
	return e
}

// outline groups the pods without reading anything more.
func outline(pods []*corev1.Pod, maxGroups int) Explanation {
	var ex Explanation
	for i, g := range GroupPods(pods) {
		if i >= maxGroups {
			ex.More += len(g.Pods)
			continue
		}
		ex.Groups = append(ex.Groups, g)
	}
	return ex
}

// observation is one look at the watch's caches: the Deployment (the last
// known one while the cache has none), its ReplicaSets and pods, the stall
// budget of its spec, and the time of the look.
type observation struct {
	at          time.Time
	deployment  *appsv1.Deployment
	replicaSets []*appsv1.ReplicaSet
	pods        []*corev1.Pod
	budget      Budget
}

// tracker is what the watch remembers from one look to the next.
type tracker struct {
	start time.Time
	// generation is the Deployment generation the budget and marks are
	// for; -1 before the first look.
	generation int64
	budget     Budget
	// best holds the best counts of this generation's rollout (nil until
	// its new ReplicaSet is known) and lastProgress when they last moved.
	best         *marks
	lastProgress time.Time
	// pullSince says since when each pod has had an image pull error.
	pullSince map[string]time.Time
}

func newTracker(start time.Time) tracker {
	return tracker{start: start, generation: -1, lastProgress: start, pullSince: map[string]time.Time{}}
}

// outcome is where a rollout stands after a look.
type outcome int

const (
	outcomeWatching outcome = iota
	outcomeDone
	outcomeFailed
)

// verdict is what one look decided.
type verdict struct {
	state   rolloutState
	outcome outcome
	// cause and detail say why a failed rollout failed.
	cause  error
	detail string
}

// decide is the watch's decision for one observation, given what earlier
// looks remembered: the progress to report, and whether the rollout is
// done, still going or certain to fail (a crash loop past the restart
// limit, a lasting pull error, a stall longer than the budget). It reads
// no clock and changes nothing: it returns the tracker for the next look.
func decide(t tracker, obs observation, rules failureRules) (tracker, verdict) {
	next := t
	next.pullSince = make(map[string]time.Time, len(t.pullSince))
	if t.best != nil {
		b := *t.best
		next.best = &b
	}
	d := obs.deployment
	if d.Generation != t.generation {
		// A new spec is a new rollout: its own budget, its own marks.
		next.budget = obs.budget
		if t.generation >= 0 {
			next.best, next.lastProgress = nil, obs.at
		}
		next.generation = d.Generation
	}
	st := evaluate(d, obs.replicaSets, obs.pods)
	st.progress.Elapsed = obs.at.Sub(t.start)
	if st.marks != nil {
		if next.best == nil {
			m := *st.marks
			next.best = &m
		} else if next.best.progressed(*st.marks) {
			next.lastProgress = obs.at
		}
	}
	st.progress.Idle, st.progress.Stall = obs.at.Sub(next.lastProgress), next.budget.Stall
	if b := next.budget; b.Waves > 0 && b.Batch > 0 {
		st.progress.Waves = b.Waves
		st.progress.Wave = min(b.Waves, 1+int(st.progress.Ready)/b.Batch)
	}
	for _, p := range st.problems {
		if !slices.Contains(pullErrors, p.Reason) {
			continue
		}
		if since, ok := t.pullSince[p.Pod]; ok {
			next.pullSince[p.Pod] = since
		} else {
			next.pullSince[p.Pod] = obs.at
		}
	}
	v := verdict{state: st}
	switch {
	case st.done:
		v.outcome = outcomeDone
	default:
		if why := rules.certain(st.problems, next.pullSince, obs.at); why != "" {
			v.outcome, v.cause, v.detail = outcomeFailed, ErrRolloutFailed, why
		} else if stall := next.budget.Stall; stall > 0 && st.progress.Idle > stall {
			v.outcome, v.cause = outcomeFailed, ErrRolloutStalled
			v.detail = fmt.Sprintf("no new pod became Ready and no old pod went away for %s, longer than one wave may take (%s: drain, start and readiness)",
				st.progress.Idle.Round(time.Millisecond), stall)
		}
	}
	return next, v
}

// caches are the watch's informers over the Deployment, its ReplicaSets
// and its pods.
type caches struct {
	dep, rs, pods cache.SharedIndexInformer
	// changed is poked on every event.
	changed chan struct{}
	// forbidden hears a watch the caller may not make: it never syncs,
	// and without this the rollout would wait out its whole timeout and
	// blame the pods.
	forbidden chan error
	key       string
}

// newCaches sets up the informers; run starts them.
func newCaches(client kubernetes.Interface, o RolloutOptions, sel labels.Selector) (*caches, error) {
	c := &caches{changed: make(chan struct{}, 1), forbidden: make(chan error, 1), key: o.Namespace + "/" + o.Name}
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke(c.changed) },
		UpdateFunc: func(any, any) { poke(c.changed) },
		DeleteFunc: func(any) { poke(c.changed) },
	}
	// Plain informers over the typed clients: the informers package would
	// add ~120 packages to the module's cold compile for three resources.
	byName := func(lo *metav1.ListOptions) {
		lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", o.Name).String()
	}
	bySelector := func(lo *metav1.ListOptions) { lo.LabelSelector = sel.String() }
	deps := client.AppsV1().Deployments(o.Namespace)
	rsets := client.AppsV1().ReplicaSets(o.Namespace)
	podsAPI := client.CoreV1().Pods(o.Namespace)
	c.dep = informer(client, &appsv1.Deployment{}, byName, deps.List, deps.Watch)
	c.rs = informer(client, &appsv1.ReplicaSet{}, bySelector, rsets.List, rsets.Watch)
	c.pods = informer(client, &corev1.Pod{}, bySelector, podsAPI.List, podsAPI.Watch)
	for _, inf := range c.all() {
		if _, err := inf.AddEventHandler(notify); err != nil {
			return nil, fmt.Errorf("watch rollout of deployment %s: %w", o.Name, err)
		}
		if err := inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
			if apierrors.IsForbidden(err) {
				select {
				case c.forbidden <- err:
				default:
				}
			}
		}); err != nil {
			return nil, fmt.Errorf("watch rollout of deployment %s: %w", o.Name, err)
		}
	}
	return c, nil
}

func (c *caches) all() []cache.SharedIndexInformer {
	return []cache.SharedIndexInformer{c.dep, c.rs, c.pods}
}

func (c *caches) run(stop <-chan struct{}) {
	for _, inf := range c.all() {
		go inf.Run(stop)
	}
}

func (c *caches) synced() bool {
	return c.dep.HasSynced() && c.rs.HasSynced() && c.pods.HasSynced()
}

// observe reads the caches; last is the Deployment to keep when the cache
// has none (not synced yet, or deleted).
func (c *caches) observe(o RolloutOptions, last *appsv1.Deployment) observation {
	obs := observation{at: o.Now(), deployment: last}
	if obj, ok, _ := c.dep.GetStore().GetByKey(c.key); ok {
		obs.deployment = obj.(*appsv1.Deployment)
	}
	obs.replicaSets = stored[*appsv1.ReplicaSet](c.rs)
	obs.pods = stored[*corev1.Pod](c.pods)
	if o.Budget != nil {
		obs.budget = o.Budget(obs.deployment)
	}
	return obs
}

// informer watches one kind of object in a namespace, with list options
// narrowed by tweak. Like client-go's generated informers, it streams the
// initial list only from clients that support it (not the fake clientset).
func informer[L runtime.Object](client kubernetes.Interface, obj runtime.Object, tweak func(*metav1.ListOptions),
	list func(context.Context, metav1.ListOptions) (L, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error),
) cache.SharedIndexInformer {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, lo metav1.ListOptions) (runtime.Object, error) {
			tweak(&lo)
			return list(ctx, lo)
		},
		WatchFuncWithContext: func(ctx context.Context, lo metav1.ListOptions) (watch.Interface, error) {
			tweak(&lo)
			return watchFn(ctx, lo)
		},
	}
	return cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, client), obj, 0, cache.Indexers{})
}

// stored lists the objects an informer holds.
func stored[T any](inf cache.SharedIndexInformer) []T {
	items := inf.GetStore().List()
	out := make([]T, 0, len(items))
	for _, it := range items {
		if v, ok := it.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// getDeployment gets the Deployment, retrying while it does not exist yet or
// the API server is unreachable, until ctx ends.
func getDeployment(ctx context.Context, client kubernetes.Interface, o RolloutOptions) (*appsv1.Deployment, error) {
	var (
		dep  *appsv1.Deployment
		last error
	)
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		dep, last = client.AppsV1().Deployments(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
		if last != nil && !apierrors.IsNotFound(last) {
			o.Logger.Debug("get deployment, retrying", "deployment", o.Name, "error", last)
		}
		return last == nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("get deployment %s: %w", o.Name, last)
	}
	return dep, nil
}
