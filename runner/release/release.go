// Package release runs the runner's verbs against a cluster with the Helm v3
// SDK, one struct per verb with a Run method, as Helm's pkg/action: Deploy,
// Promote, Rollback, Status, Plan, Takeover and Scale. Every change happens
// under the release's lock, after everything was validated and rendered.
package release

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"helm.sh/helm/v3/pkg/action"
	helmkube "helm.sh/helm/v3/pkg/kube"
	hrelease "helm.sh/helm/v3/pkg/release"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/runner/kube"
	"github.com/ringg/ringg-ci/runner/lock"
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
	// Cluster names the cluster Config reaches (kubeconfig context and
	// server, or GKE cluster), for results and errors a person reads.
	Cluster string

	// fence stops Helm's writes once the run's lock is lost.
	fence *fence
}

// fence refuses every request that changes the cluster, made through a
// Helm configuration, once the lock the run holds is lost: Helm writes its
// records and applies objects in one action that cannot be interrupted, so
// a run cut off from the API server for longer than the lock's lease must
// not resume it unprotected.
type fence struct {
	mu   sync.Mutex
	held *lock.Held
}

func (f *fence) hold(h *lock.Held) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held = h
}

func (f *fence) check() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held == nil {
		return nil
	}
	return f.held.Check()
}

type fenced struct {
	base http.RoundTripper
	f    *fence
}

func (t fenced) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		if err := t.f.check(); err != nil {
			return nil, fmt.Errorf("refused to %s %s without the release's lock: %w", req.Method, req.URL.Path, err)
		}
	}
	return t.base.RoundTrip(req)
}

// WrappedRoundTripper lets client-go see the transport underneath.
func (t fenced) WrappedRoundTripper() http.RoundTripper { return t.base }

func (c Clients) withDefaults() (Clients, error) {
	if c.fence == nil {
		c.fence = &fence{}
	}
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
	rc := rest.CopyConfig(c.Config)
	if c.fence != nil {
		rc.Wrap(func(rt http.RoundTripper) http.RoundTripper { return fenced{base: rt, f: c.fence} })
	}
	cfg := new(action.Configuration)
	if err := cfg.Init(kube.NewGetter(rc, namespace), namespace, "secret", helmLog(c.Logger)); err != nil {
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

// setStatus rewrites the status and description of one record. A write
// that fails for a passing reason (an API server restart, a refreshed token)
// is tried again for 30 s: the record must match the outcome, and after a
// good rollout the write is all that is left to do.
func setStatus(cfg *action.Configuration, rel *hrelease.Release, st hrelease.Status, desc string) error {
	rel.Info.Status = st
	rel.Info.Description = desc
	err := retry.OnError(statusBackoff, transient, func() error { return cfg.Releases.Update(rel) })
	if err != nil {
		return fmt.Errorf("record revision %d of release %s as %s: %w", rel.Version, rel.Name, st, err)
	}
	return nil
}

// statusBackoff spaces setStatus's attempts: 30 s in all, longer than an
// API server takes to restart on a busy node.
var statusBackoff = wait.Backoff{Duration: time.Second, Factor: 2, Steps: 6, Cap: 15 * time.Second}

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
// in the namespace references, and those a takeover record keeps for a
// rollback: those must survive a prune.
func keptSecretNames(ctx context.Context, c Clients, cfg *action.Configuration, namespace string) (map[string]bool, error) {
	all, err := cfg.Releases.ListReleases()
	if err != nil {
		return nil, fmt.Errorf("list release records: %w", err)
	}
	keep := map[string]bool{}
	add := func(n pipeline.SecretNames) {
		for _, v := range []string{n.AppEnv, n.GCPCreds} {
			if v != "" {
				keep[v] = true
			}
		}
	}
	for _, rel := range all {
		add(secretNamesOf(rel))
	}
	recs, err := takeoverRecords(ctx, c.Kube, namespace)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		add(r.SecretNames)
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
