// Package targets describes where the chatbot runs: each environment (staging,
// canary, stable) is one entry of data, and a branch maps to at most one of
// them. Adding one is an entry here, its values file in the chart and its
// constant in the face's Target enum; the runner decides from the entries.
package targets

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Name identifies a target.
type Name string

// The targets of the production setup.
const (
	Staging Name = "staging"
	Canary  Name = "canary"
	Stable  Name = "stable"
)

// Cluster locates a GKE cluster.
type Cluster struct {
	Project  string // GCP project that owns the cluster
	Location string // zone (asia-south1-a) or region (us-east1)
	Name     string
}

// Target is one environment the chatbot is deployed to.
type Target struct {
	Name Name
	// Branch deploys this target on push; empty for targets reached only by
	// promotion.
	Branch string
	// Platforms the image is built for, as OCI platform strings.
	Platforms []string
	// Image is the repository the image is pushed to, without tag or digest.
	Image   string
	Cluster Cluster
	// Namespace holds the release, its Secrets and its lock.
	Namespace string
	// Release is the Helm release name; it is also the Deployment's name and
	// part of its immutable selector.
	Release string
	// ValuesFiles are applied in order on top of the chart's values.yaml; paths
	// are relative to the chart directory.
	ValuesFiles []string
	// Track is the pod's `version` label (the chart's releaseTrack).
	Track string
	// PromotesTo names the target that receives this target's image on
	// promotion; empty when the target is not promoted anywhere.
	PromotesTo Name
	// MaxManualReplicas caps manual scaling; zero means no cap beyond the
	// operator's judgement.
	MaxManualReplicas int
	// Identity is who GitHub Actions acts as for this target. Each target
	// has its own, so a push to dv-stage never holds a token that can
	// touch production, and a push to dv-main holds only the canary's
	// (docs/security.md).
	Identity Identity
	// Verification judges the target's pods by what callers see: the
	// synthetic calls a deploy places after its rollout and promote's gate
	// places during the soak, and the metrics the gate compares with the
	// target it promotes to.
	Verification Verification
}

// Identity is a Workload Identity Federation provider and the service
// account a GitHub OIDC token is exchanged for.
type Identity struct {
	// Provider is projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER.
	Provider string `json:"provider"`
	// ServiceAccount is the email of the service account impersonated.
	ServiceAccount string `json:"serviceAccount"`
	// Environment is the GitHub environment whose jobs may act as the
	// account: its roles/iam.workloadIdentityUser binding names
	// attribute.environment/<Environment>, and the workflow's job for the
	// target runs in it (checks/ compares both with this).
	Environment string `json:"environment"`
}

// The identities of the production setup, one per target. Staging keeps
// the old pipeline's pool and service account; production has its own pool,
// bound to dv-main and the production environments by the provider's
// attribute condition, and an account per track: the canary's, which a push
// to dv-main acts as, can change only the canary's objects in the cluster
// (deploy/rbac), and stable's can be had only in the `production`
// environment, behind its reviewers (docs/security.md has the gcloud
// commands that create them).
var (
	stagingIdentity = Identity{
		Provider:       "projects/623676891410/locations/global/workloadIdentityPools/desivocal-staging-pool/providers/github",
		ServiceAccount: "gke-githubactions-svc-stage@desivocalprod01.iam.gserviceaccount.com",
		Environment:    "staging",
	}
	canaryIdentity = Identity{
		Provider:       productionProvider,
		ServiceAccount: "gke-githubactions-svc-canary@desivocalprod01.iam.gserviceaccount.com",
		Environment:    "production-canary",
	}
	stableIdentity = Identity{
		Provider:       productionProvider,
		ServiceAccount: "gke-githubactions-svc-prod@desivocalprod01.iam.gserviceaccount.com",
		Environment:    "production",
	}
)

const (
	project         = "desivocalprod01"
	stagingRegistry = "asia-south1-docker.pkg.dev/desivocalprod01/ringg-registry-stage/dv-pipecat"
	prodRegistry    = "asia-south1-docker.pkg.dev/desivocalprod01/ringg-registry-prod/dv-pipecat"
	prodCluster     = "desivocal-prod-us-e1-cluster"

	productionProvider = "projects/623676891410/locations/global/workloadIdentityPools/desivocal-prod-pool/providers/github"
)

// All returns every known target, in deployment order. The result is a fresh
// copy: callers may modify it.
func All() []Target {
	return []Target{
		{
			Name:        Staging,
			Branch:      "dv-stage",
			Platforms:   []string{"linux/amd64"},
			Image:       stagingRegistry,
			Cluster:     Cluster{Project: project, Location: "asia-south1-a", Name: "desivocal-staging-cluster"},
			Namespace:   "default",
			Release:     "dv-pipecat",
			ValuesFiles: []string{"values-stage.yaml"},
			Track:       "stable",
			Identity:    stagingIdentity,
			// Staging's one pod gets a call after each deploy.
			Verification: Verification{Calls: defaultCalls()},
		},
		{
			Name:              Canary,
			Branch:            "dv-main",
			Platforms:         []string{"linux/arm64"},
			Image:             prodRegistry,
			Cluster:           Cluster{Project: project, Location: "us-east1", Name: prodCluster},
			Namespace:         "default",
			Release:           "dv-pipecat-canary",
			ValuesFiles:       []string{"values-prod.yaml", "values-canary.yaml"},
			Track:             "canary",
			PromotesTo:        Stable,
			MaxManualReplicas: 5,
			Identity:          canaryIdentity,
			// Calls after each deploy and through promote's soak. Metrics
			// are the team's to name (docs/operations.md, "Judging the
			// canary"): until queries are set here, the gate says it has
			// none and judges by Kubernetes and calls.
			Verification: Verification{Calls: defaultCalls()},
		},
		{
			Name:        Stable,
			Platforms:   []string{"linux/arm64"},
			Image:       prodRegistry,
			Cluster:     Cluster{Project: project, Location: "us-east1", Name: prodCluster},
			Namespace:   "default",
			Release:     "dv-pipecat",
			ValuesFiles: []string{"values-prod.yaml"},
			Track:       "stable",
			Identity:    stableIdentity,
		},
	}
}

