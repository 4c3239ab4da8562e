package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
	hrelease "helm.sh/helm/v3/pkg/release"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/cli"
	"github.com/ringg/ringg-ci/runner/release"
	"github.com/ringg/ringg-ci/runner/secrets"
	"github.com/ringg/ringg-ci/testcluster"
)

// oldChartDir is a reconstruction of the chart the old pipeline deployed
// (k8s/dv-pipecat), from docs/production notes: selectors by app name and
// instance, a Service selecting by name only with port 80 to 8765 by number,
// an unnamed container port, envFrom dv-pipecat-app-secrets, creds.json by
// subPath from dv-pipecat-gcp-creds, a version label, an Ingress with the GKE
// annotations, terminationGracePeriodSeconds 270, and the workflow's --set
// secrets rendered into env.
const oldChartDir = "testdata/old-chart"

// oldPipelineNamespace is a namespace like production's default one, which
// checks no Pod Security Standard: the old chart's pods run as root (its
// Deployment has no securityContext), and a takeover that fails puts that
// pod template back.
func oldPipelineNamespace(t *testing.T) string {
	t.Helper()
	return cluster.NamespaceEnforcing(t, testcluster.Privileged)
}

// The old pipeline's image tags (commit SHAs) and the digests the registry
// resolved them to, which the container runtime reports in each pod's
// status.containerStatuses[].imageID.
var oldTags = map[string]string{
	"3f1c2a9d0b7e6f5a4c3b2a1908f7e6d5c4b3a291": digest("1"),
	"7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b": digest("2"),
	"c0ffee00d15ea5e0ba5eba11deadbeefcafef00d": digest("3"),
}

const (
	oldTag1 = "3f1c2a9d0b7e6f5a4c3b2a1908f7e6d5c4b3a291"
	oldTag2 = "7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b"
	oldTag3 = "c0ffee00d15ea5e0ba5eba11deadbeefcafef00d"
)

// The live Ingress's annotations on GKE, set by the old values-prod.yaml.
var oldIngressAnnotations = map[string]string{
	"kubernetes.io/ingress.class":                 "gce",
	"kubernetes.io/ingress.global-static-ip-name": "use1-api-ringg-ai",
}

// oldPipeline plays the GitHub workflows ringg-ci replaces: helm upgrade
// --install with -f values files and --set, and Secrets from kubectl.
type oldPipeline struct {
	e   *relEnv
	cfg *action.Configuration
}

// secretSets are the two --set values the old deploy workflow passed: the
// secrets end up in the release records and the Deployment's env.
func secretSets() []string {
	return []string{"secretEnv.OPENAI_API_KEY=" + leakMarker + "-openai", "secretEnv.REDIS_URL=redis://:" + leakMarker + "@10.0.0.3:6379/0"}
}

// upgrade runs `helm upgrade --install NAME k8s/dv-pipecat -f FILE... --set
// image.tag=TAG --set ...` and waits for the pods.
func (o *oldPipeline) upgrade(name, tag string, files []string, sets ...string) {
	o.e.t.Helper()
	o.upgradeFrom(oldChartDir, name, tag, files, sets...)
}

// upgradeFrom is upgrade with the old chart in dir.
func (o *oldPipeline) upgradeFrom(dir, name, tag string, files []string, sets ...string) {
	t := o.e.t
	t.Helper()
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = filepath.Join(dir, f)
	}
	opts := values.Options{ValueFiles: paths, Values: append([]string{"image.tag=" + tag}, sets...)}
	vals, err := opts.MergeValues(getter.Providers{})
	assert.NilError(t, err)
	ch, err := loader.Load(dir)
	assert.NilError(t, err)
	if _, err := o.cfg.Releases.Last(name); err != nil {
		in := action.NewInstall(o.cfg)
		in.ReleaseName, in.Namespace, in.Wait, in.Timeout = name, o.e.ns, true, 2*time.Minute
		_, err = in.RunWithContext(context.Background(), ch, vals)
		assert.NilError(t, err, "helm install %s", name)
		return
	}
	up := action.NewUpgrade(o.cfg)
	up.Namespace, up.Wait, up.Timeout = o.e.ns, true, 2*time.Minute
	_, err = up.RunWithContext(context.Background(), name, ch, vals)
	assert.NilError(t, err, "helm upgrade %s", name)
}

// kubectlSecrets creates the fixed-name Secrets as `kubectl create secret
// generic ... --dry-run=client -o yaml | kubectl apply -f -` does.
func (o *oldPipeline) kubectlSecrets() {
	t := o.e.t
	t.Helper()
	for name, data := range map[string]map[string][]byte{
		secrets.DefaultAppEnv: {
			"OPENAI_API_KEY": []byte(leakMarker + "-openai"), "REDIS_URL": []byte("redis://:" + leakMarker + "@10.0.0.3:6379/0"),
			"ENVIRONMENT": []byte("production"), "PORT": []byte("8765"),
		},
		secrets.DefaultGCPCreds: {"creds.json": leakCredsJSON()},
	} {
		s := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.e.ns}, Data: data}
		applied, err := json.Marshal(s)
		assert.NilError(t, err)
		s.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: string(applied)}
		_, err = o.e.kube.CoreV1().Secrets(o.e.ns).Create(context.Background(), s, metav1.CreateOptions{FieldManager: "kubectl-client-side-apply"})
		assert.NilError(t, err)
	}
}

