package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/secrets"
	"github.com/ringg/ringg-ci/testcluster"
	"github.com/ringg/ringg-ci/testcluster/fakenode"
)

// The simulated production pod, in production's seconds, as in
// integration/rollout_test.go: 20 s to pull and start, the app ready 10 s
// later (Ready at the first probe, 60 s after the start), every stable pod
// draining its whole 270 s grace period. The canary's pods go at once: only
// stable's rollout is measured.
const (
	slowStart   = 20 * time.Second
	slowApp     = 10 * time.Second
	slowGrace   = 270 * time.Second
	slowProbe   = 60 * time.Second // the readiness probe's initialDelaySeconds
	slowWaves   = 4                // 60 replicas, maxUnavailable 15, no room for a surge pod
	poolCPUs    = 64               // two nodes of 32 CPUs: 60 stable + 2 canary pods + 2 of another workload
	helmDefault = 5 * time.Minute  // helm upgrade's default --timeout
	oldTimeout  = 13*time.Minute + 30*time.Second
)

// slowFloor is the physical floor of the simulated promote, in production's
// time: each wave's old pods drain, then their replacements start and pass
// their first readiness probe.
const slowFloor = slowWaves * (slowGrace + slowStart + slowProbe)

func slowTiming(p *corev1.Pod) fakenode.Timing {
	t := fakenode.Timing{Start: slowStart, Ready: slowApp, Drain: fakenode.WholeGrace}
	if p.Labels["version"] == "canary" {
		t.Drain = 0
	}
	return t
}

// rolloutSeries are the samples of one tool promoting stable on the
// simulated node.
type rolloutSeries struct {
	Wall       durations // start to return
	Cluster    durations // upgrade applied to the last new pod Ready: the cluster's own time
	AfterReady durations // return minus the last new pod Ready (negative: returned before)
	ReadyAtEnd []int     // new pods Ready when the tool returned
	Failed     int       // runs that failed or rolled back
	// ReadyAtOld counts the new pods Ready when the runner's old deadline
	// (13m30s of production after the upgrade) would have struck.
	ReadyAtOld []int
}

// rolloutOutcome is one run that is expected to fail.
type rolloutOutcome struct {
	Wall       time.Duration
	ReadyAtEnd int
	Err        string
	Status     string // the release's last record afterwards
	Revision   int
	Settled    string // which digest stable ran once the cluster settled
}

type rolloutResults struct {
	Machine     machine
	HelmVersion string
	Scale       time.Duration
	Rounds      int
	KubeVersion string
	Ours        rolloutSeries
	HelmWait    rolloutSeries // --wait --timeout <our cap>
	HelmDefault rolloutOutcome
	HelmAtomic  rolloutOutcome
	Cap         time.Duration // our default overall cap, production's time
}

// rolloutBench is the scaled rollout benchmark's setup.
type rolloutBench struct {
	HelmBin, HelmVersion, ChartDir string
	Rounds                         int
	Scale                          time.Duration
	Log                            func(string, ...any)
}

