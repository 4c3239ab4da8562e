package integration

// The reliability suite of issue 9: a corpus of bad inputs run through the
// entry points the Dagger module uses, and fault scenarios, each a test.
//
// Fault scenarios and where each is tested:
//
//	never-ready image, rolled back             TestReleaseDeployNeverReadyRollsBack (release_test.go)
//	crash-looping image, fails fast            TestReleaseDeployCrashLoopFailsFast (release_test.go)
//	image pull error on a first install        TestReleaseDeployPullErrorOnFirstInstallUninstalls (release_test.go)
//	API server restart mid-rollout             TestReleaseDeploySurvivesAPIServerRestart,
//	                                           TestReleaseDeployCompletesAcrossAPIServerRestart (release_test.go)
//	deploy killed (SIGKILL) mid-upgrade, rerun TestReleaseDeployKilledThenRerun (release_kill_test.go)
//	deploy cancelled mid-rollout               TestReleaseDeployCancelledMidRolloutRollsBack (release_test.go)
//	interrupted run left a pending record      TestReleaseDeployRecoversInterruptedRun (release_test.go)
//	two concurrent deploys                     TestReleaseTwoDeploysAtOnce, TestReleaseDeployRefusedWhileLocked (release_test.go)
//	token expiring mid-wait                    TestReliabilityTokenExpiresMidRollout (tokenproxy_test.go)
//	promote: canary absent, unavailable,       TestReleasePromoteRefuses (release_test.go)
//	  mixed digests, unexpected digest
//	promote: canary restarts during the soak   TestReleasePromoteRefusesRestartDuringSoak (release_test.go)
//	bad inputs leave the cluster unchanged     TestReliabilityBadInputs (this file), TestReleaseBadInputLeavesClusterUnchanged
//	no secret value in any output              TestLeakCheck (leak_test.go)
//
// The corpus lives in testdata/bad-inputs/<kind>/<outcome>.txt, one case a
// file. A case is a header, then named sections:
//
//	# comment
//	stage: build | plan | run
//	want: a substring the error must contain (one per line, all required)
//	-- input --
//	the input, byte for byte (one final newline is dropped)
//	-- creds --
//	optional second document (app-secrets cases: the GCP credentials JSON)
//
// stage says which call must fail, every earlier one succeeding: build is
// secrets.Build (app-secrets, gcp-creds) or gcpauth.NewTokenSource
// (google-credentials), plan is pipeline.NewDeploy/NewPromote/NewRollback/
// NewStatus, run is release.Deploy/Promote/Rollback.Run against the
// test cluster. For deploy, promote, rollback and status the input is a JSON
// object of the verb's arguments (see deployArgs and the others below).
// Placeholders, in inputs and wants: ${SECRET} (the leak marker), ${BIG}
// (more than 1 MiB of it), ${DIGEST} (what the canary runs), ${OTHER_DIGEST},
// ${REPO} (the production repository) and ${NAMESPACE}.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/gcpauth"
	"github.com/ringg/ringg-ci/runner/release"
	"github.com/ringg/ringg-ci/runner/secrets"
)

const badInputsDir = "testdata/bad-inputs"

// badInput is one case of the corpus.
type badInput struct {
	name     string // kind/outcome
	kind     string // directory: which entry point
	stage    string
	wants    []string
	sections map[string][]byte
}

// loadBadInputs reads the corpus, placeholders expanded by expand.
func loadBadInputs(t *testing.T, expand func(string) string) []badInput {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(badInputsDir, "*", "*.txt"))
	assert.NilError(t, err)
	var out []badInput
	for _, f := range files {
		raw, err := os.ReadFile(f)
		assert.NilError(t, err)
		c := badInput{kind: filepath.Base(filepath.Dir(f)), sections: map[string][]byte{}}
		c.name = c.kind + "/" + strings.TrimSuffix(filepath.Base(f), ".txt")
		header, body, ok := bytes.Cut(raw, []byte("\n-- input --\n"))
		assert.Assert(t, ok, "%s: no -- input -- section", f)
		for line := range strings.SplitSeq(string(header), "\n") {
			switch k, v, _ := strings.Cut(line, ": "); {
			case line == "" || strings.HasPrefix(line, "#"):
			case k == "stage":
				c.stage = v
			case k == "want":
				c.wants = append(c.wants, expand(v))
			default:
				t.Fatalf("%s: unknown header line %q", f, line)
			}
		}
		assert.Assert(t, slices.Contains([]string{"build", "plan", "run"}, c.stage), "%s: stage %q", f, c.stage)
		assert.Assert(t, len(c.wants) > 0, "%s: no want line", f)
		name := "input"
		for {
			part, rest, more := bytes.Cut(body, []byte("\n-- creds --\n"))
			part = bytes.TrimSuffix(part, []byte("\n"))
			c.sections[name] = []byte(expand(string(part)))
			if !more {
				break
			}
			name, body = "creds", rest
		}
		out = append(out, c)
	}
	return out
}