// containerRuntime reports, for pods of the old pipeline's tag-only
// images, the digest the registry resolved the tag to in the container
// status's imageID, as containerd does (the fake node copies the image
// reference). Ready pods only: the fake node has written its last status.
func containerRuntime(t *testing.T, c kubernetes.Interface, ns string) (resolved func() bool) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	resolve := func() bool {
		pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		done := true
		for i := range pods.Items {
			p := &pods.Items[i]
			changed := false
			for j, cs := range p.Status.ContainerStatuses {
				tag := cs.Image[strings.LastIndex(cs.Image, ":")+1:]
				d, ok := oldTags[tag]
				if !ok || strings.Contains(cs.ImageID, "@sha256:") {
					continue
				}
				if !tcPodReady(*p) {
					done = false
					continue
				}
				p.Status.ContainerStatuses[j].ImageID = prodRepo + "@" + d
				changed = true
			}
			if changed {
				if _, err := c.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
					done = false
				}
			}
		}
		return done
	}
	go func() {
		for ctx.Err() == nil {
			resolve()
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return resolve
}

// endpointsWatch follows the ready addresses of a Service's Endpoints
// through a watch, so that no state between two looks is missed.
type endpointsWatch struct {
	mu      sync.Mutex
	last    int
	min     int
	armed   bool
	history []int
}

func watchEndpoints(t *testing.T, ns, name string) *endpointsWatch {
	t.Helper()
	cfg := cluster.RESTConfig()
	cfg.WarningHandler = rest.NoWarnings{} // v1 Endpoints is deprecated; it is also atomic
	c, err := kubernetes.NewForConfig(cfg)
	assert.NilError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	w := &endpointsWatch{min: -1}
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			list, err := c.CoreV1().Endpoints(ns).List(ctx, metav1.ListOptions{FieldSelector: sel})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for i := range list.Items {
				w.record(&list.Items[i])
			}
			wi, err := c.CoreV1().Endpoints(ns).Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: list.ResourceVersion})
			if err != nil {
				continue
			}
			for ev := range wi.ResultChan() {
				if ev.Type == watch.Error {
					break
				}
				if ep, ok := ev.Object.(*corev1.Endpoints); ok && ev.Type != watch.Deleted {
					w.record(ep)
				}
			}
			wi.Stop()
		}
	}()
	return w
}

func (w *endpointsWatch) record(ep *corev1.Endpoints) {
	n := 0
	for _, s := range ep.Subsets {
		n += len(s.Addresses)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last = n
	if w.armed {
		w.history = append(w.history, n)
		if w.min < 0 || n < w.min {
			w.min = n
		}
	}
}

// arm starts counting the minimum once the Service has want ready
// addresses.
func (w *endpointsWatch) arm(t *testing.T, want int) {
	t.Helper()
	waitFor(t, 60*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.last == want {
			w.armed, w.min = true, want
		}
		return w.armed
	})
}

func (w *endpointsWatch) state() (last, min int, changes int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last, w.min, len(w.history)
}

// keptAnnotationsChart is the chart with the live Ingress's annotations
// copied into values-prod.yaml, as the takeover refusal asks.
func keptAnnotationsChart(t *testing.T) string {
	t.Helper()
	return keptAnnotationsChartFrom(t, chartDir)
}

// keptAnnotationsChartFrom is keptAnnotationsChart from a copy of the chart
// in base.
func keptAnnotationsChartFrom(t *testing.T, base string) string {
	t.Helper()
	dir := t.TempDir()
	assert.NilError(t, os.CopyFS(dir, os.DirFS(base)))
	path := filepath.Join(dir, "values-prod.yaml")
	raw, err := os.ReadFile(path)
	assert.NilError(t, err)
	kept := "  annotations:\n"
	for _, k := range slices.Sorted(maps.Keys(oldIngressAnnotations)) {
		kept += fmt.Sprintf("    %s: %q\n", k, oldIngressAnnotations[k])
	}
	out := strings.Replace(string(raw), "  annotations: {}\n  hosts:", kept+"  hosts:", 1)
	assert.Assert(t, out != string(raw), "values-prod.yaml has ingress.annotations: {} before its hosts")
	assert.NilError(t, os.WriteFile(path, []byte(out), 0o644))
	return dir
}

// oldChartWithReplicas copies the old pipeline's chart with values-prod.yaml
// asking for n replicas.
func oldChartWithReplicas(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	assert.NilError(t, os.CopyFS(dir, os.DirFS(oldChartDir)))
	path := filepath.Join(dir, "values-prod.yaml")
	raw, err := os.ReadFile(path)
	assert.NilError(t, err)
	out := strings.Replace(string(raw), "replicaCount: 60", fmt.Sprintf("replicaCount: %d", n), 1)
	assert.Assert(t, out != string(raw))
	assert.NilError(t, os.WriteFile(path, []byte(out), 0o644))
	return dir
}

