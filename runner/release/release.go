// Package release executes the pipeline's plans against a cluster with the
// Helm v3 SDK: deploy (upgrade or install, watch the rollout, roll back on
// failure), promote (gate on the canary, then upgrade stable with its digest),
// rollback, status and plan (render, server-side dry-run, diff). One struct
// per verb with a Run method; every change happens under the release's lock,
// after everything was validated and rendered.
package release

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	helmkube "helm.sh/helm/v3/pkg/kube"
	hrelease "helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ringg/ringg-ci/runner/kube"
	"github.com/ringg/ringg-ci/ci/pipeline"
)

// Clients are what every verb talks to the cluster with.
type Clients struct {
	// Config reaches the cluster (GKE token transport, kubeconfig...).
	Config *rest.Config
	// Kube is a clientset for Config; built from it when nil.
	Kube kubernetes.Interface
	// Logger receives progress and Helm's debug log; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (c Clients) withDefaults() (Clients, error) {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Kube == nil {
		if c.Config == nil {
			return c, errors.New("no cluster connection: set Clients.Config")
		}
		cfg := rest.CopyConfig(c.Config)
		if cfg.QPS == 0 {
			cfg.QPS, cfg.Burst = 50, 100
		}
		k, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return c, fmt.Errorf("build kubernetes client: %w", err)
		}
		c.Kube = k
	}
	return c, nil
}

// helmConfig returns a Helm action configuration for namespace, with the
// Secret storage driver and Helm's log routed to the logger.
func (c Clients) helmConfig(namespace string) (*action.Configuration, error) {
	if c.Config == nil {
		return nil, errors.New("no cluster connection: set Clients.Config")
	}
	cfg := new(action.Configuration)
	if err := cfg.Init(kube.NewGetter(c.Config, namespace), namespace, "secret", helmLog(c.Logger)); err != nil {
		return nil, fmt.Errorf("set up helm for namespace %s: %w", namespace, err)
	}
	if kc, ok := cfg.KubeClient.(*helmkube.Client); ok {
		kc.Namespace = namespace
	}
	return cfg, nil
}

// helmLog adapts the logger to the printf-style log v3 actions call
// unconditionally (a nil one panics).
func helmLog(l *slog.Logger) action.DebugLog {
	return func(format string, v ...any) {
		l.Debug(fmt.Sprintf(format, v...), "component", "helm")
	}
}

// Progress is one report of a rollout in progress.
type Progress struct {
	Target  string `json:"target"`
	Release string `json:"release"`
	// Phase is "rollout" or "rollback".
	Phase string `json:"phase"`
	kube.RolloutProgress
}

// String reads "canary rollout: 1/2 ready, 2/2 updated (40s)", with the
// wave, the pods draining and pending and for how long nothing has moved
// when the watch knows them: "stable rollout, wave 2/4: 15/60 ready, 31/60
// updated, 30 old, 15 draining, 16 pending (Unschedulable: 0/2 nodes are
// available: 2 Insufficient cpu.) (6m12s; no progress for 3m1s, a wave may
// take 6m30s)".
func (p Progress) String() string {
	wave := ""
	if p.Waves > 0 {
		wave = fmt.Sprintf(", wave %d/%d", p.Wave, p.Waves)
	}
	idle := ""
	if p.Stall > 0 && p.Idle >= p.Stall/10 {
		idle = fmt.Sprintf("; no progress for %s, a wave may take %s", roundFor(p.Idle, p.Stall), roundFor(p.Stall, p.Stall))
	}
	return fmt.Sprintf("%s %s%s: %s (%s%s)", p.Target, p.Phase, wave, p.RolloutProgress, roundFor(p.Elapsed, p.Stall), idle)
}

