package checks

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/ringg/ringg-ci/ci/targets"
)

// iamCalls are the Google calls the code makes, each with the one predefined
// role that allows it and where the code makes it. If the code stops making
// a call, its role must go from the docs; if it makes a new one, it belongs
// here and in the docs. builds marks the call only the targets deployed on
// a push make (they build and push the image); promote and rollback only
// move digests already in the registry.
var iamCalls = []struct {
	call, role, file, evidence string
	builds                     bool
}{
	{"iamcredentials generateAccessToken (impersonation)", "roles/iam.workloadIdentityUser", "../runner/gcpauth/github.go", ":generateAccessToken", false},
	{"GKE clusters.get (endpoint and CA)", "roles/container.clusterViewer", "../runner/gcpauth/gke.go", "/clusters/", false},
	{"image push to Artifact Registry", "roles/artifactregistry.writer", "../ci/build.go", "WithRegistryAuth(host, registryUser,", true},
}

// tooBroad are roles that would grant more than the code needs; GKE's
// container roles would make the namespaced Role moot.
var tooBroad = []string{"roles/container.developer", "roles/container.admin", "roles/editor", "roles/owner",
	"roles/artifactregistry.admin", "roles/iam.serviceAccountTokenCreator"}

// iamRow is one line of the machine-checked table in docs/security.md.
type iamRow struct{ account, role, on string }

func iamTable(t *testing.T) []iamRow {
	t.Helper()
	raw, err := os.ReadFile("../docs/security.md")
	assert.NilError(t, err)
	_, rest, ok := strings.Cut(string(raw), "<!-- iam:begin -->")
	assert.Assert(t, ok, "docs/security.md has the IAM table between its markers")
	table, _, ok := strings.Cut(rest, "<!-- iam:end -->")
	assert.Assert(t, ok)
	var rows []iamRow
	for _, line := range strings.Split(strings.TrimSpace(table), "\n")[2:] {
		cells := strings.Split(strings.Trim(line, "| "), "|")
		assert.Assert(t, len(cells) == 4, "row %q has 4 cells", line)
		rows = append(rows, iamRow{strings.TrimSpace(cells[0]), strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])})
	}
	return rows
}

// The documented IAM roles are exactly what the code calls, for every
// identity a target uses, scoped to that target's resources.
func TestIAMDocsMatchTheCallsOfTheCode(t *testing.T) {
	for _, c := range iamCalls {
		src, err := os.ReadFile(c.file)
		assert.NilError(t, err)
		assert.Check(t, strings.Contains(string(src), c.evidence), "%s: %s no longer makes %s; drop %s from docs/security.md or update this check", c.file, c.evidence, c.call, c.role)
	}
	rows := iamTable(t)
	accounts := map[string][]targets.Target{}
	for _, tg := range targets.All() {
		account, _, _ := strings.Cut(tg.Identity.ServiceAccount, "@")
		accounts[account] = append(accounts[account], tg)
	}
	for account, ts := range accounts {
		var want []string
		for _, c := range iamCalls {
			for _, tg := range ts {
				if (!c.builds || tg.Branch != "") && !slices.Contains(want, c.role) {
					want = append(want, c.role)
				}
			}
		}
		var roles []string
		for _, r := range rows {
			if r.account == account {
				roles = append(roles, r.role)
				for _, tg := range ts {
					switch r.role {
					case "roles/artifactregistry.writer":
						repo := strings.Split(tg.Image, "/")[2]
						assert.Check(t, is.Contains(r.on, "repository `"+repo+"`"), "%s writes only to %s's repository", account, tg.Name)
					case "roles/container.clusterViewer":
						assert.Check(t, is.Contains(r.on, "cluster `"+tg.Cluster.Name+"`"), "%s sees only %s's cluster", account, tg.Name)
					case "roles/iam.workloadIdentityUser":
						pool := regexp.MustCompile(`workloadIdentityPools/([^/]+)/`).FindStringSubmatch(tg.Identity.Provider)[1]
						member := pool + "/attribute.environment/" + tg.Identity.Environment + "`"
						assert.Check(t, is.Contains(r.on, member), "%s is impersonated only through %s's pool, from its environment %s", account, tg.Name, tg.Identity.Environment)
					}
				}
			}
			assert.Check(t, !slices.Contains(tooBroad, r.role), "%s is broader than any call needs", r.role)
		}
		slices.Sort(roles)
		slices.Sort(want)
		assert.Check(t, is.DeepEqual(roles, want), "the IAM roles of %s in docs/security.md", account)
	}
	for _, r := range rows {
		_, ok := accounts[r.account]
		assert.Check(t, ok, "docs/security.md grants %s to %s, which no target uses", r.role, r.account)
	}
	assert.Check(t, len(accounts) == len(targets.All()), "every target acts as an account of its own")

	files, err := filepath.Glob("../deploy/rbac/*.yaml")
	assert.NilError(t, err)
	for _, f := range files {
		role, err := os.ReadFile(f)
		assert.NilError(t, err)
		assert.Check(t, is.Contains(string(role), "docs/security.md"), "%s points at the IAM roles it needs", f)
		assert.Check(t, !strings.Contains(string(role), "nothing more from IAM"), "%s must not claim it needs no IAM roles", f)
	}
}