// TestTakeoverFromTheOldPipeline replays the first production run: the
// releases dv-pipecat (60 pods) and dv-pipecat-canary (2) were installed and
// upgraded by the old workflows, with secrets passed with --set and
// fixed-name Secrets from kubectl. ringg-ci then plans, deploys the canary,
// rolls it back to what stable runs, promotes, rolls stable and the canary
// back and deletes the old records, while the stable Service never has fewer
// ready endpoints than the rollouts allow, and no secret value reaches
// anything ringg-ci writes or prints.
func TestTakeoverFromTheOldPipeline(t *testing.T) {
	e := newRelEnvIn(t, oldPipelineNamespace(t))
	ctx := context.Background()
	s := &leakScan{t: t}
	old := &oldPipeline{e: e, cfg: e.helm()}

	// The old pipeline's history.
	old.kubectlSecrets()
	prod, canaryFiles := []string{"values-prod.yaml"}, []string{"values-prod.yaml", "values-canary.yaml"}
	old.upgrade("dv-pipecat", oldTag1, prod, secretSets()...)               // stable 1: deploy, before the canary existed
	old.upgrade("dv-pipecat-canary", oldTag2, canaryFiles, secretSets()...) // canary 1
	old.upgrade("dv-pipecat-canary", oldTag3, canaryFiles, secretSets()...) // canary 2
	old.upgrade("dv-pipecat", oldTag3, prod)                                // stable 2: promote-prod.yml, without the --set values
	tcReadyPods(t, e.ns, 62, 60*time.Second)
	resolved := containerRuntime(t, e.kube, e.ns)
	waitFor(t, 30*time.Second, resolved)

	fixed := []string{secrets.DefaultAppEnv, secrets.DefaultGCPCreds}
	fixedRV := resourceVersions(t, e.kube, e.ns, fixed...)
	stableDep, canaryDep := e.deployment("dv-pipecat"), e.deployment("dv-pipecat-canary")
	liveIngress, err := e.kube.NetworkingV1().Ingresses(e.ns).Get(ctx, "dv-pipecat", metav1.GetOptions{})
	assert.NilError(t, err)
	for k, v := range oldIngressAnnotations {
		assert.Equal(t, liveIngress.Annotations[k], v)
	}
	eps := watchEndpoints(t, e.ns, "dv-pipecat")
	eps.arm(t, 62)
	// The rollout floor: each Deployment keeps replicas - maxUnavailable
	// (25%, rounded down) ready: 60-15 stable and 2-0 canary.
	const floor = 45 + 2

	c := &cliEnv{t: t, ns: e.ns, env: map[string]string{cli.EnvKubeconfig: string(cluster.Kubeconfig())}}

	// status: what the old releases run, from their pods, and the warning.
	sp, err := pipeline.NewStatus([]targets.Name{targets.Canary, targets.Stable}, e.overrides())
	assert.NilError(t, err)
	st, err := (&release.Status{Clients: e.clients, Plan: sp}).Run(ctx)
	assert.NilError(t, err)
	status := st.String()
	s.add("status", status)
	s.json("status", st)
	assert.Assert(t, is.Contains(status, fmt.Sprintf(`stable   release dv-pipecat in %s: revision 2 deployed, 60/60 pods ready, image tag %q (written by the old pipeline) (running %s)`, e.ns, oldTag3, oldTags[oldTag3][:19])), shown(status))
	assert.Assert(t, is.Contains(status, "canary and stable run the same digest"), shown(status))
	assert.Assert(t, is.Contains(status, "warning: release dv-pipecat-canary in "+e.ns+" (canary) keeps revisions 1 and 2 written by the old pipeline"), shown(status))
	assert.Equal(t, st.Targets[1].Origin, release.OriginOldPipeline)
	assert.DeepEqual(t, st.Targets[1].OldRecords, []int{1, 2})

	// plan of the canary's first run: the image its pods run, and the takeover.
	r := c.inNS("plan", "--branch", "dv-main")
	assert.Equal(t, r.code, 0, shown(r.stderr))
	plan := r.stdout
	for _, want := range []string{
		"image " + prodRepo + "@" + oldTags[oldTag3],
		fmt.Sprintf(`takeover: revision 2 (deployed) was written by the old pipeline with chart dv-pipecat-0.1.0, image tag %q; its pods run %s`, oldTag3, oldTags[oldTag3]),
		"secrets: the live pods read dv-pipecat-app-secrets, dv-pipecat-gcp-creds; the release will read dv-pipecat-app-secrets, dv-pipecat-gcp-creds",
		"old records: revisions 1 and 2 hold the old pipeline's values",
		"Deployment/dv-pipecat-canary spec.template.spec.containers[dv-pipecat].env[OPENAI_API_KEY].value: removed (value hidden)",
		`Deployment/dv-pipecat-canary metadata.labels["helm.sh/chart"]: "dv-pipecat-0.1.0" -> "dv-pipecat-1.0.0"`,
		"nothing users rely on changes",
	} {
		assert.Assert(t, is.Contains(plan, want), shown(plan))
	}
	assert.Assert(t, hasLine(plan, "-", "value: (hidden)"), "the diff hides the --set values:\n%s", shown(plan))
	// The old chart's pods ran with Kubernetes' defaults (as root, in
	// production); the diff shows every security setting the takeover adds.
	for _, added := range []string{"automountServiceAccountToken: false", "runAsNonRoot: true", "type: RuntimeDefault",
		"allowPrivilegeEscalation: false", "readOnlyRootFilesystem: true", "- ALL", "mountPath: /tmp", "emptyDir: {}"} {
		assert.Assert(t, hasLine(plan, "+", added), "the takeover's diff shows %q:\n%s", added, shown(plan))
	}
	for path, fate := range map[string]string{
		"image.tag":                "replaced: the image is pinned by digest (image.digest " + oldTags[oldTag3] + ")",
		"secretEnv.OPENAI_API_KEY": "dropped: the chart ringg-ci deploys has no such value (value hidden)",
		"secretEnv.REDIS_URL":      "dropped: the chart ringg-ci deploys has no such value (value hidden)",
	} {
		assert.Assert(t, hasLine(plan, "  "+path+" ", fate), "plan says what becomes of %s:\n%s", path, shown(plan))
	}

	// The old records cannot go before the takeover: they are what runs.
	r = c.inNS("takeover", "--target", "canary", "--chart", chartDir, "--delete-old-records")
	assert.Equal(t, r.code, 1, shown(r.stdout))
	assert.Assert(t, is.Contains(r.stderr, "not taken over yet: revision 2 (deployed) was written by the old pipeline and is what runs"), shown(r.stderr))
	assert.DeepEqual(t, statuses(e.history("dv-pipecat-canary")), []string{"1:superseded", "2:deployed"})
	// Nor can stable be promoted from a canary the old pipeline deployed; the
	// dry run also says what stable's takeover would refuse.
	r = c.inNS("promote", "--dry-run", "--soak", "300ms")
	assert.Equal(t, r.code, 1, shown(r.stdout))
	assert.Assert(t, is.Contains(r.stderr, fmt.Sprintf(`canary release dv-pipecat-canary revision 2 was written by the old pipeline (image tag %q): deploy the canary with ringg-ci first`, oldTag3)), shown(r.stderr))
	assert.Assert(t, is.Contains(r.stderr, "takeover refused: release dv-pipecat revision 2 was written by the old pipeline"), shown(r.stderr))

	// Deploy the canary with new Secrets: stable and what it reads stay.
	b1, n1 := e.leakBundle(s, "first")
	_, err = e.deploy(e.canaryPlan(digest("d"), n1), b1, release.Options{})
	assert.NilError(t, err)
	e.assertStableUntouched(stableDep)
	assert.DeepEqual(t, resourceVersions(t, e.kube, e.ns, fixed...), fixedRV)
	e.assertSameSelector(canaryDep)
	assert.DeepEqual(t, secretsRead(e.deployment("dv-pipecat-canary")), []string{n1.AppEnv, n1.GCPCreds})

	// The default canary rollback while stable still runs the old
	// pipeline's tag-only revision: stable's digest from its pods, and
	// content-named copies of the fixed-name Secrets it reads.
	rb := e.rollback(pipeline.RollbackInput{Target: targets.Canary, ChartDir: chartDir})
	assert.Equal(t, rb.Digest, oldTags[oldTag3])
	dep := e.deployment("dv-pipecat-canary")
	assert.Equal(t, image(dep), prodRepo+"@"+oldTags[oldTag3])
	read := secretsRead(dep)
	assert.Assert(t, is.Len(read, 2))
	for i, name := range read {
		assert.Assert(t, strings.HasPrefix(name, fixed[i]+"-"), "content-named copy of %s: %s", fixed[i], name)
		e.assertSameData(fixed[i], name)
	}
	assert.DeepEqual(t, resourceVersions(t, e.kube, e.ns, fixed...), fixedRV)
	e.assertStableUntouched(stableDep)

	// Back to the new image, then promote: refused until the Ingress's
	// annotations are kept by values-prod.yaml.
	_, err = e.deploy(e.canaryPlan(digest("d"), n1), b1, release.Options{})
	assert.NilError(t, err)
	r = c.inNS("promote", "--dry-run", "--soak", "300ms")
	assert.Equal(t, r.code, 0, shown(r.stderr))
	for _, want := range []string{
		"REFUSED: a deploy or promote of this plan stops before changing anything",
		`Ingress/dv-pipecat annotation "kubernetes.io/ingress.global-static-ip-name" ("use1-api-ringg-ai") would be removed`,
		"keep them by adding to values-prod.yaml:\n  ingress:\n    annotations:\n      kubernetes.io/ingress.class: gce\n      kubernetes.io/ingress.global-static-ip-name: use1-api-ringg-ai\n",
	} {
		assert.Assert(t, is.Contains(r.stdout, want), shown(r.stdout))
	}
	_, err = e.promoteWith(chartDir)
	assert.Assert(t, errors.Is(err, release.ErrTakeoverRefused), "%v", err)
	s.err("refused promote", err)
	assert.ErrorContains(t, err, `keep them by setting, in values-prod.yaml: ingress.annotations["kubernetes.io/ingress.class"]: gce; ingress.annotations["kubernetes.io/ingress.global-static-ip-name"]: use1-api-ringg-ai`)
	e.assertStableUntouched(stableDep)
	assert.DeepEqual(t, statuses(e.history("dv-pipecat")), []string{"1:superseded", "2:deployed"})

	kept := keptAnnotationsChart(t)
	pr, err := e.promoteWith(kept)
	assert.NilError(t, err)
	assert.Equal(t, pr.Result.Revision, 3)
	s.add("promote summary", pr.Summary())
	after := e.deployment("dv-pipecat")
	assert.Equal(t, image(after), prodRepo+"@"+digest("d"))
	assert.DeepEqual(t, secretsRead(after), []string{n1.AppEnv, n1.GCPCreds})
	e.assertSameSelector(stableDep)
	e.assertFrontKept()
	// The fixed-name Secrets were never touched; nothing reads them now.
	assert.DeepEqual(t, resourceVersions(t, e.kube, e.ns, fixed...), fixedRV)

	// A second round: a canary deploy with new Secrets leaves stable and
	// what it reads alone; promote moves stable on.
	promoted := e.deployment("dv-pipecat")
	promotedRV := resourceVersions(t, e.kube, e.ns, n1.AppEnv, n1.GCPCreds)
	b2, n2 := e.leakBundle(s, "second")
	_, err = e.deploy(e.canaryPlan(digest("e"), n2), b2, release.Options{})
	assert.NilError(t, err)
	e.assertStableUntouched(promoted)
	assert.DeepEqual(t, resourceVersions(t, e.kube, e.ns, n1.AppEnv, n1.GCPCreds), promotedRV)
	_, err = e.promoteWith(kept)
	assert.NilError(t, err)
	assert.Equal(t, image(e.deployment("dv-pipecat")), prodRepo+"@"+digest("e"))

	// Rollback of stable: to ringg-ci's previous revision, never to one the
	// old pipeline wrote with its values. Revision 2, which ran when stable
	// was taken over, has a takeover record (TestStateRollbackRightAfterTheFirstPromote);
	// revision 1 has none.
	before := e.snapshot()
	_, err = e.tryRollback(pipeline.RollbackInput{Target: targets.Stable, Revision: 1})
	assert.Assert(t, errors.Is(err, release.ErrOldPipelineRevision), "%v", err)
	assert.ErrorContains(t, err, "revision 1 of release dv-pipecat was written by the old pipeline")
	assert.ErrorContains(t, err, "and the takeover record is of revision 2")
	assert.ErrorContains(t, err, "roll back to a revision ringg-ci wrote with --revision N (good: 3)")
	s.err("rollback to old revision 1", err)
	assert.DeepEqual(t, e.snapshot(), before)
	rb = e.rollback(pipeline.RollbackInput{Target: targets.Stable})
	assert.Equal(t, rb.Digest, digest("d"))
	assert.Equal(t, image(e.deployment("dv-pipecat")), prodRepo+"@"+digest("d"))
	e.assertFrontKept()

	// The default canary rollback: to what stable runs now.
	rb = e.rollback(pipeline.RollbackInput{Target: targets.Canary, ChartDir: chartDir})
	assert.Equal(t, rb.Digest, digest("d"))
	assert.DeepEqual(t, secretsRead(e.deployment("dv-pipecat-canary")), []string{n1.AppEnv, n1.GCPCreds})

	// The old records: a dry run, then the deletion.
	r = c.inNS("takeover", "--target", "stable", "--chart", chartDir)
	assert.Equal(t, r.code, 0, shown(r.stderr))
	assert.Assert(t, is.Contains(r.stdout, "stable: release dv-pipecat in "+e.ns+": revision 5 deployed, written by ringg-ci: taken over"), shown(r.stdout))
	assert.Assert(t, is.Contains(r.stdout, fmt.Sprintf(`revision 1  superseded  chart dv-pipecat-0.1.0  image tag %q`, oldTag1)), shown(r.stdout))
	assert.Assert(t, is.Contains(r.stdout, "2 the chart has no place for: secretEnv.OPENAI_API_KEY, secretEnv.REDIS_URL"), shown(r.stdout))
	assert.Assert(t, is.Contains(r.stdout, "dry run: nothing deleted; delete them with --delete-old-records"), shown(r.stdout))
	assert.Assert(t, is.Contains(r.stdout, "secret dv-pipecat-app-secrets (fixed name, written by the old pipeline): read by nothing in "+e.ns), shown(r.stdout))
	assert.Assert(t, hasLine(r.stdout, "replica sets dv-pipecat-", "keep the old chart's pod template", "kubectl -n "+e.ns+" delete replicaset dv-pipecat-"), shown(r.stdout))
	assert.DeepEqual(t, statuses(e.history("dv-pipecat"))[:2], []string{"1:superseded", "2:superseded"})
	for _, target := range []string{"stable", "canary"} {
		r = c.inNS("takeover", "--target", target, "--chart", chartDir, "--delete-old-records")
		assert.Equal(t, r.code, 0, shown(r.stderr))
		assert.Assert(t, is.Contains(r.stdout, "deleted revisions 1 and 2"), shown(r.stdout))
	}
	for _, name := range []string{"dv-pipecat", "dv-pipecat-canary"} {
		for _, rel := range e.records(name) {
			assert.Assert(t, rel.Version > 2, "revision %d of %s is gone", rel.Version, name)
		}
	}
	for _, target := range []string{"stable", "canary"} {
		r = c.inNS("status", "--target", target)
		assert.Equal(t, r.code, 0, shown(r.stderr))
		assert.Assert(t, is.Contains(r.stdout, "deployed"), shown(r.stdout))
		assert.Assert(t, !strings.Contains(r.stdout, "warning:"), shown(r.stdout))
	}

	// The end state: every pod ready behind the Service, which never had
	// fewer ready endpoints than the rollouts allow; no record left pending;
	// the old pipeline's Secrets as kubectl left them.
	tcReadyPods(t, e.ns, 62, 60*time.Second)
	waitFor(t, 30*time.Second, func() bool { last, _, _ := eps.state(); return last == 62 })
	last, low, changes := eps.state()
	t.Logf("stable Service endpoints: %d changes seen, lowest %d, now %d", changes, low, last)
	assert.Assert(t, changes > 0, "the watch saw the rollouts")
	assert.Assert(t, low >= floor, "the stable Service fell to %d ready endpoints, below the rollout floor %d", low, floor)
	assert.Equal(t, last, 62)
	assert.DeepEqual(t, resourceVersions(t, e.kube, e.ns, fixed...), fixedRV)
	for _, name := range []string{"dv-pipecat", "dv-pipecat-canary"} {
		for _, rel := range e.records(name) {
			assert.Assert(t, !rel.Info.Status.IsPending(), "%s revision %d is %s", name, rel.Version, rel.Info.Status)
		}
	}
	e.assertRecordsClean(6)
	e.scanWritten(s)

	s.add("runner log", e.logs.String())
	s.add("ringg-ci output", c.all.String())
	s.check()
}

