package kube

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/ringg/ringg-ci/runner/redact"
)

// Explanation says why the pods of a failed rollout failed, in the words of
// the kubelet and the scheduler: the pods grouped by cause and, for one pod
// of each group, its events and the last lines its container printed (now
// and before its last crash), and for pods left Pending the state of the
// nodes they could go to. Everything in it is bounded and scrubbed of the
// values of the Secrets the pods load.
type Explanation struct {
	Groups []PodGroup `json:"groups"`
	// More counts the failing pods of groups left out (ExplainOptions.MaxGroups).
	More int `json:"morePods,omitempty"`
	// Nodes is the node pool Pending pods wait for.
	Nodes *NodePool `json:"nodes,omitempty"`
	// Notes say what could not be read, and why.
	Notes []string `json:"notes,omitempty"`
}

// PodGroup is the failing pods that share a reason and cause.
type PodGroup struct {
	// Reason is the kubelet's or the scheduler's: NotReady, CrashLoopBackOff,
	// Unschedulable, ImagePullBackOff, CreateContainerConfigError...
	Reason string `json:"reason"`
	// Cause says why in their words, e.g. "readiness probe failed: HTTP
	// probe failed with statuscode: 503".
	Cause string   `json:"cause"`
	Pods  []string `json:"pods"`
	// Example is the pod (and container) whose details follow.
	Example   string `json:"example"`
	Container string `json:"container,omitempty"`
	Restarts  int32  `json:"restarts,omitempty"`
	// ExitCode and Terminated are the last termination of the example's
	// container (Error, OOMKilled...), when it has one.
	ExitCode   *int32 `json:"exitCode,omitempty"`
	Terminated string `json:"terminated,omitempty"`
	// Requests are the example pod's requests, for pods left Pending.
	Requests string     `json:"requests,omitempty"`
	Events   []PodEvent `json:"events,omitempty"`
	// Logs are the last lines of the example's container; Previous those
	// of the run before its last restart.
	Logs     []string `json:"logs,omitempty"`
	Previous []string `json:"previousLogs,omitempty"`
	// LogNote says why there are no logs (the container never started).
	LogNote string `json:"logNote,omitempty"`
}

