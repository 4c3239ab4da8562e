// Command bench measures the runner (runner/release) against the helm CLI on the real
// test cluster (package testcluster) and prints a table:
//
//	go run ./tools/bench                      # cluster benchmarks, 5 rounds
//	go run ./tools/bench -compile             # also the cold compile of the module and the runner
//	go run ./tools/bench -compile -write docs/benchmarks.md
//	go run ./tools/bench -cluster=false -rollout -write docs/benchmarks.md
//
// It builds the helm CLI from helm.sh/helm/v3/cmd/helm at the version
// tools/helmcli pins (cached), starts a test cluster, and puts a loopback TLS
// proxy in front of its API server that both tools go through and that counts
// their requests. Each round deploys the canary (2 replicas) and promotes to
// stable (60 replicas) with the runner in this process, and does the same
// upgrades with `helm upgrade` without and with --wait. Between steps it
// waits for the rollout to settle, so no measurement overlaps another. Peak
// RSS is read from one deploy in a child process that links only the runner
// (tools/bench/deployonce) and from one `helm upgrade --wait`, both under
// tools/bench/maxrss. Every loop is bounded by -n; nothing here is a test
// assertion.
//
// -rollout promotes stable on a node pool that behaves like production's,
// scaled down (-scale: one second of production lasts that long): full, so
// no surge pod fits, every pod draining its whole 270 s grace period, pods
// Ready at their first readiness probe. It compares the runner's promote
// with the physical floor (waves × (drain + start + readiness)) and with
// `helm upgrade --wait` given the runner's cap as --timeout, and shows what
// `helm upgrade --wait` (and --atomic) with helm's default timeout do.
//
// -write replaces the generated part of the file (between the bench markers)
// and keeps the rest, where the analysis is written by hand; -rollout has a
// block of its own.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/chart"
	"github.com/ringg/ringg-ci/runner/secrets"
	"github.com/ringg/ringg-ci/testcluster"
)

func main() {
	var o options
	flag.IntVar(&o.Rounds, "n", 5, "rounds of each cluster benchmark (medians and minimums are reported)")
	flag.BoolVar(&o.Cluster, "cluster", true, "run the cluster benchmarks (start a test cluster)")
	flag.BoolVar(&o.Compile, "compile", false, "also measure the cold compile of the module's face (ci/) and the runner (cmd/ringg-ci), minutes on 2 cores")
	flag.StringVar(&o.Write, "write", "", "write the results into this Markdown file (e.g. docs/benchmarks.md)")
	flag.BoolVar(&o.Verbose, "v", false, "print the API requests of the last round's steps")
	flag.BoolVar(&o.Rollout, "rollout", false, "run the scaled rollout benchmark: promote on a full, realistic node pool (several minutes per round)")
	flag.IntVar(&o.RolloutRounds, "rollout-n", 1, "rounds of the scaled rollout benchmark")
	flag.DurationVar(&o.Scale, "scale", 200*time.Millisecond, "how long one second of production lasts in -rollout")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	Rounds  int
	Cluster bool
	Compile bool
	Write   string
	Verbose bool
	// Rollout runs the scaled rollout benchmark; alone (-cluster=false,
	// no -compile) it runs nothing else and writes only its own block.
	Rollout       bool
	RolloutRounds int
	Scale         time.Duration
}

// results are everything one run measured.
type results struct {
	Machine     machine
	HelmVersion string
	Rounds      int
	Render      durations
	Cluster     *clusterResults
	Compile     *compileResult
}

// series are the samples of one tool doing one kind of step.
type series struct {
	API        durations // work excluding the wait for pods
	Wall       durations
	AfterReady durations // return minus the last new pod Ready
	Floor      durations // last new pod Ready minus the upgrade applied
	Reqs       []int     // requests excluding the wait
	OpenAPI    []int
	WaitReqs   []int
	ReadyAtEnd []int // new pods Ready when the tool returned
	// AfterComplete is return minus the Deployment's status turning
	// complete; CtrlLag is that minus the last new pod Ready (the
	// controllers' share, which no client can save).
	AfterComplete, CtrlLag durations
	RSS                    int64
}

// complete notes when the Deployment turned complete relative to the last
// new pod Ready and the tool's return.
func (s *series) complete(done, lastReady, end time.Time) {
	if done.IsZero() {
		return
	}
	s.AfterComplete = append(s.AfterComplete, end.Sub(done))
	s.CtrlLag = append(s.CtrlLag, done.Sub(lastReady))
}