// scanWritten adds to s everything ringg-ci wrote in the namespace besides
// the content-named Secrets: the objects its chart renders, their
// ReplicaSets (those running a digest; the old chart's keep its env),
// Leases and ConfigMaps. The fixed-name Secrets are the old pipeline's.
func (e *relEnv) scanWritten(s *leakScan) {
	e.t.Helper()
	ctx := context.Background()
	add := func(label string, v any) {
		b, err := json.Marshal(v)
		assert.NilError(e.t, err)
		s.add(label, string(b))
	}
	deps, err := e.kube.AppsV1().Deployments(e.ns).List(ctx, metav1.ListOptions{})
	assert.NilError(e.t, err)
	add("deployments", deps)
	rss, err := e.kube.AppsV1().ReplicaSets(e.ns).List(ctx, metav1.ListOptions{})
	assert.NilError(e.t, err)
	ours := 0
	for _, rs := range rss.Items {
		if strings.Contains(rs.Spec.Template.Spec.Containers[0].Image, "@sha256:") {
			add("replicaset "+rs.Name, rs)
			ours++
		}
	}
	assert.Assert(e.t, ours >= 3, "ReplicaSets ringg-ci's rollouts made: %d", ours)
	svcs, err := e.kube.CoreV1().Services(e.ns).List(ctx, metav1.ListOptions{})
	assert.NilError(e.t, err)
	add("services", svcs)
	ings, err := e.kube.NetworkingV1().Ingresses(e.ns).List(ctx, metav1.ListOptions{})
	assert.NilError(e.t, err)
	add("ingresses", ings)
	pdbs, err := e.kube.PolicyV1().PodDisruptionBudgets(e.ns).List(ctx, metav1.ListOptions{})
	assert.NilError(e.t, err)
	add("pdbs", pdbs)
	leases, err := e.kube.CoordinationV1().Leases(e.ns).List(ctx, metav1.ListOptions{})
	assert.NilError(e.t, err)
	add("leases", leases)
	cms, err := e.kube.CoreV1().ConfigMaps(e.ns).List(ctx, metav1.ListOptions{})
	assert.NilError(e.t, err)
	add("configmaps", cms)
	pods, err := e.kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{})
	assert.NilError(e.t, err)
	add("pods", pods)
}

