package release

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/postrender"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/runner/chart"
)

// rendered is what a verb needs from a rendered release: the Deployment to
// watch and the rollout numbers its deadlines come from.
type rendered struct {
	manifests  chart.Manifests
	deployment string
	rollout    pipeline.Rollout
	// replicasSet says the Deployment sets its replica count; keep, when
	// it does not, is the live count the upgrade keeps (withLiveReplicas).
	replicasSet bool
	keep        int32
	// spec is the rendered Deployment, nil when there is none.
	spec *appsv1.Deployment
}

// rolloutOf reads the Deployment of a rendered release. A chart without one
// has nothing to watch.
func rolloutOf(m chart.Manifests) (rendered, error) {
	out := rendered{manifests: m}
	docs := m.Find("Deployment")
	if len(docs) == 0 {
		return out, nil
	}
	if len(docs) > 1 {
		return out, fmt.Errorf("the chart renders %d Deployments: the runner watches one; render one per release", len(docs))
	}
	var dep appsv1.Deployment
	if err := yaml.Unmarshal([]byte(docs[0].YAML), &dep); err != nil {
		return out, fmt.Errorf("read rendered deployment %s: %w", docs[0].Name, err)
	}
	out.deployment = dep.Name
	out.rollout = rolloutParams(&dep)
	out.replicasSet = dep.Spec.Replicas != nil
	out.spec = &dep
	return out, nil
}

// rolloutParams resolves a Deployment's rollout numbers as the controller
// does (surge percentages round up, unavailability rounds down; defaults 25%).
func rolloutParams(dep *appsv1.Deployment) pipeline.Rollout {
	r := pipeline.Rollout{Replicas: 1, TerminationGrace: 30 * time.Second}
	if dep.Spec.Replicas != nil {
		r.Replicas = int(*dep.Spec.Replicas)
	}
	surge, unavail := intstr.FromString("25%"), intstr.FromString("25%")
	if dep.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		surge, unavail = intstr.FromInt32(0), intstr.FromString("100%")
	}
	if ru := dep.Spec.Strategy.RollingUpdate; ru != nil {
		surge, unavail = ptr.Deref(ru.MaxSurge, surge), ptr.Deref(ru.MaxUnavailable, unavail)
	}
	if v, err := intstr.GetScaledValueFromIntOrPercent(&surge, r.Replicas, true); err == nil {
		r.MaxSurge = v
	}
	if v, err := intstr.GetScaledValueFromIntOrPercent(&unavail, r.Replicas, false); err == nil {
		r.MaxUnavailable = v
	}
	if d := dep.Spec.ProgressDeadlineSeconds; d != nil {
		r.ProgressDeadline = time.Duration(*d) * time.Second
	}
	spec := dep.Spec.Template.Spec
	if spec.TerminationGracePeriodSeconds != nil {
		r.TerminationGrace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	}
	for _, c := range spec.Containers {
		if p := c.ReadinessProbe; p != nil {
			r.ReadinessDelay = max(r.ReadinessDelay, time.Duration(p.InitialDelaySeconds)*time.Second)
			period := time.Duration(p.PeriodSeconds) * time.Second
			if period == 0 {
				period = 10 * time.Second
			}
			r.ReadinessPeriod = max(r.ReadinessPeriod, period)
		}
	}
	return r
}

// withLiveReplicas completes a rendered Deployment that sets no replica
// count (an autoscaler owns it) with the live Deployment's: the count the
// rollout must reach and its deadlines follow, and what the upgrade keeps
// (keepReplicas). Without it, turning autoscaling on would drop
// spec.replicas, the API server would reset it to 1, and stable would shrink
// to one pod until the autoscaler caught up.
func (j job) withLiveReplicas(ctx context.Context, r rendered) rendered {
	if r.deployment == "" || r.replicasSet {
		return r
	}
	dep, err := j.c.Kube.AppsV1().Deployments(j.target.Namespace).Get(ctx, r.deployment, metav1.GetOptions{})
	if err != nil || dep.Spec.Replicas == nil {
		return r // none live: the API server's default applies, as it will
	}
	r.keep = *dep.Spec.Replicas
	if r.spec != nil {
		// Surge and unavailability are fractions of the live count.
		withKept := r.spec.DeepCopy()
		withKept.Spec.Replicas = &r.keep
		r.rollout = rolloutParams(withKept)
	} else {
		r.rollout.Replicas = int(r.keep)
	}
	return r
}

// keepReplicas is a Helm post-renderer that sets the replica count of the
// rendered Deployment r names to r.keep; nil when there is nothing to keep.
func keepReplicas(r rendered) postrender.PostRenderer {
	if r.keep == 0 || r.replicasSet {
		return nil
	}
	return replicaKeeper{deployment: r.deployment, replicas: r.keep}
}

type replicaKeeper struct {
	deployment string
	replicas   int32
}

// Run rewrites the one Deployment document, keeping every other byte.
func (k replicaKeeper) Run(in *bytes.Buffer) (*bytes.Buffer, error) {
	docs := strings.Split(in.String(), "\n---")
	for i, doc := range docs {
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if yaml.Unmarshal([]byte(doc), &head) != nil || head.Kind != "Deployment" || head.Metadata.Name != k.deployment {
			continue
		}
		// Keep the "# Source:" comment Helm names the document by.
		lead, body := "", doc
		for strings.HasPrefix(strings.TrimLeft(body, "\n"), "#") || strings.HasPrefix(body, "\n") {
			line, rest, _ := strings.Cut(body, "\n")
			lead, body = lead+line+"\n", rest
		}
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(body), &obj); err != nil {
			return nil, fmt.Errorf("keep the live replica count of deployment %s: %w", k.deployment, err)
		}
		spec, _ := obj["spec"].(map[string]any)
		if spec == nil {
			spec = map[string]any{}
			obj["spec"] = spec
		}
		spec["replicas"] = k.replicas
		out, err := yaml.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("keep the live replica count of deployment %s: %w", k.deployment, err)
		}
		docs[i] = lead + string(out)
	}
	return bytes.NewBufferString(strings.Join(docs, "\n---")), nil
}

// imageOfManifest is the image of the first container of a manifest's
// Deployment, or "".
func imageOfManifest(manifest string) string {
	if dep := manifestDeployment(manifest); dep != nil && len(dep.Spec.Template.Spec.Containers) > 0 {
		return dep.Spec.Template.Spec.Containers[0].Image
	}
	return ""
}