type clusterResults struct {
	// Trace holds the requests of the last round's steps, for -v.
	Trace                         map[string][]request
	KubeVersion                   string
	OursDeploy, OursPromote       series
	CLIDeploy, CLIPromote         series // helm upgrade, no --wait
	CLIDeployWait, CLIPromoteWait series // helm upgrade --wait
	Plan                          durations
	PlanReqs                      []int
	// Peak RSS of one deploy, 2 and 60 replicas.
	RSSOurs2, RSSOurs60, RSSCLI2, RSSCLI60 peakRSS
}

func run(ctx context.Context, o options, stdout io.Writer) error {
	if o.Rounds < 1 || o.Rounds > 50 {
		return fmt.Errorf("-n %d: use 1 to 50 rounds", o.Rounds)
	}
	root, err := findRoot()
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	}
	if o.Rollout {
		if err := runRollout(ctx, o, root, stdout); err != nil {
			return err
		}
		if !o.Cluster && !o.Compile {
			return nil
		}
	}
	res := &results{Machine: readMachine(), Rounds: o.Rounds}
	chartDir := filepath.Join(root, "deploy", "chart")
	logf("render all targets in process, %d rounds", o.Rounds)
	if res.Render, err = benchRender(chartDir, o.Rounds); err != nil {
		return err
	}
	if o.Cluster {
		bin, version, err := buildHelm(ctx, root, logf)
		if err != nil {
			return err
		}
		res.HelmVersion = version
		if res.Cluster, err = benchCluster(ctx, root, bin, chartDir, o.Rounds, o.Verbose, logf); err != nil {
			return err
		}
	}
	if o.Compile {
		c, err := coldCompile(ctx, root, logf)
		if err != nil {
			return err
		}
		res.Compile = &c
	}
	if res.Cluster != nil && o.Verbose {
		printTrace(os.Stderr, res.Cluster.Trace)
	}
	rows := res.rows()
	if err := printRows(stdout, rows); err != nil {
		return err
	}
	if o.Write != "" {
		return writeDoc(o.Write, res, rows)
	}
	return nil
}

// printRows prints a table of rows, then each row's note.
func printRows(stdout io.Writer, rows []row) error {
	if err := writeTable(stdout, rows); err != nil {
		return err
	}
	for _, r := range rows {
		if r.Note != "" {
			fmt.Fprintf(stdout, "  %s: %s\n", r.Name, r.Note)
		}
	}
	return nil
}

// findRoot walks up from the working directory to the clone's root.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "tools", "helmcli", "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find the repository root: no tools/helmcli/go.mod above the working directory; run from the ringg-ci clone")
		}
		dir = parent
	}
}

// digestOf makes a distinct valid digest per step.
func digestOf(seed string) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(seed)))
}