// records is a release's history as stored, gaps included.
func (e *relEnv) records(name string) []*hrelease.Release {
	e.t.Helper()
	h, err := e.helm().Releases.History(name)
	assert.NilError(e.t, err)
	return h
}

// leakBundle builds Secrets whose values hold the leak marker.
func (e *relEnv) leakBundle(s *leakScan, key string) (*secrets.Bundle, *pipeline.SecretNames) {
	e.t.Helper()
	b, err := secrets.Build(leakAppEnvJSON(key), leakCredsJSON(), secrets.DefaultNames(), e.ns)
	assert.NilError(e.t, err)
	s.json("bundle "+key, b)
	n := b.Names()
	return &b, &pipeline.SecretNames{AppEnv: n.AppEnv, GCPCreds: n.GCPCreds}
}

func (e *relEnv) tryRollback(in pipeline.RollbackInput) (*release.Result, error) {
	e.t.Helper()
	in.Overrides, in.Timeout, in.Holder = e.overrides(), 90*time.Second, "test "+e.t.Name()
	p, err := pipeline.NewRollback(in)
	assert.NilError(e.t, err)
	return (&release.Rollback{Clients: e.clients, Plan: p}).Run(context.Background())
}

func (e *relEnv) rollback(in pipeline.RollbackInput) *release.Result {
	e.t.Helper()
	res, err := e.tryRollback(in)
	assert.NilError(e.t, err)
	return res
}

