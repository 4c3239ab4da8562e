package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	authzv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/release"
)

// canaryVerbs are what the canary's account does: a push to dv-main deploys
// the canary; status, plan, health, logs, scale and rollback of the canary
// are the operations of docs/operations.md for it.
var canaryVerbs = []string{"deploy", "status", "plan", "health", "logs", "scale", "rollback"}

// canaryNotExercised are the canary Role's grants the scenario does not
// use, each with its reason.
var canaryNotExercised = map[string]string{
	"list /events":             "a failed rollout's explanation reads the failing pods' events (integration/explain_test.go, TestExplanationReadsEventsAsTheDeployAccount)",
	"create /pods/portforward": "the API server authorizes a websocket port-forward as create too, and the SPDY fallback is a create",
	"list apps/deployments":    "the rollout watch's informers list when the API server cannot stream a watch's initial state",
	"list apps/replicasets":    "the rollout watch's informers list when the API server cannot stream a watch's initial state",
	"update coordination.k8s.io/leases ringg-ci-lock-dv-pipecat-canary": "the lock renews its lease during rollouts longer than a third of its TTL",
	"get coordination.k8s.io/leases ringg-ci-lock-dv-pipecat-canary":    "the lock reads its lease only when creating it finds one (another run holds it, or a dead run left it)",
	"delete /secrets": "pruning Secret versions no kept revision references, and Helm's history limit",
	"delete apps/deployments dv-pipecat-canary": "a failed first install of the canary is uninstalled",
}

// withStable deploys stable as production has it, with an admin's
// credentials (as promote, stable's account, would have): its Deployment,
// Service, Ingress, PodDisruptionBudget and HorizontalPodAutoscaler, and its
// content-named Secrets.
func (r *rbacEnv) withStable() {
	r.t.Helper()
	p := r.stablePlan(digest("s"))
	p.ChartDir = autoscaledChart(r.t)
	b, names := r.bundle("stable")
	p.Secrets, p.SecretNames = pipeline.SecretsNew, *names
	_, err := r.deploy(p, b, release.Options{})
	assert.NilError(r.t, err, "deploy stable as an admin")
}

func TestRBACCanaryRoleIsEnoughAndUsedWhole(t *testing.T) {
	role, _ := loadRBAC(t, canaryRole)
	r := newRBACEnv(t, canaryRole, role.Rules)
	r.withStable()
	step, err := r.verbs(canaryVerbs...)
	assert.NilError(t, err, "%s as the canary Role's subject", step)
	used := r.log.list()
	t.Logf("requests made: %q", used)
	checkUsedWhole(t, role.Rules, r.log, canaryNotExercised)
}

func TestRBACCanaryEveryRuleIsNeeded(t *testing.T) {
	role, _ := loadRBAC(t, canaryRole)
	for i, rule := range role.Rules {
		name := strings.Join(rule.APIGroups, ",") + "/" + strings.Join(rule.Resources, ",")
		if len(rule.ResourceNames) > 0 {
			name += " " + strings.Join(rule.ResourceNames, ",")
		}
		t.Run(strings.TrimPrefix(name, "/"), func(t *testing.T) {
			if why := bestEffort[name]; why != "" {
				t.Skip(why)
			}
			t.Parallel()
			rules := slices.Delete(slices.Clone(role.Rules), i, i+1)
			r := newRBACEnv(t, canaryRole, rules)
			r.withStable()
			step, err := r.verbs(canaryVerbs...)
			assertRefused(t, r, name, step, err)
		})
	}
}

// access is one question to the API server's authorizer about the canary's
// account, and the answer docs/security.md gives.
type access struct {
	verb, group, resource, subresource, name string
	allowed                                  bool
}

func (a access) String() string {
	r := a.resource
	if a.subresource != "" {
		r += "/" + a.subresource
	}
	return strings.TrimSpace(fmt.Sprintf("%s %s/%s %s", a.verb, a.group, r, a.name))
}

