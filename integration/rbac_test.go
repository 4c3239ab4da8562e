package integration

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/ops"
	"github.com/ringg/ringg-ci/runner/release"
)

// rbacFile is what production applies (deploy/rbac/<cluster>.yaml): the
// deployer Role (stable's account; staging's file ships the same Role, which
// checks/rbac_test.go keeps equal) and the canary's Role.
const rbacFile = "../deploy/rbac/desivocal-prod-us-e1-cluster.yaml"

// The Roles of rbacFile.
const (
	deployerRole = "ringg-ci-deployer"
	canaryRole   = "ringg-ci-canary-deployer"
)

// loadRBAC reads the Role called name from rbacFile and the RoleBinding
// that binds it.
func loadRBAC(t *testing.T, name string) (rbacv1.Role, rbacv1.RoleBinding) {
	t.Helper()
	raw, err := os.ReadFile(rbacFile)
	assert.NilError(t, err)
	var role rbacv1.Role
	var binding rbacv1.RoleBinding
	for doc := range strings.SplitSeq(string(raw), "\n---\n") {
		var meta metav1.TypeMeta
		assert.NilError(t, yaml.Unmarshal([]byte(doc), &meta))
		switch meta.Kind {
		case "Role":
			var r rbacv1.Role
			assert.NilError(t, yaml.UnmarshalStrict([]byte(doc), &r))
			if r.Name == name {
				role = r
			}
		case "RoleBinding":
			var b rbacv1.RoleBinding
			assert.NilError(t, yaml.UnmarshalStrict([]byte(doc), &b))
			if b.RoleRef.Name == name {
				binding = b
			}
		default:
			t.Fatalf("%s: unexpected kind %q", rbacFile, meta.Kind)
		}
	}
	assert.Assert(t, role.Name == name, "%s has no Role %s", rbacFile, name)
	assert.Assert(t, binding.Name != "", "%s binds nobody to %s", rbacFile, name)
	assert.Equal(t, len(binding.Subjects), 1)
	return role, binding
}

// requestLog records the authorization attributes of every request a
// client sends: "verb group/resource" and, for a request naming its object,
// "verb group/resource name" too, as the API server's RBAC authorizer
// matches resourceNames.
type requestLog struct {
	mu      sync.Mutex
	seen    map[string]bool
	unnamed map[string]bool // "verb group/resource" of requests naming no object
	denied  map[string]bool // answered 403
}

func (l *requestLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		attr, name, ok := authzAttributes(req)
		resp, err := rt.RoundTrip(req)
		if ok {
			l.mu.Lock()
			l.seen[attr] = true
			if name != "" {
				l.seen[attr+" "+name] = true
			} else {
				l.unnamed[attr] = true
			}
			if err == nil && resp.StatusCode == http.StatusForbidden {
				l.denied[strings.TrimSpace(attr+" "+name)] = true
			}
			l.mu.Unlock()
		}
		return resp, err
	})
}

func (l *requestLog) list() []string { return l.keys(l.seen) }

func (l *requestLog) refused() []string { return l.keys(l.denied) }

// requested lists what the authorizer must have allowed: "verb
// group/resource name" for each request naming an object, "verb
// group/resource" for the others.
func (l *requestLog) requested() []string {
	var out []string
	for _, k := range l.list() {
		if strings.Count(k, " ") > 1 {
			out = append(out, k)
		}
	}
	return append(out, l.keys(l.unnamed)...)
}

func (l *requestLog) keys(m map[string]bool) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// authzAttributes maps a namespaced resource request to "verb
// group/resource" as the API server's RBAC authorizer sees it ("" is the
// core group) and the object's name when the path names one; discovery and
// other non-resource requests are not recorded.
func authzAttributes(req *http.Request) (attr, name string, ok bool) {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	var group string
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		group, parts = parts[1], parts[3:]
	default:
		return "", "", false
	}
	if len(parts) < 3 || parts[0] != "namespaces" {
		if len(parts) >= 1 {
			return "cluster-scoped " + group + "/" + strings.Join(parts, "/"), "", true
		}
		return "", "", false
	}
	parts = parts[2:] // resource[/name[/subresource]]
	resource, named := parts[0], len(parts) > 1
	if named {
		name = parts[1]
	}
	if len(parts) > 2 {
		resource += "/" + parts[2]
	}
	verb := map[string]string{http.MethodPost: "create", http.MethodPut: "update", http.MethodPatch: "patch"}[req.Method]
	switch req.Method {
	case http.MethodGet:
		verb = "list"
		if named {
			verb = "get"
		}
		if req.URL.Query().Get("watch") == "true" {
			verb = "watch"
		}
	case http.MethodDelete:
		verb = "deletecollection"
		if named {
			verb = "delete"
		}
	}
	return verb + " " + group + "/" + resource, name, true
}