// ErrUnknown is returned for a target name or branch that no target has.
var ErrUnknown = errors.New("unknown target")

// Get returns the target called name.
func Get(name Name) (Target, error) {
	all := All()
	i := slices.IndexFunc(all, func(t Target) bool { return t.Name == name })
	if i < 0 {
		return Target{}, fmt.Errorf("%w %q: use one of %s", ErrUnknown, name, strings.Join(names(all), ", "))
	}
	return all[i], nil
}

// ForBranch returns the target deployed when branch is pushed.
func ForBranch(branch string) (Target, error) {
	all := All()
	i := slices.IndexFunc(all, func(t Target) bool { return t.Branch != "" && t.Branch == branch })
	if i < 0 {
		return Target{}, fmt.Errorf("%w: branch %q deploys nothing: known branches are %s", ErrUnknown, branch, strings.Join(Branches(), ", "))
	}
	return all[i], nil
}

// Branches lists the branches that deploy a target, in deployment order.
func Branches() []string {
	var bs []string
	for _, t := range All() {
		if t.Branch != "" {
			bs = append(bs, t.Branch)
		}
	}
	return bs
}

func names(ts []Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t.Name)
	}
	return out
}

// Overrides replace parts of a target for another installation of the
// pipeline (another project, registry, cluster or namespace). Empty fields
// keep the target's own value.
type Overrides struct {
	Project         string
	Image           string
	ClusterName     string
	ClusterLocation string
	Namespace       string
	// Identity replaces the target's provider and service account, field by
	// field.
	Identity Identity
	// Verification replaces the target's calls, its metrics, or both (the
	// parts it has); metrics only of a target that promotes to another,
	// the one they compare it with.
	Verification *Verification
	// MetricsURL replaces the Prometheus API the target's metrics are read
	// from.
	MetricsURL string
}

// With returns t with the non-empty fields of o applied. Project changes only
// the project of the cluster; the image repository is overridden on its own.
func (t Target) With(o Overrides) Target {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&t.Cluster.Project, o.Project)
	set(&t.Image, o.Image)
	set(&t.Cluster.Name, o.ClusterName)
	set(&t.Cluster.Location, o.ClusterLocation)
	set(&t.Namespace, o.Namespace)
	set(&t.Identity.Provider, o.Identity.Provider)
	set(&t.Identity.ServiceAccount, o.Identity.ServiceAccount)
	t.Platforms = slices.Clone(t.Platforms)
	t.ValuesFiles = slices.Clone(t.ValuesFiles)
	if v := o.Verification; v != nil {
		if t.PromotesTo == "" {
			v = &Verification{Calls: v.Calls}
		}
		t.Verification = t.Verification.Over(*v)
	}
	if o.MetricsURL != "" && t.Verification.Metrics != nil {
		m := *t.Verification.Metrics
		m.URL = o.MetricsURL
		t.Verification.Metrics = &m
	}
	return t
}

// Validate reports every problem with t at once; an override may have made a
// field empty or malformed.
func (t Target) Validate() error {
	var errs []error
	need := func(field, v string) {
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("target %s: %s is empty: set it or drop the override", t.Name, field))
		}
	}
	need("release", t.Release)
	need("namespace", t.Namespace)
	need("image", t.Image)
	need("cluster project", t.Cluster.Project)
	need("cluster location", t.Cluster.Location)
	need("cluster name", t.Cluster.Name)
	if last := t.Image[strings.LastIndex(t.Image, "/")+1:]; strings.Contains(t.Image, "@") || strings.Contains(last, ":") {
		errs = append(errs, fmt.Errorf("target %s: image %q must be a repository without tag or digest, e.g. asia-south1-docker.pkg.dev/PROJECT/REPO/IMAGE", t.Name, t.Image))
	}
	if len(t.Platforms) == 0 {
		errs = append(errs, fmt.Errorf("target %s: no platforms", t.Name))
	}
	if err := t.Verification.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("target %s: verification: %w", t.Name, err))
	}
	if t.Verification.Metrics != nil && len(t.Verification.Metrics.Queries) > 0 && t.PromotesTo == "" {
		errs = append(errs, fmt.Errorf("target %s: metrics compare a target with the one it promotes to, and %s promotes nowhere: drop its metrics", t.Name, t.Name))
	}
	return errors.Join(errs...)
}
