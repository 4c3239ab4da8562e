package checks

import (
	"os"
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
// here and in the docs.
var iamCalls = []struct {
	call, role, file, evidence string
}{
	{"iamcredentials generateAccessToken (impersonation)", "roles/iam.workloadIdentityUser", "../runner/gcpauth/github.go", ":generateAccessToken"},
	{"GKE clusters.get (endpoint and CA)", "roles/container.clusterViewer", "../runner/gcpauth/gke.go", "/clusters/"},
	{"image push to Artifact Registry", "roles/artifactregistry.writer", "../ci/build.go", "WithRegistryAuth(t.RegistryHost, \"oauth2accesstoken\""},
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
	var want []string
	for _, c := range iamCalls {
		want = append(want, c.role)
	}
	accounts := map[string][]targets.Target{}
	for _, tg := range targets.All() {
		account, _, _ := strings.Cut(tg.Identity.ServiceAccount, "@")
		accounts[account] = append(accounts[account], tg)
	}
	for account, ts := range accounts {
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
						assert.Check(t, is.Contains(r.on, pool), "%s is impersonated only through %s's pool", account, tg.Name)
					}
				}
			}
			assert.Check(t, !slices.Contains(tooBroad, r.role), "%s is broader than any call needs", r.role)
		}
		slices.Sort(roles)
		sortedWant := slices.Sorted(slices.Values(want))
		assert.DeepEqual(t, roles, sortedWant)
	}
	assert.Check(t, len(accounts) >= 2, "staging and production use different accounts")

	role, err := os.ReadFile("../deploy/rbac/role.yaml")
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(role), "docs/security.md"), "the Role points at the IAM roles it needs")
	assert.Check(t, !strings.Contains(string(role), "nothing more from IAM"), "the Role's header must not claim it needs no IAM roles")
}