// run promotes stable (60 replicas) on a node pool that behaves like
// production's, scaled down: full, every pod draining its whole grace
// period. Each round: the runner's promote, then `helm upgrade --wait` with
// the runner's own cap as --timeout; once, `helm upgrade --wait` and
// `--wait --atomic` with helm's default timeout, scaled.
func (b rolloutBench) run(ctx context.Context) (*rolloutResults, error) {
	helmBin, chartDir, rounds, scale, logf := b.HelmBin, b.ChartDir, b.Rounds, b.Scale, b.Log
	out := &rolloutResults{Scale: scale, Rounds: rounds, Machine: readMachine(), HelmVersion: b.HelmVersion}
	sc := func(d time.Duration) time.Duration { return pipeline.Scaled(d, scale) }
	logf("starting the test cluster with a realistic node pool (1 s of production = %s)", scale)
	cl, err := testcluster.Start(ctx, testcluster.Options{})
	if err != nil {
		return nil, err
	}
	defer cl.Stop()
	client := cl.Client()
	if v, err := client.Discovery().ServerVersion(); err == nil {
		out.KubeVersion = v.GitVersion
	}
	ns := "bench-rollout"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{fakenode.LabelPool: ns}}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create namespace %s: %w", ns, err)
	}
	nodesCtx, stopNodes := context.WithCancel(ctx)
	nodes, err := fakenode.Start(nodesCtx, fakenode.Options{
		Config: cl.RESTConfig(), Namespace: ns, Architectures: []string{"arm64"}, NodesPerArchitecture: 2,
		Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(strconv.Itoa(poolCPUs / 2)), corev1.ResourceMemory: resource.MustParse("128Gi")},
		Timing:      slowTiming, TimeScale: scale,
	})
	if err != nil {
		stopNodes()
		return nil, err
	}
	defer func() {
		stopNodes()
		nodes.Wait()
	}()
	clock, err := startPodClock(ctx, client, ns, time.Now)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "bench-rollout-")
	if err != nil {
		return nil, fmt.Errorf("create a temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	cli, err := newHelmCLI(helmBin, tmp, cl.Kubeconfig())
	if err != nil {
		return nil, err
	}
	local := runner{config: cl.RESTConfig(), chartDir: chartDir, ns: ns, now: time.Now, scale: scale}
	canary, _ := targets.Get(targets.Canary)
	stable, _ := targets.Get(targets.Stable)
	step := 0
	next := func() string { step++; return digestOf(fmt.Sprint("rollout step ", step)) }
	// Every wait below is bounded far above the slowest rollout here.
	settleLimit := 2*sc(pipeline.RolloutTimeout(pipeline.Rollout{Replicas: 60, MaxSurge: 1, MaxUnavailable: 15, TerminationGrace: slowGrace, ReadinessDelay: slowProbe, ReadinessPeriod: 30 * time.Second})) + 2*time.Minute
	// settleIn waits, boundedly, for stable or the canary to run n Ready
	// pods of d and nothing else.
	settleIn := func(release, d string, n int) error {
		sctx, cancel := context.WithTimeout(ctx, settleLimit)
		defer cancel()
		return settleBy(sctx, client, ns, release, d, n)
	}
	out.Cap = pipeline.RolloutTimeout(pipeline.Rollout{Replicas: 60, MaxSurge: 1, MaxUnavailable: 15, TerminationGrace: slowGrace, ReadinessDelay: slowProbe, ReadinessPeriod: 30 * time.Second})

	bundle, err := secrets.Build([]byte(`{"ENVIRONMENT": "bench"}`), []byte(`{"type": "service_account", "client_email": "bench@p.iam.gserviceaccount.com", "private_key": "bench-not-a-key"}`), secrets.DefaultNames(), ns)
	if err != nil {
		return nil, err
	}
	bn := bundle.Names()
	names := pipeline.SecretNames{AppEnv: bn.AppEnv, GCPCreds: bn.GCPCreds}
	logf("first installs: canary (2 replicas) and stable (60 replicas)")
	d := next()
	if _, err := local.deployCanary(ctx, d, &bundle); err != nil {
		return nil, err
	}
	if _, err := local.promote(ctx); err != nil {
		return nil, err
	}
	if err := settleIn(stable.Release, d, 60); err != nil {
		return nil, err
	}
	// canaryOn puts a new digest on the canary: the other workload steps
	// aside for the canary's surge pod, then takes the pool's last CPUs again.
	canaryOn := func(d string) error {
		if err := client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, metav1.ListOptions{LabelSelector: "app=other"}); err != nil {
			return fmt.Errorf("remove the other workload: %w", err)
		}
		if _, err := local.deployCanary(ctx, d, nil); err != nil {
			return err
		}
		if err := settleIn(canary.Release, d, 2); err != nil {
			return err
		}
		return fillPool(ctx, client, ns)
	}
	helmUp := func(t targets.Target, digest string, timeout time.Duration, atomic bool) (cliRun, error) {
		raw, err := yaml.Marshal(pipeline.ComputedValues(pipeline.Image{Repository: t.Image, Digest: digest}, names))
		if err != nil {
			return cliRun{}, err
		}
		var files []string
		for _, f := range t.ValuesFiles {
			files = append(files, filepath.Join(chartDir, f))
		}
		path := filepath.Join(tmp, "computed-"+strings.TrimPrefix(digest, "sha256:")[:12]+".yaml")
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			return cliRun{}, err
		}
		return cli.run(ctx, upgrade{Release: t.Release, Namespace: ns, ChartDir: chartDir, ValuesFiles: append(files, path),
			Wait: true, Timeout: timeout, Atomic: atomic, MaxHistory: pipeline.MaxHistory})
	}
	record := func(s *rolloutSeries, d string, start, applied, end time.Time) {
		last, _, atEnd := clock.lastReady(stable.Release, d, end)
		_, _, atOld := clock.lastReady(stable.Release, d, applied.Add(sc(oldTimeout)))
		s.Wall = append(s.Wall, end.Sub(start))
		s.Cluster = append(s.Cluster, last.Sub(applied))
		s.AfterReady = append(s.AfterReady, end.Sub(last))
		s.ReadyAtEnd = append(s.ReadyAtEnd, atEnd)
		s.ReadyAtOld = append(s.ReadyAtOld, atOld)
	}

	for i := range rounds {
		logf("round %d/%d: the runner's promote (%s of production, about %s here)", i+1, rounds, slowFloor, sc(slowFloor).Round(time.Second))
		d := next()
		if err := canaryOn(d); err != nil {
			return nil, err
		}
		p, err := local.promote(ctx)
		if err != nil {
			out.Ours.Failed++
			logf("the runner's promote failed: %v", err)
		}
		if err := settleIn(stable.Release, d, 60); err != nil {
			return nil, err
		}
		record(&out.Ours, d, p.Start, p.Upgraded, p.End)
		logf("ours: %s (floor %s), %d/60 new pods Ready at its return", ms(out.Ours.Wall[i]), ms(sc(slowFloor)), out.Ours.ReadyAtEnd[i])

		logf("round %d/%d: helm upgrade --wait --timeout %s (the runner's cap, scaled)", i+1, rounds, out.Cap)
		d = next()
		r, err := helmUp(stable, d, sc(out.Cap), false)
		if err != nil {
			out.HelmWait.Failed++
			logf("helm upgrade --wait failed: %v", err)
		}
		if err := settleIn(stable.Release, d, 60); err != nil {
			return nil, err
		}
		record(&out.HelmWait, d, r.Start, r.Start, r.End)
		logf("helm: %s, %d/60 new pods Ready at its return", ms(out.HelmWait.Wall[i]), out.HelmWait.ReadyAtEnd[i])
	}

	outcome := func(o *rolloutOutcome, d string, r cliRun, err error) {
		o.Wall = r.End.Sub(r.Start)
		_, _, o.ReadyAtEnd = clock.lastReady(stable.Release, d, r.End)
		if err != nil {
			o.Err = err.Error()
		}
		o.Revision, o.Status = lastRecord(ctx, client, ns, stable.Release)
	}
	// whatRuns waits for stable to settle on whatever its Deployment now
	// asks for, and names that digest among the steps.
	whatRuns := func(o *rolloutOutcome, steps map[string]string) error {
		dep, err := client.AppsV1().Deployments(ns).Get(ctx, stable.Release, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("read stable's deployment: %w", err)
		}
		img := dep.Spec.Template.Spec.Containers[0].Image
		_, d, _ := strings.Cut(img, "@")
		if err := settleIn(stable.Release, d, 60); err != nil {
			return err
		}
		o.Settled = steps[d]
		if o.Settled == "" {
			o.Settled = d
		}
		return nil
	}
	logf("helm upgrade --wait with its default timeout (%s of production, %s here)", helmDefault, sc(helmDefault))
	before := d
	prev := next()
	r, err := helmUp(stable, prev, sc(helmDefault), false)
	outcome(&out.HelmDefault, prev, r, err)
	if err := whatRuns(&out.HelmDefault, map[string]string{prev: "the new digest: the rollout went on without helm", before: "the previous digest"}); err != nil {
		return nil, err
	}
	logf("helm upgrade --wait --atomic with its default timeout")
	d = next()
	r, err = helmUp(stable, d, sc(helmDefault), true)
	outcome(&out.HelmAtomic, d, r, err)
	if err := whatRuns(&out.HelmAtomic, map[string]string{
		d:      "the new digest",
		prev:   "the digest it ran before",
		before: "the digest of the last revision helm recorded deployed, older than what ran: a healthy rollout rolled back past it",
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// fillPool gives the pool's free CPUs to pods of another workload, so that
// no surge pod of a rollout fits, as on a full production node pool.
func fillPool(ctx context.Context, client kubernetes.Interface, ns string) error {
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	used := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			used += int(p.Spec.Containers[0].Resources.Requests.Cpu().Value())
		}
	}
	for i := range poolCPUs - used {
		filler := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("other-workload-%d", i), Labels: map[string]string{"app": "other"}},
			Spec: corev1.PodSpec{
				NodeSelector: map[string]string{corev1.LabelArchStable: "arm64"},
				Containers: []corev1.Container{{Name: "other", Image: "other:v1", Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}}}},
			},
		}
		if _, err := client.CoreV1().Pods(ns).Create(ctx, filler, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create a pod of another workload: %w", err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=other"})
		if err == nil {
			bound := 0
			for _, p := range list.Items {
				if p.Spec.NodeName != "" {
					bound++
				}
			}
			if bound == poolCPUs-used {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("the other workload's pods were not bound within a minute: the pool has less room than the benchmark assumes")
}

// lastRecord reads the revision and status of a release's newest record
// from Helm's storage Secrets.
func lastRecord(ctx context.Context, client kubernetes.Interface, ns, name string) (int, string) {
	list, err := client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + name})
	if err != nil {
		return 0, "unknown: " + err.Error()
	}
	rev, status := 0, ""
	for _, s := range list.Items {
		if v, err := strconv.Atoi(s.Labels["version"]); err == nil && v > rev {
			rev, status = v, s.Labels["status"]
		}
	}
	return rev, status
}