// PodEvent is one event of a pod, repeated Count times.
type PodEvent struct {
	Type    string `json:"type"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Count   int32  `json:"count,omitempty"`
	// From is who reported it: kubelet, default-scheduler...
	From string `json:"from,omitempty"`
}

// String reads "Warning Unhealthy (×12, kubelet): Readiness probe failed: …".
func (e PodEvent) String() string {
	var meta []string
	if e.Count > 1 {
		meta = append(meta, fmt.Sprintf("×%d", e.Count))
	}
	if e.From != "" {
		meta = append(meta, e.From)
	}
	s := e.Type + " " + e.Reason
	if len(meta) > 0 {
		s += " (" + strings.Join(meta, ", ") + ")"
	}
	return s + ": " + e.Message
}

// NodePool is the state of the nodes a Pending pod may go to.
type NodePool struct {
	// Selector is the pod's node selector ("" when it has none).
	Selector string `json:"selector,omitempty"`
	// Nodes match the selector; Ready of them are Ready and Cordoned are
	// marked unschedulable.
	Nodes    int `json:"nodes"`
	Ready    int `json:"ready"`
	Cordoned int `json:"cordoned,omitempty"`
	// Allocatable is what they offer pods in all.
	Allocatable string `json:"allocatable,omitempty"`
}

// String reads "kubernetes.io/arch=arm64: 40 nodes, 40 Ready; 40 cpu, 160Gi
// memory allocatable".
func (n NodePool) String() string {
	s := fmt.Sprintf("%d nodes, %d Ready", n.Nodes, n.Ready)
	if n.Cordoned > 0 {
		s += fmt.Sprintf(", %d cordoned", n.Cordoned)
	}
	if n.Allocatable != "" {
		s += "; " + n.Allocatable + " allocatable"
	}
	if n.Selector != "" {
		s = n.Selector + ": " + s
	}
	return s
}

// Defaults of ExplainOptions.
const (
	DefaultExplainTimeout = 20 * time.Second
	DefaultLogLines       = 20
	DefaultMaxGroups      = 5
	maxEvents             = 8
	maxLine               = 400
)

// ExplainOptions bound what the explanation of a failed rollout reads.
type ExplainOptions struct {
	// Off leaves failed rollouts unexplained.
	Off bool
	// Timeout bounds the reading; zero means DefaultExplainTimeout.
	Timeout time.Duration
	// LogLines is how many last lines of each container are kept; zero
	// means DefaultLogLines.
	LogLines int64
	// MaxGroups is how many groups get details; zero means DefaultMaxGroups.
	MaxGroups int
}

func (o ExplainOptions) withDefaults() ExplainOptions {
	if o.Timeout <= 0 {
		o.Timeout = DefaultExplainTimeout
	}
	if o.LogLines <= 0 {
		o.LogLines = DefaultLogLines
	}
	if o.MaxGroups <= 0 {
		o.MaxGroups = DefaultMaxGroups
	}
	return o
}

// Explain reads why the failing pods fail: it groups them (GroupPods), then
// for one pod of each group reads its events and its container's last lines,
// and for Pending pods the nodes. What cannot be read (a permission the
// caller lacks) becomes a note; Explain itself never fails.
func Explain(ctx context.Context, client kubernetes.Interface, pods []*corev1.Pod, o ExplainOptions) Explanation {
	o = o.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	groups := GroupPods(pods)
	var ex Explanation
	byName := map[string]*corev1.Pod{}
	for _, p := range pods {
		byName[p.Name] = p
	}
	notes := map[string]bool{}
	note := func(what string, err error) {
		msg := fmt.Sprintf("%s: %v", what, err)
		if apierrors.IsForbidden(err) {
			msg = fmt.Sprintf("%s: forbidden for this account (grant it in deploy/rbac/<cluster>.yaml to see it here)", what)
		}
		if !notes[msg] {
			notes[msg] = true
			ex.Notes = append(ex.Notes, msg)
		}
	}
	var examples []*corev1.Pod
	for i := range groups {
		if i >= o.MaxGroups {
			ex.More += len(groups[i].Pods)
			continue
		}
		examples = append(examples, byName[groups[i].Example])
	}
	hide := secretScrubber(ctx, client, examples, note)
	for i, p := range examples {
		g := &groups[i]
		events, err := podEvents(ctx, client, p)
		if err != nil {
			note("events of pod "+p.Name, err)
		}
		g.Events = events
		if started(p, g.Container) {
			g.Logs, err = containerLogs(ctx, client, p, g.Container, false, o.LogLines)
			if err != nil {
				note("logs of pod "+p.Name, err)
			}
			if g.Restarts > 0 {
				if g.Previous, err = containerLogs(ctx, client, p, g.Container, true, o.LogLines); err != nil {
					note("logs of the previous container of pod "+p.Name, err)
				}
			}
		} else {
			g.LogNote = "the container never started: no logs"
		}
		g.Cause = refineCause(*g, events)
		if g.Reason == "Unschedulable" && ex.Nodes == nil {
			pool, err := nodePool(ctx, client, p)
			if apierrors.IsForbidden(err) {
				ex.Notes = append(ex.Notes, "the node pool: this account may not list nodes (a cluster-wide read); the scheduler's message says what it saw")
			} else if err != nil {
				note("nodes", err)
			} else {
				ex.Nodes = &pool
			}
		}
		g.scrub(hide)
	}
	ex.Groups = groups[:len(examples)]
	return ex
}

// GroupPods groups the failing pods by reason and cause as their statuses
// tell them (DiagnosePods, the worst problem of each pod), the largest
// group first; each group names its first pod as its example. Ready pods and
// pods being deleted are left out.
func GroupPods(pods []*corev1.Pod) []PodGroup {
	var groups []PodGroup
	index := map[string]int{}
	sorted := slices.Clone(pods)
	slices.SortFunc(sorted, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	for _, p := range sorted {
		if p.DeletionTimestamp != nil || PodReady(p) {
			continue
		}
		problems := diagnosePod(p)
		worst := problems[0]
		for _, q := range problems[1:] {
			if severity(q.Reason) > severity(worst.Reason) {
				worst = q
			}
		}
		cause := causeOf(worst, lastTermination(p, worst.Container))
		key := worst.Reason + "\x00" + normalize(cause)
		if slices.Contains(pullErrors, worst.Reason) {
			// ErrImagePull and ImagePullBackOff are two moments of one
			// problem: an image that cannot be pulled.
			key = "pull\x00" + imageOf(p, worst.Container)
		}
		i, ok := index[key]
		if !ok {
			i = len(groups)
			index[key] = i
			g := PodGroup{Reason: worst.Reason, Cause: cause, Example: p.Name, Container: worst.Container, Restarts: worst.Restarts}
			if slices.Contains(pullErrors, worst.Reason) {
				g.Reason = "ImagePullBackOff"
			}
			if t := lastTermination(p, worst.Container); t != nil {
				code := t.ExitCode
				g.ExitCode, g.Terminated = &code, t.Reason
				if msg := strings.TrimSpace(t.Message); msg != "" && worst.Reason == "CrashLoopBackOff" {
					// The kubelet's termination message (FallbackToLogsOnError:
					// the last lines the container printed).
					g.Previous = lastLines(msg, DefaultLogLines)
				}
			}
			if worst.Reason == "Unschedulable" || worst.Reason == "Pending" {
				g.Requests = requests(p)
			}
			groups = append(groups, g)
		}
		groups[i].Pods = append(groups[i].Pods, p.Name)
	}
	slices.SortStableFunc(groups, func(a, b PodGroup) int { return cmp.Compare(len(b.Pods), len(a.Pods)) })
	return groups
}

func imageOf(p *corev1.Pod, container string) string {
	for _, c := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
		if c.Name == container {
			return c.Image
		}
	}
	return ""
}

// severity orders a pod's problems: a container that cannot run explains
// more than one waiting for it.
func severity(reason string) int {
	switch reason {
	case "CrashLoopBackOff", "Terminated", "OOMKilled", "CreateContainerConfigError", "CreateContainerError", "RunContainerError":
		return 3
	case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
		return 2
	case "NotReady":
		return 0
	}
	return 1
}

// causeOf words a problem as its status tells it; t is the container's
// last termination, if any.
func causeOf(p PodProblem, t *corev1.ContainerStateTerminated) string {
	switch p.Reason {
	case "Unschedulable":
		return firstNonEmpty(p.Message, "not scheduled")
	case "CrashLoopBackOff", "Terminated":
		if t != nil {
			return fmt.Sprintf("exited with code %d (%s)", t.ExitCode, firstNonEmpty(t.Reason, "no reason"))
		}
		return p.Message
	case "NotReady":
		return firstNonEmpty(p.Message, "not ready")
	}
	return firstNonEmpty(p.Message, p.Reason)
}

// ipPort matches addresses that differ from pod to pod in otherwise equal
// messages ("dial tcp 10.4.0.7:8765: connect: connection refused").
var ipPort = regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b`)