// promoteWith promotes the canary with the chart in dir.
func (e *relEnv) promoteWith(dir string) (*release.PromoteResult, error) {
	e.t.Helper()
	plan, err := pipeline.NewPromote(pipeline.PromoteInput{Overrides: e.overrides(), ChartDir: dir, Soak: 300 * time.Millisecond,
		Timeout: 90 * time.Second, Holder: "test " + e.t.Name()})
	assert.NilError(e.t, err)
	return (&release.Promote{Clients: e.clients, Plan: plan, SoakInterval: 100 * time.Millisecond}).Run(context.Background())
}

// assertStableUntouched checks stable's Deployment has the generation and
// pod template it had.
func (e *relEnv) assertStableUntouched(was *appsv1.Deployment) {
	e.t.Helper()
	now := e.deployment("dv-pipecat")
	assert.Equal(e.t, now.Generation, was.Generation, "stable's Deployment was changed")
	assert.DeepEqual(e.t, now.Spec.Template, was.Spec.Template)
}

// assertSameSelector checks a Deployment kept its selector and identity.
func (e *relEnv) assertSameSelector(was *appsv1.Deployment) {
	e.t.Helper()
	now := e.deployment(was.Name)
	assert.Equal(e.t, now.UID, was.UID, "Deployment %s was replaced", was.Name)
	assert.DeepEqual(e.t, now.Spec.Selector, was.Spec.Selector)
}