// deployArgs are the arguments of a deploy case, as the Dagger function
// takes them.
type deployArgs struct {
	Branch     string                `json:"branch"`
	Image      string                `json:"image"`
	Timeout    string                `json:"timeout"`
	Holder     string                `json:"holder"`
	NewSecrets *pipeline.SecretNames `json:"newSecrets"`
	// WithSecrets deploys a valid bundle of new Secrets (holding the marker),
	// which must not be applied when anything else is wrong.
	WithSecrets bool `json:"withSecrets"`
	// ChartFiles replace files in a copy of the chart.
	ChartFiles map[string]string `json:"chartFiles"`
}

type promoteArgs struct {
	From           targets.Name      `json:"from"`
	ExpectedDigest string            `json:"expectedDigest"`
	Soak           string            `json:"soak"`
	Timeout        string            `json:"timeout"`
	ChartFiles     map[string]string `json:"chartFiles"`
}

type rollbackArgs struct {
	Target   targets.Name `json:"target"`
	Revision int          `json:"revision"`
	Timeout  string       `json:"timeout"`
	// WithChart passes the chart directory (needed to roll the canary back to
	// stable's image).
	WithChart bool `json:"withChart"`
}

type statusArgs struct {
	Targets []targets.Name `json:"targets"`
}

// stageErr is the error of the first failing step of a case and the step.
type stageErr struct {
	stage string
	err   error
}

func failedAt(stage string, err error) stageErr { return stageErr{stage, err} }

func duration(t *testing.T, s string) time.Duration {
	t.Helper()
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	assert.NilError(t, err)
	return d
}