// normalize makes messages that differ only by pod address equal.
func normalize(s string) string { return ipPort.ReplaceAllString(s, "<ip>") }

// refineCause words a group's cause with the example pod's events, which
// say more than its status: the readiness probe's answer, the registry's
// answer to a pull, the cluster autoscaler's verdict.
func refineCause(g PodGroup, events []PodEvent) string {
	latest := func(match func(PodEvent) bool) (PodEvent, bool) {
		for _, e := range slices.Backward(events) {
			if match(e) {
				return e, true
			}
		}
		return PodEvent{}, false
	}
	switch g.Reason {
	case "NotReady":
		if e, ok := latest(func(e PodEvent) bool { return e.Reason == "Unhealthy" }); ok {
			return lowerFirst(e.Message)
		}
		return "running, readiness probe not passing (no probe event)"
	case "ErrImagePull", "ImagePullBackOff":
		if e, ok := latest(func(e PodEvent) bool {
			return e.Reason == "Failed" && strings.HasPrefix(e.Message, "Failed to pull image")
		}); ok {
			return e.Message
		}
	case "Unschedulable":
		cause := g.Cause
		if e, ok := latest(func(e PodEvent) bool { return e.Reason == "NotTriggerScaleUp" || e.Reason == "TriggeredScaleUp" }); ok {
			cause += "; " + e.Reason + ": " + e.Message
		}
		return "FailedScheduling: " + cause
	case "CrashLoopBackOff", "Terminated":
		cause := g.Cause
		if e, ok := latest(func(e PodEvent) bool { return e.Reason == "Unhealthy" && strings.HasPrefix(e.Message, "Liveness") }); ok {
			cause += "; " + lowerFirst(e.Message)
		}
		if last := lastNonEmpty(g.Previous); last != "" {
			cause += "; last line: " + clip(last, maxLine)
		}
		return cause
	}
	return g.Cause
}

