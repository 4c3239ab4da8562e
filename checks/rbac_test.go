package checks

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/ringg/ringg-ci/ci/targets"
)

// rbacDir holds one file per cluster, deploy/rbac/<cluster name>.yaml: what
// docs/security.md and docs/operations.md say to apply in that cluster.
const rbacDir = "../deploy/rbac"

// roleOf is the Role each target's account is bound to.
var roleOf = map[targets.Name]string{
	targets.Staging: "ringg-ci-deployer",
	targets.Canary:  "ringg-ci-canary-deployer",
	targets.Stable:  "ringg-ci-deployer",
}

// rbacFile is the Roles and RoleBindings of one file.
type rbacFile struct {
	roles    map[string]rbacv1.Role
	bindings []rbacv1.RoleBinding
}

// readRBACDir reads every file of dir, by base name without .yaml.
func readRBACDir(t *testing.T, dir string) map[string]rbacFile {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*"))
	assert.NilError(t, err)
	files := map[string]rbacFile{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		assert.NilError(t, err)
		f := rbacFile{roles: map[string]rbacv1.Role{}}
		for doc := range strings.SplitSeq(string(raw), "\n---\n") {
			var meta metav1.TypeMeta
			assert.NilError(t, yaml.Unmarshal([]byte(doc), &meta), p)
			switch meta.Kind {
			case "Role":
				var r rbacv1.Role
				assert.NilError(t, yaml.UnmarshalStrict([]byte(doc), &r), p)
				f.roles[r.Name] = r
			case "RoleBinding":
				var b rbacv1.RoleBinding
				assert.NilError(t, yaml.UnmarshalStrict([]byte(doc), &b), p)
				f.bindings = append(f.bindings, b)
			default:
				t.Fatalf("%s: unexpected kind %q: only Roles and RoleBindings belong there", p, meta.Kind)
			}
		}
		files[strings.TrimSuffix(filepath.Base(p), ".yaml")] = f
	}
	return files
}

// rbacProblems checks each cluster's file against the targets: it binds the
// account of every target in that cluster to the Role the target needs, and
// no other account, so that applying a cluster's file never grants another
// cluster's account anything (staging's in production above all). A Role
// shipped in several files is the same everywhere.
func rbacProblems(files map[string]rbacFile, all []targets.Target) []string {
	var problems []string
	clusterOf := map[string][]targets.Target{}
	for _, tg := range all {
		clusterOf[tg.Cluster.Name] = append(clusterOf[tg.Cluster.Name], tg)
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range files {
			if !yield(n) {
				return
			}
		}
	}) {
		f := files[name]
		here, ok := clusterOf[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s.yaml: no target runs in a cluster of that name; name each file after the cluster it is applied in (deploy/rbac/<cluster>.yaml)", name))
			continue
		}
		bound := map[string]string{} // account → Role
		names := map[string]bool{}
		for _, b := range f.bindings {
			if names[b.Name] {
				problems = append(problems, fmt.Sprintf("%s.yaml: two RoleBindings are named %s: kubectl apply keeps only the last; give each its own name", name, b.Name))
			}
			names[b.Name] = true
			if b.RoleRef.Kind != "Role" || f.roles[b.RoleRef.Name].Name == "" {
				problems = append(problems, fmt.Sprintf("%s.yaml: RoleBinding %s refers to %s %s, which the file does not define", name, b.Name, b.RoleRef.Kind, b.RoleRef.Name))
			}
			for _, s := range b.Subjects {
				i := slices.IndexFunc(here, func(tg targets.Target) bool { return tg.Identity.ServiceAccount == s.Name })
				if s.Kind != "User" || i < 0 {
					owner := "no target"
					for _, tg := range all {
						if tg.Identity.ServiceAccount == s.Name {
							owner = fmt.Sprintf("the account of %s (cluster %s)", tg.Name, tg.Cluster.Name)
						}
					}
					problems = append(problems, fmt.Sprintf("%s.yaml: RoleBinding %s binds %s %s, %s, to %s in %s: bind only the accounts of the targets in this cluster", name, b.Name, s.Kind, s.Name, owner, b.RoleRef.Name, name))
					continue
				}
				bound[s.Name] = b.RoleRef.Name
			}
		}
		for _, tg := range here {
			want := roleOf[tg.Name]
			if want == "" {
				problems = append(problems, fmt.Sprintf("target %s: checks/rbac_test.go does not say which Role its account needs: add it to roleOf", tg.Name))
				continue
			}
			if got := bound[tg.Identity.ServiceAccount]; got != want {
				problems = append(problems, fmt.Sprintf("%s.yaml: %s's account %s is bound to %q, want Role %s", name, tg.Name, tg.Identity.ServiceAccount, got, want))
			}
		}
	}
	for cluster := range clusterOf {
		if _, ok := files[cluster]; !ok {
			problems = append(problems, fmt.Sprintf("no RBAC file for cluster %s: add deploy/rbac/%s.yaml", cluster, cluster))
		}
	}
	// The same Role in every file that ships it.
	seen := map[string]string{}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range files {
			if !yield(n) {
				return
			}
		}
	}) {
		for _, r := range files[name].roles {
			if first, ok := seen[r.Name]; ok {
				if !equality.Semantic.DeepEqual(r.Rules, files[first].roles[r.Name].Rules) {
					problems = append(problems, fmt.Sprintf("Role %s differs between %s.yaml and %s.yaml: keep one set of rules", r.Name, first, name))
				}
				continue
			}
			seen[r.Name] = name
		}
	}
	slices.Sort(problems)
	return problems
}

func TestRBACFilePerClusterBindsOnlyItsAccounts(t *testing.T) {
	files := readRBACDir(t, rbacDir)
	assert.DeepEqual(t, rbacProblems(files, targets.All()), []string(nil))
	// What integration/rbac_test.go proves on a real API server is what
	// ships: the production file holds both Roles.
	prod := files["desivocal-prod-us-e1-cluster"]
	assert.Check(t, prod.roles["ringg-ci-deployer"].Name != "" && prod.roles["ringg-ci-canary-deployer"].Name != "")
}

// The file every cluster was told to apply before issue 24 bound staging's
// account; in production that is a problem the check names.
func TestRBACCheckRefusesStagingAccountInProduction(t *testing.T) {
	files := readRBACDir(t, "testdata/rbac/role-yaml-applied-in-production")
	problems := rbacProblems(files, targets.All())
	assert.DeepEqual(t, problems, []string{
		"desivocal-prod-us-e1-cluster.yaml: RoleBinding ringg-ci-deployer binds User gke-githubactions-svc-stage@desivocalprod01.iam.gserviceaccount.com, the account of staging (cluster desivocal-staging-cluster), to ringg-ci-deployer in desivocal-prod-us-e1-cluster: bind only the accounts of the targets in this cluster",
		`desivocal-prod-us-e1-cluster.yaml: canary's account gke-githubactions-svc-canary@desivocalprod01.iam.gserviceaccount.com is bound to "", want Role ringg-ci-canary-deployer`,
		`desivocal-prod-us-e1-cluster.yaml: stable's account gke-githubactions-svc-prod@desivocalprod01.iam.gserviceaccount.com is bound to "", want Role ringg-ci-deployer`,
		"no RBAC file for cluster desivocal-staging-cluster: add deploy/rbac/desivocal-staging-cluster.yaml",
	})
}