// assertFrontKept checks the stable Service and Ingress still route as the
// old chart made them: the Ingress's annotations and host, the Service's
// port 80 to 8765 by number, selecting by app name only.
func (e *relEnv) assertFrontKept() {
	e.t.Helper()
	ctx := context.Background()
	ing, err := e.kube.NetworkingV1().Ingresses(e.ns).Get(ctx, "dv-pipecat", metav1.GetOptions{})
	assert.NilError(e.t, err)
	for k, v := range oldIngressAnnotations {
		assert.Equal(e.t, ing.Annotations[k], v, "Ingress annotation %s", k)
	}
	assert.Equal(e.t, ing.Spec.Rules[0].Host, "use1-api.ringg.ai")
	svc, err := e.kube.CoreV1().Services(e.ns).Get(ctx, "dv-pipecat", metav1.GetOptions{})
	assert.NilError(e.t, err)
	assert.Assert(e.t, is.Len(svc.Spec.Ports, 1))
	assert.Equal(e.t, svc.Spec.Ports[0].Port, int32(80))
	assert.Equal(e.t, svc.Spec.Ports[0].TargetPort.String(), "8765")
	assert.Equal(e.t, int(svc.Spec.Ports[0].TargetPort.IntVal), 8765)
	assert.DeepEqual(e.t, svc.Spec.Selector, map[string]string{"app.kubernetes.io/name": "dv-pipecat"})
}

// assertSameData checks a content-named copy holds exactly the data of the
// Secret it was copied from, without printing either.
func (e *relEnv) assertSameData(from, copied string) {
	e.t.Helper()
	ctx := context.Background()
	a, err := e.kube.CoreV1().Secrets(e.ns).Get(ctx, from, metav1.GetOptions{})
	assert.NilError(e.t, err)
	b, err := e.kube.CoreV1().Secrets(e.ns).Get(ctx, copied, metav1.GetOptions{})
	assert.NilError(e.t, err)
	assert.Equal(e.t, b.Labels[secrets.LabelManagedBy], secrets.ManagedBy)
	assert.Assert(e.t, b.Immutable != nil && *b.Immutable, "%s is immutable", copied)
	want := a.Data
	if from == secrets.DefaultGCPCreds {
		want = map[string][]byte{"creds.json": a.Data["creds.json"]}
	}
	assert.Equal(e.t, len(b.Data), len(want), "keys of %s", copied)
	for k, v := range want {
		assert.Assert(e.t, bytes.Equal(b.Data[k], v), "key %s of %s differs from %s", k, copied, from)
	}
}

// assertRecordsClean decodes every release record left in the namespace:
// after the old ones were deleted, all were written by ringg-ci, and none
// holds a secret value, in its values or its manifest.
func (e *relEnv) assertRecordsClean(atLeast int) {
	e.t.Helper()
	list, err := e.kube.CoreV1().Secrets(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "owner=helm"})
	assert.NilError(e.t, err)
	assert.Assert(e.t, len(list.Items) >= atLeast, "release records: %d", len(list.Items))
	for _, sec := range list.Items {
		rec := decodeHelmRecord(e.t, sec.Data["release"])
		assert.Assert(e.t, !strings.Contains(rec, leakMarker), "release record %s holds a secret value", sec.Name)
		var r hrelease.Release
		assert.NilError(e.t, json.Unmarshal([]byte(rec), &r))
		img, _ := r.Config["image"].(map[string]any)
		assert.Assert(e.t, img["digest"] != nil && img["tag"] == nil, "record %s pins a digest, no tag", sec.Name)
	}
}

// secretsRead lists the Secrets a Deployment's pods read: envFrom, then
// volumes.
func secretsRead(d *appsv1.Deployment) []string {
	var out []string
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, ef := range c.EnvFrom {
			if ef.SecretRef != nil {
				out = append(out, ef.SecretRef.Name)
			}
		}
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			out = append(out, v.Secret.SecretName)
		}
	}
	return out
}

// shown is a text for a failure message, withheld when it holds a secret
// value: a failing test must not print what it guards.
func shown(text string) string {
	if strings.Contains(text, leakMarker) {
		return fmt.Sprintf("(%d bytes withheld: they hold a secret value)", len(text))
	}
	return text
}