// started says whether a container of the pod ever ran, so has logs.
func started(p *corev1.Pod, container string) bool {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name != container && container != "" {
			continue
		}
		if cs.State.Running != nil || cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil || cs.RestartCount > 0 {
			return true
		}
	}
	return false
}

func lastTermination(p *corev1.Pod, container string) *corev1.ContainerStateTerminated {
	for _, cs := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
		if cs.Name != container {
			continue
		}
		if t := cs.State.Terminated; t != nil {
			return t
		}
		return cs.LastTerminationState.Terminated
	}
	return nil
}

// requests words what the pod asks of its node.
func requests(p *corev1.Pod) string {
	cpu, mem := resource.Quantity{}, resource.Quantity{}
	for _, c := range p.Spec.Containers {
		cpu.Add(*c.Resources.Requests.Cpu())
		mem.Add(*c.Resources.Requests.Memory())
	}
	if cpu.IsZero() && mem.IsZero() {
		return ""
	}
	return fmt.Sprintf("%s cpu, %s memory", cpu.String(), mem.String())
}

// podEvents reads the pod's events, oldest first, at most maxEvents (the
// latest).
func podEvents(ctx context.Context, client kubernetes.Interface, p *corev1.Pod) ([]PodEvent, error) {
	sel := fields.Set{"involvedObject.name": p.Name, "involvedObject.kind": "Pod"}.AsSelector().String()
	list, err := client.CoreV1().Events(p.Namespace).List(ctx, metav1.ListOptions{FieldSelector: sel, Limit: 200})
	if err != nil {
		return nil, err
	}
	return podEventsOf(p, list.Items), nil
}

// podEventsOf keeps the events of p (by name, and by UID when they carry
// one), oldest first, the latest maxEvents.
func podEventsOf(p *corev1.Pod, items []corev1.Event) []PodEvent {
	var mine []corev1.Event
	for _, e := range items {
		if e.InvolvedObject.Name != p.Name || (e.InvolvedObject.UID != "" && p.UID != "" && e.InvolvedObject.UID != p.UID) {
			continue
		}
		mine = append(mine, e)
	}
	when := func(e corev1.Event) time.Time {
		switch {
		case !e.LastTimestamp.IsZero():
			return e.LastTimestamp.Time
		case e.Series != nil:
			return e.Series.LastObservedTime.Time
		case !e.EventTime.IsZero():
			return e.EventTime.Time
		}
		return e.CreationTimestamp.Time
	}
	slices.SortStableFunc(mine, func(a, b corev1.Event) int { return when(a).Compare(when(b)) })
	if len(mine) > maxEvents {
		mine = mine[len(mine)-maxEvents:]
	}
	out := make([]PodEvent, 0, len(mine))
	for _, e := range mine {
		count := e.Count
		if e.Series != nil {
			count = max(count, e.Series.Count)
		}
		out = append(out, PodEvent{Type: e.Type, Reason: e.Reason, Message: clip(strings.TrimSpace(e.Message), maxLine), Count: count,
			From: firstNonEmpty(e.Source.Component, e.ReportingController)})
	}
	return out
}

