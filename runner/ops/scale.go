package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/storage/driver"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/ringg/ringg-ci/ci/targets"
)

// ErrRefused is returned when a scale is not allowed; nothing was changed.
var ErrRefused = errors.New("scale refused")

// ScaleOptions configure Scale.
type ScaleOptions struct {
	// Wait, when positive, waits this long for the new replica count to be
	// ready; zero returns right after the change.
	Wait time.Duration
	// Logger receives progress while waiting; nil discards it.
	Logger *slog.Logger
}

// ScaleResult is a manual scale of a target's Deployment.
type ScaleResult struct {
	Target     string `json:"target"`
	Namespace  string `json:"namespace"`
	Deployment string `json:"deployment"`
	From       int32  `json:"from"`
	To         int32  `json:"to"`
	// ChartReplicas is the replica count of the deployed release, which the
	// next deploy or promote restores; 0 when the record could not be read.
	ChartReplicas int32 `json:"chartReplicas"`
	// Ready is the number of ready replicas when Scale returned.
	Ready int32 `json:"ready"`
}

// String says what changed and that it does not last.
func (r ScaleResult) String() string {
	restores := "the chart's replica count"
	if r.ChartReplicas > 0 {
		restores = fmt.Sprintf("%d replicas from the chart", r.ChartReplicas)
	}
	return fmt.Sprintf("scaled deployment %s of %s in %s from %d to %d replicas (%d ready)\n"+
		"temporary: the next deploy/promote restores %s; change replicaCount in the values file to make it last\n",
		r.Deployment, r.Target, r.Namespace, r.From, r.To, r.Ready, restores)
}

// Scale sets the replica count of t's Deployment through its scale
// subresource. It refuses (ErrRefused) a negative count, a count above
// t.MaxManualReplicas, and any change while a HorizontalPodAutoscaler
// targets the Deployment, which would undo it.
func Scale(ctx context.Context, c kubernetes.Interface, t targets.Target, replicas int, opts ScaleOptions) (ScaleResult, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	res := ScaleResult{Target: string(t.Name), Namespace: t.Namespace, Deployment: t.Release, To: int32(replicas)}
	what := fmt.Sprintf("scale deployment %s of %s in %s to %d", t.Release, t.Name, t.Namespace, replicas)
	switch {
	case replicas < 0:
		return res, fmt.Errorf("%s: %w: replicas must be 0 or more", what, ErrRefused)
	case replicas > 1<<20:
		return res, fmt.Errorf("%s: %w: that is not a replica count", what, ErrRefused)
	case t.MaxManualReplicas > 0 && replicas > t.MaxManualReplicas:
		return res, fmt.Errorf("%s: %w: %s allows at most %d replicas by hand; to run more, change replicaCount in its values file and deploy",
			what, ErrRefused, t.Name, t.MaxManualReplicas)
	}
	hpas, err := c.AutoscalingV2().HorizontalPodAutoscalers(t.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return res, fmt.Errorf("%s: look for an autoscaler: %w", what, err)
	}
	for _, h := range hpas.Items {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind == "Deployment" && ref.Name == t.Release {
			return res, fmt.Errorf("%s: %w: HorizontalPodAutoscaler %s manages its replicas (%d to %d); change autoscaling in the values file and deploy instead",
				what, ErrRefused, h.Name, minReplicas(h.Spec.MinReplicas), h.Spec.MaxReplicas)
		}
	}
	deployments := c.AppsV1().Deployments(t.Namespace)
	scale, err := deployments.GetScale(ctx, t.Release, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return res, fmt.Errorf("%s: deployment %s does not exist: deploy %s first", what, t.Release, t.Name)
	}
	if err != nil {
		return res, fmt.Errorf("%s: %w", what, err)
	}
	res.From = scale.Spec.Replicas
	res.ChartReplicas = chartReplicas(c, t)
	if scale.Spec.Replicas != int32(replicas) {
		scale.Spec.Replicas = int32(replicas)
		if _, err := deployments.UpdateScale(ctx, t.Release, scale, metav1.UpdateOptions{}); err != nil {
			return res, fmt.Errorf("%s: %w", what, err)
		}
	}
	log.Info("scaled", "target", t.Name, "deployment", t.Release, "from", res.From, "to", replicas)
	if opts.Wait <= 0 {
		if d, err := deployments.Get(ctx, t.Release, metav1.GetOptions{}); err == nil {
			res.Ready = d.Status.ReadyReplicas
		}
		return res, nil
	}
	var last *appsv1.Deployment
	err = wait.PollUntilContextTimeout(ctx, time.Second, opts.Wait, true, func(ctx context.Context) (bool, error) {
		d, err := deployments.Get(ctx, t.Release, metav1.GetOptions{})
		if err != nil {
			return false, nil // transient; the timeout reports it
		}
		last = d
		log.Info("waiting for replicas", "target", t.Name, "ready", d.Status.ReadyReplicas, "desired", replicas)
		return d.Status.ObservedGeneration >= d.Generation && d.Status.ReadyReplicas == int32(replicas) && d.Status.Replicas == int32(replicas), nil
	})
	if last != nil {
		res.Ready = last.Status.ReadyReplicas
	}
	if err != nil {
		return res, fmt.Errorf("%s: scaled, but %d of %d replicas ready after %s: check `health` and `logs`", what, res.Ready, replicas, opts.Wait)
	}
	return res, nil
}

func minReplicas(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// chartReplicas reads the replica count of the release's deployed record:
// what the next deploy or promote of the same chart and values restores.
func chartReplicas(c kubernetes.Interface, t targets.Target) int32 {
	rels, err := driver.NewSecrets(c.CoreV1().Secrets(t.Namespace)).Query(map[string]string{"name": t.Release, "owner": "helm", "status": "deployed"})
	if err != nil || len(rels) == 0 {
		return 0
	}
	latest := rels[0]
	for _, r := range rels[1:] {
		if r.Version > latest.Version {
			latest = r
		}
	}
	for _, doc := range releaseutil.SplitManifests(latest.Manifest) {
		var d appsv1.Deployment
		if yaml.Unmarshal([]byte(doc), &d) != nil || d.Kind != "Deployment" || d.Name != t.Release {
			continue
		}
		if d.Spec.Replicas == nil {
			return 1
		}
		return *d.Spec.Replicas
	}
	return 0
}