// chartWith copies the chart and replaces files in the copy.
func chartWith(t *testing.T, files map[string]string) string {
	t.Helper()
	if len(files) == 0 {
		return chartDir
	}
	dir := t.TempDir()
	assert.NilError(t, os.CopyFS(dir, os.DirFS(chartDir)))
	for name, content := range files {
		assert.NilError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	return dir
}

// runBadInput feeds a case to its entry points in the order the Dagger
// module calls them and returns the first failure.
func (e *relEnv) runBadInput(t *testing.T, c badInput) stageErr {
	ctx := context.Background()
	in := c.sections["input"]
	decode := func(v any) {
		t.Helper()
		dec := json.NewDecoder(bytes.NewReader(in))
		dec.DisallowUnknownFields()
		assert.NilError(t, dec.Decode(v), "%s: input arguments", c.name)
	}
	switch c.kind {
	case "app-secrets":
		creds, ok := c.sections["creds"]
		if !ok {
			creds = leakCredsJSON()
		}
		_, err := secrets.Build(in, creds, secrets.DefaultNames(), e.ns)
		return failedAt("build", err)
	case "gcp-creds":
		_, err := secrets.Build(leakAppEnvJSON("corpus"), in, secrets.DefaultNames(), e.ns)
		return failedAt("build", err)
	case "google-credentials":
		_, err := gcpauth.NewTokenSource(ctx, gcpauth.Config{CredentialsJSON: in})
		return failedAt("build", err)
	case "deploy":
		var a deployArgs
		decode(&a)
		var bundle *secrets.Bundle
		if a.WithSecrets {
			b, err := secrets.Build(leakAppEnvJSON("corpus-deploy"), leakCredsJSON(), secrets.DefaultNames(), e.ns)
			if err != nil {
				return failedAt("build", err)
			}
			n := b.Names()
			bundle, a.NewSecrets = &b, &pipeline.SecretNames{AppEnv: n.AppEnv, GCPCreds: n.GCPCreds}
		}
		plan, err := pipeline.NewDeploy(pipeline.DeployInput{Branch: a.Branch, Overrides: e.overrides(), ChartDir: chartWith(t, a.ChartFiles),
			Image: a.Image, NewSecrets: a.NewSecrets, Timeout: duration(t, a.Timeout), Holder: a.Holder})
		if err != nil {
			return failedAt("plan", err)
		}
		_, err = (&release.Deploy{Clients: e.clients, Plan: plan, Secrets: bundle}).Run(ctx)
		return failedAt("run", err)
	case "promote":
		var a promoteArgs
		decode(&a)
		plan, err := pipeline.NewPromote(pipeline.PromoteInput{From: a.From, Overrides: e.overrides(), ChartDir: chartWith(t, a.ChartFiles),
			ExpectedDigest: a.ExpectedDigest, Soak: duration(t, a.Soak), Timeout: duration(t, a.Timeout)})
		if err != nil {
			return failedAt("plan", err)
		}
		_, err = (&release.Promote{Clients: e.clients, Plan: plan, SoakInterval: 100 * time.Millisecond}).Run(ctx)
		return failedAt("run", err)
	case "rollback":
		var a rollbackArgs
		decode(&a)
		in := pipeline.RollbackInput{Target: a.Target, Overrides: e.overrides(), Revision: a.Revision, Timeout: duration(t, a.Timeout)}
		if a.WithChart {
			in.ChartDir = chartDir
		}
		plan, err := pipeline.NewRollback(in)
		if err != nil {
			return failedAt("plan", err)
		}
		_, err = (&release.Rollback{Clients: e.clients, Plan: plan}).Run(ctx)
		return failedAt("run", err)
	case "status":
		var a statusArgs
		decode(&a)
		plan, err := pipeline.NewStatus(a.Targets, e.overrides())
		if err != nil {
			return failedAt("plan", err)
		}
		_, err = (&release.Status{Clients: e.clients, Plan: plan}).Run(ctx)
		return failedAt("run", err)
	}
	t.Fatalf("%s: unknown kind %s", c.name, c.kind)
	return stageErr{}
}

// TestReliabilityBadInputs runs every case of the corpus against a
// namespace where the canary is deployed: each must fail at its stage with
// its error, name no secret value, and change nothing in the namespace.
func TestReliabilityBadInputs(t *testing.T) {
	e := newRelEnv(t)
	b, err := secrets.Build(leakAppEnvJSON("corpus-installed"), leakCredsJSON(), secrets.DefaultNames(), e.ns)
	assert.NilError(t, err)
	n := b.Names()
	live := digest("a")
	_, err = e.deploy(e.canaryPlan(live, &pipeline.SecretNames{AppEnv: n.AppEnv, GCPCreds: n.GCPCreds}), &b, release.Options{})
	assert.NilError(t, err)

	expand := strings.NewReplacer(
		"${SECRET}", leakMarker,
		"${BIG}", strings.Repeat(leakMarker, corev1.MaxSecretSize/len(leakMarker)+1),
		"${DIGEST}", live,
		"${OTHER_DIGEST}", digest("z"),
		"${REPO}", prodRepo,
		"${NAMESPACE}", e.ns,
	).Replace
	cases := loadBadInputs(t, expand)
	assert.Assert(t, len(cases) >= 30, "the corpus has %d cases", len(cases))

	e.settle()
	objects := newLister(t)
	before := objects.snapshot(t, e.ns)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			logged := len(e.logs.String())
			got := e.runBadInput(t, c)
			if got.err == nil {
				t.Fatalf("every step succeeded; want a failure at %s", c.stage)
			}
			msg := got.err.Error()
			if strings.Contains(msg, leakMarker) {
				t.Fatalf("the error (%d bytes) holds a secret value; errors must name keys and fields only", len(msg))
			}
			assert.Equal(t, got.stage, c.stage, "failed at %s with: %s", got.stage, msg)
			for _, w := range c.wants {
				assert.Assert(t, strings.Contains(msg, w), "error lacks %q:\n%s", w, msg)
			}
			assert.DeepEqual(t, objects.snapshot(t, e.ns), before)
			// A bad input is refused before anything waits: no lock taken, no
			// soak, no rollout watched, as the runner's log tells.
			log := e.logs.String()[logged:]
			for _, wait := range []string{"acquired release lock", "canary passes the gate, soaking", "upgraded, watching rollout"} {
				assert.Assert(t, !strings.Contains(log, wait), "refused only after %q; a bad input must be refused before any wait:\n%s", wait, log)
			}
		})
	}
}

// lister lists every object of a namespace through the dynamic client.
type lister struct {
	dyn   dynamic.Interface
	kinds []schema.GroupVersionResource
}

// newLister finds the namespaced resources the API server can list, Events
// left out: they are records of what happened, not state.
func newLister(t *testing.T) *lister {
	t.Helper()
	cfg := cluster.RESTConfig()
	cfg.QPS, cfg.Burst = 200, 400
	dyn, err := dynamic.NewForConfig(cfg)
	assert.NilError(t, err)
	lists, err := cluster.Client().Discovery().ServerPreferredNamespacedResources()
	assert.NilError(t, err)
	l := &lister{dyn: dyn}
	for _, rl := range lists {
		gv, err := schema.ParseGroupVersion(rl.GroupVersion)
		assert.NilError(t, err)
		for _, r := range rl.APIResources {
			if r.Name == "events" || !slices.Contains(r.Verbs, "list") {
				continue
			}
			l.kinds = append(l.kinds, gv.WithResource(r.Name))
		}
	}
	return l
}

// snapshot maps every object of every listable namespaced kind in ns to its
// resourceVersion.
func (l *lister) snapshot(t *testing.T, ns string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, gvr := range l.kinds {
		list, err := l.dyn.Resource(gvr).Namespace(ns).List(context.Background(), metav1.ListOptions{})
		assert.NilError(t, err, "list %s", gvr)
		for _, o := range list.Items {
			out[gvr.Resource+"."+gvr.Group+"/"+o.GetName()] = o.GetResourceVersion()
		}
	}
	assert.Assert(t, len(out) > 0)
	return out
}