// benchRender renders every target's release from the chart directory
// (load, merge values, render), as a plan does before touching the cluster.
func benchRender(chartDir string, rounds int) (durations, error) {
	var out durations
	names := pipeline.SecretNames{AppEnv: "dv-pipecat-app-secrets-0123456789", GCPCreds: "dv-pipecat-gcp-creds-0123456789"}
	for i := range rounds {
		start := time.Now()
		for _, t := range targets.All() {
			ch, err := chart.Load(chartDir)
			if err != nil {
				return nil, err
			}
			img := pipeline.Image{Repository: t.Image, Digest: digestOf(fmt.Sprint("render", i))}
			vals, err := chart.Values(chartDir, t.ValuesFiles, pipeline.ComputedValues(img, names))
			if err != nil {
				return nil, err
			}
			if _, err := chart.Render(ch, vals, chart.RenderOptions{Release: t.Release, Namespace: t.Namespace}); err != nil {
				return nil, err
			}
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// benchCluster runs the cluster benchmarks on a fresh test cluster.
func benchCluster(ctx context.Context, root, helmBin, chartDir string, rounds int, verbose bool, logf func(string, ...any)) (*clusterResults, error) {
	logf("starting the test cluster")
	cl, err := testcluster.Start(ctx, testcluster.Options{})
	if err != nil {
		return nil, err
	}
	defer cl.Stop()
	client := cl.Client()
	out := &clusterResults{Trace: map[string][]request{}}
	if v, err := client.Discovery().ServerVersion(); err == nil {
		out.KubeVersion = v.GitVersion
	}
	px, err := startProxy(cl.RESTConfig(), time.Now)
	if err != nil {
		return nil, err
	}
	defer px.close()
	tmp, err := os.MkdirTemp("", "bench-")
	if err != nil {
		return nil, fmt.Errorf("create a temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	kc, err := px.kubeconfig()
	if err != nil {
		return nil, fmt.Errorf("write the proxy's kubeconfig: %w", err)
	}
	cli, err := newHelmCLI(helmBin, tmp, kc)
	if err != nil {
		return nil, err
	}
	ns, stagingNS := "bench", "bench-staging"
	for _, n := range []string{ns, stagingNS} {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create namespace %s: %w", n, err)
		}
	}
	clock, err := startPodClock(ctx, client, ns, time.Now)
	if err != nil {
		return nil, err
	}
	local := runner{config: px.restConfig(), chartDir: chartDir, ns: ns, now: time.Now}
	canary, _ := targets.Get(targets.Canary)
	stable, _ := targets.Get(targets.Stable)
	step := 0
	next := func() string { step++; return digestOf(fmt.Sprint("bench step ", step)) }

	// Warm up: first installs (with a Secret bundle), one promotion, one CLI
	// run; none of it is measured.
	logf("first installs: canary (2 replicas) and stable (60 replicas)")
	bundle, err := secrets.Build([]byte(`{"ENVIRONMENT": "bench"}`), []byte(`{"type": "service_account", "client_email": "bench@p.iam.gserviceaccount.com", "private_key": "bench-not-a-key"}`), secrets.DefaultNames(), ns)
	if err != nil {
		return nil, err
	}
	bn := bundle.Names()
	names := pipeline.SecretNames{AppEnv: bn.AppEnv, GCPCreds: bn.GCPCreds}
	d := next()
	if _, err := local.deployCanary(ctx, d, &bundle); err != nil {
		return nil, err
	}
	if err := settle(ctx, client, ns, canary.Release, d, 2); err != nil {
		return nil, err
	}
	if _, err := local.promote(ctx); err != nil {
		return nil, err
	}
	if err := settle(ctx, client, ns, stable.Release, d, 60); err != nil {
		return nil, err
	}
	files := func(t targets.Target, digest string) ([]string, error) {
		var out []string
		for _, f := range t.ValuesFiles {
			out = append(out, filepath.Join(chartDir, f))
		}
		raw, err := yaml.Marshal(pipeline.ComputedValues(pipeline.Image{Repository: t.Image, Digest: digest}, names))
		if err != nil {
			return nil, err
		}
		path := filepath.Join(tmp, "computed-"+strings.TrimPrefix(digest, "sha256:")[:12]+".yaml")
		return append(out, path), os.WriteFile(path, raw, 0o644)
	}
	helmUp := func(t targets.Target, digest string, wait bool) (cliRun, error) {
		f, err := files(t, digest)
		if err != nil {
			return cliRun{}, err
		}
		return cli.run(ctx, upgrade{Release: t.Release, Namespace: ns, ChartDir: chartDir, ValuesFiles: f, Wait: wait, MaxHistory: pipeline.MaxHistory})
	}
	d = next()
	if _, err := helmUp(canary, d, false); err != nil {
		return nil, err
	}
	if err := settle(ctx, client, ns, canary.Release, d, 2); err != nil {
		return nil, err
	}

	logf("plan all targets in process, %d rounds", rounds)
	for range rounds {
		start := time.Now()
		if err := local.planAll(ctx, stagingNS, next()); err != nil {
			return nil, err
		}
		end := time.Now()
		out.Plan = append(out.Plan, end.Sub(start))
		out.PlanReqs = append(out.PlanReqs, px.between(start, end).Total)
	}

	ours := func(s *series, p phases, release, digest string, replicas int) error {
		if err := settle(ctx, client, ns, release, digest, replicas); err != nil {
			return err
		}
		c := px.outside(p.Start, p.End, p.Upgraded, p.WatchEnd)
		last, _, atEnd := clock.lastReady(release, digest, p.End)
		s.API = append(s.API, p.api())
		s.Wall = append(s.Wall, p.End.Sub(p.Start))
		s.Reqs, s.OpenAPI = append(s.Reqs, c.Total), append(s.OpenAPI, c.OpenAPI)
		s.WaitReqs = append(s.WaitReqs, px.between(p.Upgraded, p.WatchEnd).Total)
		s.AfterReady = append(s.AfterReady, p.End.Sub(last))
		s.Floor = append(s.Floor, last.Sub(p.Upgraded))
		s.ReadyAtEnd = append(s.ReadyAtEnd, atEnd)
		s.complete(clock.completeAfter(release, p.Start), last, p.End)
		if verbose {
			out.Trace["ours "+release] = px.requests(p.Start, p.End)
		}
		return nil
	}
	helm := func(s *series, t targets.Target, digest string, wait bool, replicas int) error {
		r, err := helmUp(t, digest, wait)
		if err != nil {
			return err
		}
		if err := settle(ctx, client, ns, t.Release, digest, replicas); err != nil {
			return err
		}
		c := px.between(r.Start, r.End)
		s.Wall = append(s.Wall, r.End.Sub(r.Start))
		s.Reqs, s.OpenAPI = append(s.Reqs, c.Total), append(s.OpenAPI, c.OpenAPI)
		if wait {
			last, _, atEnd := clock.lastReady(t.Release, digest, r.End)
			s.AfterReady = append(s.AfterReady, r.End.Sub(last))
			s.ReadyAtEnd = append(s.ReadyAtEnd, atEnd)
			s.complete(clock.completeAfter(t.Release, r.Start), last, r.End)
		} else {
			s.API = append(s.API, r.End.Sub(r.Start))
			if verbose {
				out.Trace["helm "+t.Release] = px.requests(r.Start, r.End)
			}
		}
		return nil
	}
	for i := range rounds {
		logf("round %d/%d", i+1, rounds)
		d := next()
		p, err := local.deployCanary(ctx, d, nil)
		if err != nil {
			return nil, err
		}
		if err := ours(&out.OursDeploy, p, canary.Release, d, 2); err != nil {
			return nil, err
		}
		if err := helm(&out.CLIDeploy, canary, next(), false, 2); err != nil {
			return nil, err
		}
		promoted := next()
		if err := helm(&out.CLIDeployWait, canary, promoted, true, 2); err != nil {
			return nil, err
		}
		if p, err = local.promote(ctx); err != nil {
			return nil, err
		}
		if err := ours(&out.OursPromote, p, stable.Release, promoted, 60); err != nil {
			return nil, err
		}
		if err := helm(&out.CLIPromote, stable, next(), false, 60); err != nil {
			return nil, err
		}
		if err := helm(&out.CLIPromoteWait, stable, next(), true, 60); err != nil {
			return nil, err
		}
	}

	logf("peak RSS of one deploy in a child process")
	kcPath := filepath.Join(tmp, "kubeconfig")
	tools, err := buildRSSTools(ctx, root, filepath.Join(tmp, "bin"))
	if err != nil {
		return nil, err
	}
	for _, r := range []struct {
		t        targets.Target
		replicas int
		ours     *peakRSS
		cli      *peakRSS
	}{
		{canary, 2, &out.RSSOurs2, &out.RSSCLI2},
		{stable, 60, &out.RSSOurs60, &out.RSSCLI60},
	} {
		d := next()
		if *r.ours, err = tools.deploy(ctx, kcPath, ns, chartDir, string(r.t.Name), d); err != nil {
			return nil, err
		}
		if err := settle(ctx, client, ns, r.t.Release, d, r.replicas); err != nil {
			return nil, err
		}
		d = next()
		f, err := files(r.t, d)
		if err != nil {
			return nil, err
		}
		if *r.cli, err = cli.rss(ctx, tools, upgrade{Release: r.t.Release, Namespace: ns, ChartDir: chartDir, ValuesFiles: f, Wait: true, MaxHistory: pipeline.MaxHistory}); err != nil {
			return nil, err
		}
		if err := settle(ctx, client, ns, r.t.Release, d, r.replicas); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// runRollout runs the scaled rollout benchmark, prints its table and, with
// -write, replaces its block of the file.
func runRollout(ctx context.Context, o options, root string, stdout io.Writer) error {
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	}
	if o.RolloutRounds < 1 || o.RolloutRounds > 10 {
		return fmt.Errorf("-rollout-n %d: use 1 to 10 rounds", o.RolloutRounds)
	}
	if o.Scale < 10*time.Millisecond || o.Scale > time.Second {
		return fmt.Errorf("-scale %s: use 10ms to 1s", o.Scale)
	}
	bin, version, err := buildHelm(ctx, root, logf)
	if err != nil {
		return err
	}
	b := rolloutBench{HelmBin: bin, HelmVersion: version, ChartDir: filepath.Join(root, "deploy", "chart"), Rounds: o.RolloutRounds, Scale: o.Scale, Log: logf}
	r, err := b.run(ctx)
	if err != nil {
		return err
	}
	rows := r.rows()
	if err := printRows(stdout, rows); err != nil {
		return err
	}
	if o.Write != "" {
		return writeRolloutDoc(o.Write, r, rows)
	}
	return nil
}