// A push to dv-main acts as the canary's account. The API server refuses
// it every change to stable's objects, and allows what docs/security.md
// says it still can (what Kubernetes RBAC cannot scope by name); a deploy
// and a scale of stable with that account fail and leave stable as it was.
func TestRBACCanaryCannotChangeStable(t *testing.T) {
	role, binding := loadRBAC(t, canaryRole)
	r := newRBACEnv(t, canaryRole, role.Rules)
	r.withStable()
	ctx := context.Background()
	stablePods := r.podNames(r.opsTarget(targets.Stable))
	assert.Assert(t, len(stablePods) > 0)
	stableDep := r.deployment("dv-pipecat")
	appEnv := stableDep.Spec.Template.Spec.Containers[0].EnvFrom[0].SecretRef.Name

	matrix := []access{
		// Stable's objects: refused.
		{verb: "patch", group: "apps", resource: "deployments", name: "dv-pipecat"},
		{verb: "update", group: "apps", resource: "deployments", name: "dv-pipecat"},
		{verb: "delete", group: "apps", resource: "deployments", name: "dv-pipecat"},
		{verb: "update", group: "apps", resource: "deployments", subresource: "scale", name: "dv-pipecat"},
		{verb: "patch", group: "apps", resource: "deployments", subresource: "scale", name: "dv-pipecat"},
		{verb: "create", resource: "services"},
		{verb: "patch", resource: "services", name: "dv-pipecat"},
		{verb: "delete", resource: "services", name: "dv-pipecat"},
		{verb: "create", group: "networking.k8s.io", resource: "ingresses"},
		{verb: "patch", group: "networking.k8s.io", resource: "ingresses", name: "dv-pipecat"},
		{verb: "delete", group: "networking.k8s.io", resource: "ingresses", name: "dv-pipecat"},
		{verb: "patch", group: "policy", resource: "poddisruptionbudgets", name: "dv-pipecat"},
		{verb: "delete", group: "policy", resource: "poddisruptionbudgets", name: "dv-pipecat"},
		{verb: "create", group: "autoscaling", resource: "horizontalpodautoscalers"},
		{verb: "patch", group: "autoscaling", resource: "horizontalpodautoscalers", name: "dv-pipecat"},
		{verb: "delete", group: "autoscaling", resource: "horizontalpodautoscalers", name: "dv-pipecat"},
		{verb: "get", group: "coordination.k8s.io", resource: "leases", name: "ringg-ci-lock-dv-pipecat"},
		{verb: "update", group: "coordination.k8s.io", resource: "leases", name: "ringg-ci-lock-dv-pipecat"},
		{verb: "delete", group: "coordination.k8s.io", resource: "leases", name: "ringg-ci-lock-dv-pipecat"},
		{verb: "create", resource: "pods"},
		{verb: "delete", resource: "pods", name: stablePods[0]},
		{verb: "create", resource: "pods", subresource: "exec", name: stablePods[0]},
		{verb: "create", resource: "pods", subresource: "eviction", name: stablePods[0]},
		{verb: "patch", group: "apps", resource: "replicasets"},
		{verb: "deletecollection", resource: "secrets"},
		{verb: "create", group: "rbac.authorization.k8s.io", resource: "rolebindings"},
		// The canary's own objects: allowed.
		{verb: "patch", group: "apps", resource: "deployments", name: "dv-pipecat-canary", allowed: true},
		{verb: "update", group: "apps", resource: "deployments", subresource: "scale", name: "dv-pipecat-canary", allowed: true},
		{verb: "update", group: "coordination.k8s.io", resource: "leases", name: "ringg-ci-lock-dv-pipecat-canary", allowed: true},
		// What RBAC cannot scope by name, allowed on stable's too
		// (docs/security.md, "What the canary's account can still do").
		{verb: "create", group: "apps", resource: "deployments", allowed: true},
		{verb: "create", group: "coordination.k8s.io", resource: "leases", allowed: true},
		{verb: "get", resource: "secrets", name: appEnv, allowed: true},
		{verb: "list", resource: "secrets", allowed: true},
		{verb: "create", resource: "secrets", allowed: true},
		{verb: "update", resource: "secrets", name: "sh.helm.release.v1.dv-pipecat.v1", allowed: true},
		{verb: "delete", resource: "secrets", name: "sh.helm.release.v1.dv-pipecat.v1", allowed: true},
		{verb: "delete", resource: "secrets", name: appEnv, allowed: true},
		{verb: "create", resource: "pods", subresource: "portforward", name: stablePods[0], allowed: true},
		{verb: "get", resource: "pods", subresource: "log", name: stablePods[0], allowed: true},
		{verb: "get", group: "apps", resource: "deployments", name: "dv-pipecat", allowed: true},
	}
	user := binding.Subjects[0].Name
	for _, a := range matrix {
		review, err := r.kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User: user,
			ResourceAttributes: &authzv1.ResourceAttributes{Namespace: r.ns, Verb: a.verb, Group: a.group,
				Resource: a.resource, Subresource: a.subresource, Name: a.name},
		}}, metav1.CreateOptions{})
		assert.NilError(t, err)
		assert.Check(t, review.Status.Allowed == a.allowed, "%s as %s: allowed %v, docs/security.md says %v", a, user, review.Status.Allowed, a.allowed)
	}

	// Acting on stable with the canary's account fails, and stable's
	// objects stay as they were.
	before := r.stableVersions(ctx)
	d := release.Deploy{Clients: r.as, Plan: r.stablePlan(digest("x")), Options: release.Options{}}
	d.Plan.ChartDir = autoscaledChart(t)
	d.Plan.Timeout = 20 * time.Second
	_, err := d.Run(ctx)
	assert.ErrorContains(t, err, "forbidden", "deploy stable as the canary's account")
	t.Logf("deploy stable as the canary's account: %v", err)
	scale, err := r.kube.AppsV1().Deployments(r.ns).GetScale(ctx, "dv-pipecat", metav1.GetOptions{})
	assert.NilError(t, err)
	scale.Spec.Replicas++
	_, err = r.as.Kube.AppsV1().Deployments(r.ns).UpdateScale(ctx, "dv-pipecat", scale, metav1.UpdateOptions{})
	assert.Check(t, apierrors.IsForbidden(err), "scale stable as the canary's account: %v", err)
	assert.DeepEqual(t, r.stableVersions(ctx), before)
}