// containerLogs reads the last lines of a container (the previous one's
// with previous), bounded in lines and bytes.
func containerLogs(ctx context.Context, client kubernetes.Interface, p *corev1.Pod, container string, previous bool, lines int64) ([]string, error) {
	limit := lines * maxLine * 2
	lo := &corev1.PodLogOptions{Container: container, Previous: previous, TailLines: &lines, LimitBytes: &limit}
	rc, err := client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, lo).Stream(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, limit))
	if err != nil {
		return nil, err
	}
	return lastLines(string(raw), int(lines)), nil
}

// lastLines keeps the last n lines of text, each clipped.
func lastLines(text string, n int) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		if l := strings.TrimRight(sc.Text(), "\r"); strings.TrimSpace(l) != "" {
			out = append(out, clip(l, maxLine))
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// nodePool reads the nodes a pod may go to, by its node selector.
func nodePool(ctx context.Context, client kubernetes.Interface, p *corev1.Pod) (NodePool, error) {
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1000})
	if err != nil {
		return NodePool{}, err
	}
	return poolOf(list.Items, p.Spec.NodeSelector), nil
}

// poolOf describes the nodes that match selector.
func poolOf(nodes []corev1.Node, selector map[string]string) NodePool {
	var pool NodePool
	var keys []string
	for k, v := range selector {
		keys = append(keys, k+"="+v)
	}
	slices.Sort(keys)
	pool.Selector = strings.Join(keys, ",")
	cpu, mem := resource.Quantity{}, resource.Quantity{}
	for _, n := range nodes {
		if !matches(selector, n.Labels) {
			continue
		}
		pool.Nodes++
		if n.Spec.Unschedulable {
			pool.Cordoned++
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				pool.Ready++
			}
		}
		cpu.Add(*n.Status.Allocatable.Cpu())
		mem.Add(*n.Status.Allocatable.Memory())
	}
	if pool.Nodes > 0 {
		pool.Allocatable = fmt.Sprintf("%s cpu, %s memory", cpu.String(), mem.String())
	}
	return pool
}

func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// secretScrubber hides, in what the explanation shows, the values of the
// Secrets the pods load (runner/redact): an app that prints its
// configuration when it fails must not print it here. When those Secrets
// cannot be read this is noted, and everything that would show a value (the
// logs and event messages) is hidden instead.
func secretScrubber(ctx context.Context, client kubernetes.Interface, pods []*corev1.Pod, note func(string, error)) func(string) string {
	if len(pods) == 0 {
		return func(s string) string { return s }
	}
	specs := make([]*corev1.PodSpec, 0, len(pods))
	for _, p := range pods {
		specs = append(specs, &p.Spec)
	}
	r, err := redact.For(ctx, client, pods[0].Namespace, specs...)
	if err != nil {
		note("the Secrets the pods load (to hide their values in logs)", err)
		return blind
	}
	return r.Text
}

// blind stands for what could not be checked for secret values.
func blind(string) string {
	return "(hidden: the Secrets the pod loads could not be read to scrub it)"
}

// scrub hides secret values in everything a group shows.
func (g *PodGroup) scrub(hide func(string) string) {
	g.Cause = hide(g.Cause)
	for i := range g.Events {
		g.Events[i].Message = hide(g.Events[i].Message)
	}
	for _, ls := range [][]string{g.Logs, g.Previous} {
		for i := range ls {
			ls[i] = hide(ls[i])
		}
	}
}