// hasLine reports whether a line of text holds every part, in order.
func hasLine(text string, parts ...string) bool {
	for _, line := range strings.Split(text, "\n") {
		rest, ok := line, true
		for _, p := range parts {
			i := strings.Index(rest, p)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(p):]
		}
		if ok {
			return true
		}
	}
	return false
}

// TestFailedTakeoverReturnsToTheOldRelease: when the first ringg-ci deploy
// over the old pipeline's canary fails, the canary runs again exactly what it
// ran (the old chart's pod template, image by tag, fixed-name Secrets), and
// no new record is written for it: Helm's rollback would copy the old
// record's --set secrets into a record of ringg-ci's. The old record is
// deployed again, status counts it, and the takeover command deletes the old
// records once a deploy succeeded.
func TestFailedTakeoverReturnsToTheOldRelease(t *testing.T) {
	e := newRelEnvIn(t, oldPipelineNamespace(t))
	s := &leakScan{t: t}
	old := &oldPipeline{e: e, cfg: e.helm()}
	old.kubectlSecrets()
	files := []string{"values-prod.yaml", "values-canary.yaml"}
	old.upgrade("dv-pipecat-canary", oldTag2, files, secretSets()...)
	old.upgrade("dv-pipecat-canary", oldTag3, files, secretSets()...)
	tcReadyPods(t, e.ns, 2, 30*time.Second)
	waitFor(t, 30*time.Second, containerRuntime(t, e.kube, e.ns))
	was := e.deployment("dv-pipecat-canary")

	b, n := e.leakBundle(s, "failing")
	p := e.failing(e.canaryPlan(digest("f"), n), "never-ready")
	p.Timeout = 4 * time.Second
	res, err := e.deploy(p, b, release.Options{})
	assert.Assert(t, errors.Is(err, release.ErrRolledBack), "%v", err)
	s.err("failed takeover", err)
	s.add("failed takeover summary", res.Summary())
	assert.DeepEqual(t, statuses(e.history("dv-pipecat-canary")), []string{"1:superseded", "2:deployed", "3:failed/failed"})
	assert.Equal(t, res.Revision, 2)
	now := e.deployment("dv-pipecat-canary")
	assert.Equal(t, image(now), prodRepo+":"+oldTag3)
	assert.DeepEqual(t, secretsRead(now), []string{secrets.DefaultAppEnv, secrets.DefaultGCPCreds})
	assert.DeepEqual(t, now.Spec.Template.Spec.Containers[0].Env, was.Spec.Template.Spec.Containers[0].Env)
	e.assertSameSelector(was)
	// ringg-ci's own record of the failed revision holds no secret value.
	rec := decodeRecord(t, e.ns, "dv-pipecat-canary", 3)
	assert.Assert(t, !strings.Contains(rec, leakMarker), "revision 3 holds a secret value")

	sp, err := pipeline.NewStatus([]targets.Name{targets.Canary}, e.overrides())
	assert.NilError(t, err)
	st, err := (&release.Status{Clients: e.clients, Plan: sp}).Run(context.Background())
	assert.NilError(t, err)
	assert.DeepEqual(t, st.Targets[0].OldRecords, []int{1, 2})
	assert.Equal(t, st.Targets[0].Origin, release.OriginOldPipeline)
	assert.Equal(t, st.Targets[0].Revision, 2)
	assert.Equal(t, st.Targets[0].ImageTag, oldTag3)
	assert.Assert(t, st.Targets[0].Later != nil && st.Targets[0].Later.Revision == 3 && st.Targets[0].Later.Status == "failed", "%+v", st.Targets[0].Later)
	assert.Assert(t, strings.Contains(st.String(), "later revision 3 failed (failed): rollout failed"), st.String())

	_, err = e.deploy(e.canaryPlan(digest("g"), n), b, release.Options{})
	assert.NilError(t, err)
	tp, err := pipeline.NewTakeover(pipeline.TakeoverInput{Target: targets.Canary, Overrides: e.overrides(), ChartDir: chartDir, DeleteOldRecords: true, Holder: "test"})
	assert.NilError(t, err)
	ts, err := (&release.Takeover{Clients: e.clients, Plan: tp}).Run(context.Background())
	assert.NilError(t, err)
	s.add("takeover", ts.String())
	s.json("takeover", ts)
	assert.DeepEqual(t, ts.Deleted, []int{1, 2})
	var left []string
	for _, r := range e.records("dv-pipecat-canary") {
		left = append(left, fmt.Sprintf("%d:%s", r.Version, r.Info.Status))
	}
	slices.Sort(left)
	assert.DeepEqual(t, left, []string{"3:failed", "4:deployed"})
	e.assertRecordsClean(2)
	s.add("runner log", e.logs.String())
	s.check()
}

// decodeRecord returns one Helm release record as JSON.
func decodeRecord(t *testing.T, ns, name string, version int) string {
	t.Helper()
	sec, err := cluster.Client().CoreV1().Secrets(ns).Get(context.Background(), fmt.Sprintf("sh.helm.release.v1.%s.v%d", name, version), metav1.GetOptions{})
	assert.NilError(t, err)
	return decodeHelmRecord(t, sec.Data["release"])
}