// stableVersions fingerprints what a change to stable's objects would
// touch: their labels, annotations and specs (a Deployment's without its
// replica count, which stable's autoscaler owns).
func (r *rbacEnv) stableVersions(ctx context.Context) map[string]string {
	r.t.Helper()
	k, ns, name := r.kube, r.ns, "dv-pipecat"
	out := map[string]string{}
	print := func(kind string, meta metav1.ObjectMeta, spec any) {
		raw, err := json.Marshal([]any{meta.Labels, meta.Annotations, spec})
		assert.NilError(r.t, err)
		out[kind] = string(raw)
	}
	dep, err := k.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	assert.NilError(r.t, err)
	spec := dep.Spec
	spec.Replicas = nil
	print("deployment", dep.ObjectMeta, spec)
	svc, err := k.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	assert.NilError(r.t, err)
	print("service", svc.ObjectMeta, svc.Spec)
	ing, err := k.NetworkingV1().Ingresses(ns).Get(ctx, name, metav1.GetOptions{})
	assert.NilError(r.t, err)
	print("ingress", ing.ObjectMeta, ing.Spec)
	pdb, err := k.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, name, metav1.GetOptions{})
	assert.NilError(r.t, err)
	print("pdb", pdb.ObjectMeta, pdb.Spec)
	hpa, err := k.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, name, metav1.GetOptions{})
	assert.NilError(r.t, err)
	print("hpa", hpa.ObjectMeta, hpa.Spec)
	return out
}