// Line words a group in one line: "16 pods NotReady: readiness probe failed:
// HTTP probe failed with statuscode: 503 (pod web-1 container app and 15
// more)".
func (g PodGroup) Line() string {
	var b strings.Builder
	n := len(g.Pods)
	fmt.Fprintf(&b, "%d %s %s", n, plural(n, "pod", "pods"), g.Reason)
	if g.Restarts > 0 {
		fmt.Fprintf(&b, " after %d restarts", g.Restarts)
	}
	if g.Cause != "" && g.Cause != g.Reason {
		b.WriteString(": " + g.Cause)
	}
	b.WriteString(" (pod " + g.Example)
	if g.Container != "" {
		b.WriteString(" container " + g.Container)
	}
	if n > 1 {
		fmt.Fprintf(&b, " and %d more", n-1)
	}
	b.WriteString(")")
	return b.String()
}

// Lines words each group in one line, and the pods left out.
func (e Explanation) Lines() []string {
	var out []string
	for _, g := range e.Groups {
		out = append(out, g.Line())
	}
	if e.More > 0 {
		out = append(out, fmt.Sprintf("%d more failing %s in other groups", e.More, plural(e.More, "pod", "pods")))
	}
	return out
}

// Markdown is the explanation in full, for a job summary: per group its
// line, then the example pod's events and last lines.
func (e Explanation) Markdown() string {
	var b strings.Builder
	for _, g := range e.Groups {
		fmt.Fprintf(&b, "#### %s\n\n", g.Line())
		if g.ExitCode != nil {
			fmt.Fprintf(&b, "- last exit: code %d (%s)\n", *g.ExitCode, firstNonEmpty(g.Terminated, "no reason"))
		}
		if g.Requests != "" {
			fmt.Fprintf(&b, "- each pod requests %s\n", g.Requests)
		}
		if g.Reason == "Unschedulable" && e.Nodes != nil {
			fmt.Fprintf(&b, "- node pool: %s\n", e.Nodes)
		}
		if len(g.Pods) > 1 {
			fmt.Fprintf(&b, "- pods: %s\n", shortNames(g.Pods, 10))
		}
		if len(g.Events) > 0 {
			fmt.Fprintf(&b, "\nEvents of pod %s:\n\n```\n", g.Example)
			for _, ev := range g.Events {
				b.WriteString(ev.String() + "\n")
			}
			b.WriteString("```\n")
		}
		for _, part := range []struct {
			title string
			lines []string
		}{{"before its last restart (previous container)", g.Previous}, {"now", g.Logs}} {
			if len(part.lines) == 0 {
				continue
			}
			fmt.Fprintf(&b, "\nLast lines of container %s, %s:\n\n```\n%s\n```\n", g.Container, part.title, strings.Join(part.lines, "\n"))
		}
		if g.LogNote != "" {
			fmt.Fprintf(&b, "\n(%s)\n", g.LogNote)
		}
		b.WriteString("\n")
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "%d more failing pods in other groups.\n\n", e.More)
	}
	for _, n := range e.Notes {
		fmt.Fprintf(&b, "- not shown: %s\n", n)
	}
	return b.String()
}

// Text is Markdown's content for a log: the same, without the markup.
func (e Explanation) Text() string {
	var b strings.Builder
	for _, g := range e.Groups {
		b.WriteString(g.Line() + "\n")
		for _, ev := range g.Events {
			b.WriteString("  event: " + ev.String() + "\n")
		}
		for _, l := range g.Previous {
			b.WriteString("  previous | " + l + "\n")
		}
		for _, l := range g.Logs {
			b.WriteString("  log | " + l + "\n")
		}
		if g.Reason == "Unschedulable" && e.Nodes != nil {
			b.WriteString("  node pool: " + e.Nodes.String() + "\n")
		}
	}
	for _, n := range e.Notes {
		b.WriteString("  not shown: " + n + "\n")
	}
	return b.String()
}

func shortNames(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:n], ", ") + fmt.Sprintf(" and %d more", len(names)-n)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func lastNonEmpty(lines []string) string {
	for _, l := range slices.Backward(lines) {
		if strings.TrimSpace(l) != "" {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
