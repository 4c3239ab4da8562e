package release

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/ringg/ringg-ci/runner/chart"
	"github.com/ringg/ringg-ci/ci/pipeline"
)

// rendered is what a verb needs from a rendered release: the Deployment to
// watch and the rollout numbers its deadlines come from.
type rendered struct {
	manifests  chart.Manifests
	deployment string
	rollout    pipeline.Rollout
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
		return out, fmt.Errorf("the chart renders %d Deployments: the release engine watches one; render one per release", len(docs))
	}
	var dep appsv1.Deployment
	if err := yaml.Unmarshal([]byte(docs[0].YAML), &dep); err != nil {
		return out, fmt.Errorf("read rendered deployment %s: %w", docs[0].Name, err)
	}
	out.deployment = dep.Name
	out.rollout = rolloutParams(&dep)
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
		if ru.MaxSurge != nil {
			surge = *ru.MaxSurge
		}
		if ru.MaxUnavailable != nil {
			unavail = *ru.MaxUnavailable
		}
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