// production writes a duration of this run in production's time.
func production(d, scale time.Duration) string {
	p := time.Duration(float64(d) * float64(time.Second) / float64(scale))
	return fmt.Sprintf("%.1f min", p.Minutes())
}

func (r *rolloutResults) rows() []row {
	floor := pipeline.Scaled(slowFloor, r.Scale)
	over := func(d time.Duration) float64 { return 100 * float64(d-floor) / float64(floor) }
	wall := func(s rolloutSeries) string {
		return fmt.Sprintf("%s (min %s) = %s of production", ms(s.Wall.median()), ms(s.Wall.min()), production(s.Wall.median(), r.Scale))
	}
	oursOver := over(r.Ours.Wall.max())
	rows := []row{
		{
			Name: "Promote wall time, 60 replicas, full pool, every pod draining 270 s",
			Ours: wall(r.Ours), CLI: wall(r.HelmWait),
			Ratio:  fmt.Sprintf("ours %+.2f %% (worst %+.2f %%), helm %+.2f %% vs the floor", over(r.Ours.Wall.median()), oursOver, over(r.HelmWait.Wall.median())),
			Target: "ours ≤ floor + 1 %", Met: yesNo(oursOver <= 1),
			Note: fmt.Sprintf("floor = %d waves × (drain %s + start %s + first readiness probe %s) = %s of production, %s here at 1 s = %s; "+
				"the cluster itself (upgrade applied to last new pod Ready) took %s (median); ours returned %s after the last new pod Ready with %d/60 Ready; "+
				"helm --wait (--timeout %s, the runner's cap) returned %s after it with %d/60 Ready: helm waits for replicas − maxUnavailable new pods only",
				slowWaves, slowGrace, slowStart, slowProbe, slowFloor, ms(floor), r.Scale, ms(r.Ours.Cluster.median()),
				ms(r.Ours.AfterReady.median()), medianInt(r.Ours.ReadyAtEnd), r.Cap, ms(r.HelmWait.AfterReady.median()), medianInt(r.HelmWait.ReadyAtEnd)),
		},
		{
			Name: "Healthy rollouts failed or rolled back", Ours: fmt.Sprintf("%d of %d", r.Ours.Failed, len(r.Ours.Wall)),
			CLI: fmt.Sprintf("%d of %d", r.HelmWait.Failed, len(r.HelmWait.Wall)), Target: "ours 0", Met: yesNo(r.Ours.Failed == 0),
		},
		{
			Name: "Old runner deadline (13m30s) on the same rollout",
			Ours: fmt.Sprintf("would have failed with %d/60 new pods Ready, then rolled back", medianInt(r.Ours.ReadyAtOld)),
			Note: "what the runner's former RolloutTimeout (4 waves × 2 min + 60 s + 270 s, terminating pods assumed to free their room at once) would have done to this healthy rollout: new pods Ready at that moment, read from the same runs",
		},
		{
			Name: "helm upgrade --wait, default --timeout 5m0s",
			CLI:  fmt.Sprintf("failed after %s (%s of production) with %d/60 new pods Ready; release revision %d %s; stable settled on %s", ms(r.HelmDefault.Wall), production(r.HelmDefault.Wall, r.Scale), r.HelmDefault.ReadyAtEnd, r.HelmDefault.Revision, r.HelmDefault.Status, r.HelmDefault.Settled),
			Note: "helm's default timeout, scaled like everything else: " + firstLine(r.HelmDefault.Err),
		},
		{
			Name: "helm upgrade --wait --atomic, default --timeout 5m0s",
			CLI:  fmt.Sprintf("failed after %s with %d/60 new pods Ready; release revision %d %s; stable settled on %s", ms(r.HelmAtomic.Wall), r.HelmAtomic.ReadyAtEnd, r.HelmAtomic.Revision, r.HelmAtomic.Status, r.HelmAtomic.Settled),
			Note: firstLine(r.HelmAtomic.Err),
		},
	}
	return rows
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

const (
	rolloutBegin = "<!-- bench:rollout:begin: generated by go run ./tools/bench -cluster=false -rollout -write; edit outside the markers -->"
	rolloutEnd   = "<!-- bench:rollout:end -->"
)

// writeRolloutDoc replaces the rollout block of path.
func writeRolloutDoc(path string, r *rolloutResults, rows []row) error {
	m, helmVersion := r.Machine, r.HelmVersion
	var b bytes.Buffer
	b.WriteString(rolloutBegin + "\n")
	fmt.Fprintf(&b, "Measured %s, %d rounds, 1 s of production = %s.\n\n", m.Date, r.Rounds, r.Scale)
	fmt.Fprintf(&b, "- Machine: %d CPUs (%s), %s memory, load average %s at the start (shared with other work)\n", m.CPUs, m.Model, m.Memory, m.LoadAvg)
	fmt.Fprintf(&b, "- helm CLI %s; test cluster kube-apiserver %s; a fake node pool of 2 × 32 CPUs (testcluster/fakenode with Timing, TimeScale, Allocatable)\n\n", helmVersion, r.KubeVersion)
	writeMarkdown(&b, rows)
	b.WriteString(rolloutEnd + "\n")
	return replaceBlock(path, rolloutBegin, rolloutEnd, b.String())
}