// roundFor rounds d to seconds, or to hundredths of a second on a
// scaled-down run whose whole wave lasts seconds.
func roundFor(d, wave time.Duration) time.Duration {
	if wave > 0 && wave < time.Minute {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// last returns the newest record of a release, or nil when it has none.
func last(cfg *action.Configuration, name string) (*hrelease.Release, error) {
	rel, err := cfg.Releases.Last(name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read history of release %s: %w", name, err)
	}
	return rel, nil
}

// recoverPending marks a release's last record failed when a killed run left
// it pending-install, -upgrade or -rollback: with the lock held, no run is
// working on it, and Helm refuses every later operation until it is resolved.
// It returns a description of what it did ("" when nothing), and the last
// record as it now stands (nil when the release has none), so callers need
// not read the history again.
func recoverPending(cfg *action.Configuration, name, holder string, log *slog.Logger) (string, *hrelease.Release, error) {
	rel, err := last(cfg, name)
	if err != nil || rel == nil || !rel.Info.Status.IsPending() {
		return "", rel, err
	}
	was := rel.Info.Status
	rel.Info.Status = hrelease.StatusFailed
	rel.Info.Description = fmt.Sprintf("interrupted while %s; marked failed by %s", was, holder)
	if err := cfg.Releases.Update(rel); err != nil {
		return "", nil, fmt.Errorf("mark interrupted revision %d of release %s failed: %w", rel.Version, name, err)
	}
	msg := fmt.Sprintf("revision %d of release %s was left %s by an interrupted run: marked failed", rel.Version, name, was)
	log.Warn("recovered interrupted release", "release", name, "revision", rel.Version, "was", string(was))
	return msg, rel, nil
}

// statusRetries are the pauses before setStatus tries a failed write again:
// 30 s in all, longer than an API server takes to restart on a busy node.
var statusRetries = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second}

// setStatus rewrites the status of one record. A write that fails for a
// passing reason (an API server restart, a refreshed token) is tried again
// for 30 s: the record must match the outcome, and after a good rollout the
// write is all that is left to do.
func setStatus(cfg *action.Configuration, rel *hrelease.Release, st hrelease.Status, desc string) error {
	rel.Info.Status = st
	rel.Info.Description = desc
	err := cfg.Releases.Update(rel)
	for _, pause := range statusRetries {
		if err == nil || !transient(err) {
			break
		}
		time.Sleep(pause)
		err = cfg.Releases.Update(rel)
	}
	if err == nil {
		return nil
	}
	return fmt.Errorf("record revision %d of release %s as %s: %w", rel.Version, rel.Name, st, err)
}

// transient tells errors worth retrying (the API server restarting, a token
// being replaced) from refusals that will not change (RBAC, validation).
func transient(err error) bool {
	return !apierrors.IsForbidden(err) && !apierrors.IsNotFound(err) && !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err)
}

// secretNamesOf reads the Secret names a release record was given.
func secretNamesOf(rel *hrelease.Release) pipeline.SecretNames {
	if rel == nil {
		return pipeline.SecretNames{}
	}
	m, _ := rel.Config["secrets"].(map[string]any)
	a, _ := m["appEnv"].(string)
	g, _ := m["gcpCreds"].(string)
	return pipeline.SecretNames{AppEnv: a, GCPCreds: g}
}

// digestOf reads the image digest a release record was given.
func digestOf(rel *hrelease.Release) string {
	if rel == nil {
		return ""
	}
	m, _ := rel.Config["image"].(map[string]any)
	d, _ := m["digest"].(string)
	return d
}

// keptSecretNames returns the Secret names any kept revision of any release
// in the namespace references: those must survive a prune.
func keptSecretNames(cfg *action.Configuration) (map[string]bool, error) {
	all, err := cfg.Releases.ListReleases()
	if err != nil {
		return nil, fmt.Errorf("list release records: %w", err)
	}
	keep := map[string]bool{}
	for _, rel := range all {
		n := secretNamesOf(rel)
		for _, v := range []string{n.AppEnv, n.GCPCreds} {
			if v != "" {
				keep[v] = true
			}
		}
	}
	return keep, nil
}

// oneLine folds Helm's multi-line errors onto one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// bounded returns a context that survives ctx's cancellation, for clean-up
// after an interruption, limited to d.
func bounded(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}