// granted lists "verb group/resource" for every rule without resourceNames
// and "verb group/resource name" for each name of a rule with them.
func granted(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					if len(r.ResourceNames) == 0 {
						out = append(out, v+" "+g+"/"+res)
					}
					for _, n := range r.ResourceNames {
						out = append(out, v+" "+g+"/"+res+" "+n)
					}
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// checkUsedWhole fails unless the requests of log are exactly covered by
// the rules: nothing requested that they lack (a named request is covered by
// a rule for its name or one without names), and every grant used or, in
// notExercised, said why not.
func checkUsedWhole(t *testing.T, rules []rbacv1.PolicyRule, log *requestLog, notExercised map[string]string) {
	t.Helper()
	want := granted(rules)
	for _, r := range log.requested() {
		parts := strings.SplitN(r, " ", 3)
		unnamed := parts[0] + " " + parts[1]
		assert.Check(t, slices.Contains(want, r) || slices.Contains(want, unnamed), "%s was requested but the Role does not grant it", r)
	}
	used := log.list()
	for _, g := range want {
		assert.Check(t, slices.Contains(used, g) || notExercised[g] != "", "%s is granted but never used: remove it from %s or say why in notExercised", g, rbacFile)
	}
	for g := range notExercised {
		assert.Check(t, slices.Contains(want, g), "notExercised lists %s, which the Role does not grant", g)
	}
}

// rbacEnv is a namespace with the Role (given rules) bound to its subject,
// and release and ops clients that act as that subject.
type rbacEnv struct {
	*relEnv
	as  release.Clients
	log *requestLog
}

func newRBACEnv(t *testing.T, roleName string, rules []rbacv1.PolicyRule) *rbacEnv {
	t.Helper()
	e := newRelEnv(t)
	role, binding := loadRBAC(t, roleName)
	role.Rules = rules
	role.Namespace, binding.Namespace = e.ns, e.ns
	ctx := context.Background()
	_, err := e.kube.RbacV1().Roles(e.ns).Create(ctx, &role, metav1.CreateOptions{})
	assert.NilError(t, err)
	_, err = e.kube.RbacV1().RoleBindings(e.ns).Create(ctx, &binding, metav1.CreateOptions{})
	assert.NilError(t, err)

	rec := &requestLog{seen: map[string]bool{}, unnamed: map[string]bool{}, denied: map[string]bool{}}
	cfg := cluster.RESTConfig()
	cfg.Impersonate = rest.ImpersonationConfig{UserName: binding.Subjects[0].Name}
	cfg.Wrap(rec.wrap)
	kube, err := kubernetes.NewForConfig(cfg)
	assert.NilError(t, err)
	return &rbacEnv{relEnv: e, log: rec, as: release.Clients{
		Config: cfg, Kube: kube,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}}
}

// autoscaledChart is the chart with autoscaling on in the production
// values, so that promote also creates the stable HorizontalPodAutoscaler
// (and its Deployment starts at one replica instead of 60).
func autoscaledChart(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	assert.NilError(t, os.CopyFS(dir, os.DirFS(chartDir)))
	path := filepath.Join(dir, "values-prod.yaml")
	raw, err := os.ReadFile(path)
	assert.NilError(t, err)
	on := strings.Replace(string(raw), "autoscaling:\n  enabled: false", "autoscaling:\n  enabled: true", 1)
	assert.Assert(t, on != string(raw), "values-prod.yaml no longer has autoscaling.enabled false")
	assert.NilError(t, os.WriteFile(path, []byte(on), 0o644))
	return dir
}

// everyVerb runs each verb of the module as the Role's subject, in an order
// that needs no admin help, and returns the first that fails.
func (r *rbacEnv) everyVerb() (string, error) {
	return r.verbs("deploy", "status", "plan", "health", "logs", "scale", "promote", "rollback")
}

// verbs runs the named verbs of the module, in the order given, as the
// Role's subject, and returns the first that fails: deploy (the canary, new
// Secrets), status (canary and stable), plan (the canary), health, logs and
// scale (the canary), promote, rollback (the canary, to what stable runs).
func (r *rbacEnv) verbs(which ...string) (string, error) {
	ctx := context.Background()
	b, names := r.bundle("rbac")
	canary := r.opsTarget(targets.Canary)
	steps := []step{
		{"deploy", func() error {
			p := r.canaryPlan(digest("a"), names)
			// Without read access to pods the rollout can only time out.
			p.Timeout = 20 * time.Second
			_, err := (&release.Deploy{Clients: r.as, Plan: p, Secrets: b}).Run(ctx)
			return err
		}},
		{"status", func() error {
			sp, err := pipeline.NewStatus([]targets.Name{targets.Canary, targets.Stable}, r.overrides())
			if err != nil {
				return err
			}
			_, err = (&release.Status{Clients: r.as, Plan: sp}).Run(ctx)
			return err
		}},
		{"plan", func() error {
			b2, n2 := r.bundle("rbac-next")
			_, err := (&release.Plan{Clients: r.as, Plan: r.canaryPlan(digest("b"), n2), Secrets: b2}).Run(ctx)
			return err
		}},
		{"health", func() error {
			rep, err := ops.Health(ctx, r.as.Config, r.as.Kube, canary, ops.HealthOptions{Timeout: 10 * time.Second})
			for _, p := range rep.Pods {
				if err != nil && p.Error != "" {
					return fmt.Errorf("%w: %s", err, p.Error)
				}
			}
			return err
		}},
		{"logs", func() error {
			_, err := ops.Logs(ctx, r.as.Kube, canary, ops.LogOptions{})
			return err
		}},
		{"scale", func() error {
			res, err := ops.Scale(ctx, r.as.Kube, canary, 3, ops.ScaleOptions{Wait: 30 * time.Second})
			if err == nil && res.ChartReplicas != 2 {
				return fmt.Errorf("scale read %d chart replicas, want 2", res.ChartReplicas)
			}
			return err
		}},
		{"promote", func() error {
			plan, err := pipeline.NewPromote(pipeline.PromoteInput{Overrides: r.overrides(), ChartDir: autoscaledChart(r.t), Soak: 300 * time.Millisecond, Timeout: 90 * time.Second})
			if err != nil {
				return err
			}
			_, err = (&release.Promote{Clients: r.as, Plan: plan, SoakInterval: 100 * time.Millisecond}).Run(ctx)
			return err
		}},
		{"rollback", func() error {
			p, err := pipeline.NewRollback(pipeline.RollbackInput{Target: targets.Canary, ChartDir: chartDir, Overrides: r.overrides(), Timeout: 60 * time.Second})
			if err != nil {
				return err
			}
			_, err = (&release.Rollback{Clients: r.as, Plan: p}).Run(ctx)
			return err
		}},
	}
	for _, name := range which {
		i := slices.IndexFunc(steps, func(s step) bool { return s.name == name })
		if i < 0 {
			r.t.Fatalf("no verb %q in the RBAC scenario", name)
		}
		if err := steps[i].run(); err != nil {
			return name, err
		}
	}
	return "", nil
}

// step is one verb of the RBAC scenario.
type step struct {
	name string
	run  func() error
}

// notExercised are permissions the Role grants for paths the scenario of
// everyVerb does not take, each with its reason. Every other granted
// permission must show up in the requests the scenario makes.
var notExercised = map[string]string{
	"list /events":                                "a failed rollout's explanation reads the failing pods' events (integration/explain_test.go, TestExplanationReadsEventsAsTheDeployAccount)",
	"create /pods/portforward":                    "the API server authorizes a websocket port-forward as create too, and the SPDY fallback is a create",
	"list apps/deployments":                       "the rollout watch's informers list when the API server cannot stream a watch's initial state",
	"list apps/replicasets":                       "the rollout watch's informers list when the API server cannot stream a watch's initial state",
	"update coordination.k8s.io/leases":           "the lock renews its lease during rollouts longer than a third of its TTL",
	"get coordination.k8s.io/leases":              "the lock reads its lease only when creating it finds one (another run holds it, or a dead run left it)",
	"delete /secrets":                             "pruning Secret versions no kept revision references, and Helm's history limit",
	"patch /services":                             "a promote after a values change to the Service",
	"patch networking.k8s.io/ingresses":           "a promote after a values change to the Ingress",
	"patch policy/poddisruptionbudgets":           "a promote after a values change to the PodDisruptionBudget",
	"patch autoscaling/horizontalpodautoscalers":  "a promote after a values change to autoscaling",
	"delete /services":                            "Helm deletes objects a new revision no longer renders, and a failed first install",
	"delete apps/deployments":                     "Helm deletes objects a new revision no longer renders, and a failed first install",
	"delete networking.k8s.io/ingresses":          "Helm deletes objects a new revision no longer renders (ingress turned off)",
	"delete policy/poddisruptionbudgets":          "Helm deletes objects a new revision no longer renders (budget turned off)",
	"delete autoscaling/horizontalpodautoscalers": "Helm deletes objects a new revision no longer renders (autoscaling turned off)",
}

func TestRBACRoleIsEnoughForEveryVerbAndUsedWhole(t *testing.T) {
	role, _ := loadRBAC(t, deployerRole)
	r := newRBACEnv(t, deployerRole, role.Rules)
	step, err := r.everyVerb()
	assert.NilError(t, err, "%s as the Role's subject", step)

	// Nothing was asked for that the Role lacks, and every permission it
	// grants was used or has a stated reason.
	used := r.log.list()
	t.Logf("requests made: %q", used)
	checkUsedWhole(t, role.Rules, r.log, notExercised)

	// The module's objects really exist: promote created the autoscaler.
	_, err = r.kube.AutoscalingV2().HorizontalPodAutoscalers(r.ns).Get(context.Background(), "dv-pipecat", metav1.GetOptions{})
	assert.NilError(t, err)
}

// bestEffort are rules no verb fails without: what they read only makes
// an error say more. Each has a test of its own that shows what it adds.
var bestEffort = map[string]string{
	"/events": "without it a failed rollout's explanation says it could not read the pods' events: TestExplanationReadsEventsAsTheDeployAccount",
}

func TestRBACEveryRuleIsNeeded(t *testing.T) {
	role, _ := loadRBAC(t, deployerRole)
	for i, rule := range role.Rules {
		name := strings.Join(rule.APIGroups, ",") + "/" + strings.Join(rule.Resources, ",")
		t.Run(strings.TrimPrefix(name, "/"), func(t *testing.T) {
			if why := bestEffort[name]; why != "" {
				t.Skip(why)
			}
			t.Parallel()
			rules := slices.Delete(slices.Clone(role.Rules), i, i+1)
			r := newRBACEnv(t, deployerRole, rules)
			step, err := r.everyVerb()
			assertRefused(t, r, name, step, err)
		})
	}
}

// assertRefused fails unless a scenario without the rule for name failed
// for lack of permission.
func assertRefused(t *testing.T, r *rbacEnv, name, step string, err error) {
	t.Helper()
	assert.Assert(t, err != nil, "every verb works without the rule for %s: remove it from %s", name, rbacFile)
	// Some verbs report a refused watch as a timeout: what shows the
	// failure is for lack of permission is the 403 the API server sent
	// (a refused websocket upgrade is seen only in the error).
	refused := r.log.refused()
	assert.Assert(t, len(refused) > 0 || strings.Contains(err.Error(), "is forbidden: User"), "%s failed, but not for lack of permission: %v", step, err)
	t.Logf("without %s: %s fails (refused: %s): %v", name, step, strings.Join(refused, ", "), err)
}
