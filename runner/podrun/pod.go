package podrun

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/chart"
)

// PodOf describes the first container of a rendered Deployment, as a replay
// runs it: its literal env (a value from a Secret or ConfigMap key is not
// the chart's to give), port, where its Secret volume with creds.json is
// mounted, the pod's runAsUser, and its HTTP probes (a probe's named port
// resolved against the container's ports).
func PodOf(t targets.Name, dep *appsv1.Deployment) (pipeline.Pod, error) {
	spec := dep.Spec.Template.Spec
	if len(spec.Containers) == 0 {
		return pipeline.Pod{}, fmt.Errorf("deployment %s has no container", dep.Name)
	}
	c := spec.Containers[0]
	pod := pipeline.Pod{Target: t, Container: c.Name}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			pod.Env = append(pod.Env, pipeline.EnvVar{Name: e.Name, Value: e.Value})
		}
	}
	if len(c.Ports) > 0 {
		pod.Port = int(c.Ports[0].ContainerPort)
	}
	secretVolumes := map[string]bool{}
	for _, v := range spec.Volumes {
		if v.Secret != nil {
			secretVolumes[v.Name] = true
		}
	}
	for _, m := range c.VolumeMounts {
		if secretVolumes[m.Name] && m.SubPath == "creds.json" {
			pod.CredsPath = m.MountPath
		}
	}
	if sc := spec.SecurityContext; sc != nil && sc.RunAsUser != nil {
		pod.User = *sc.RunAsUser
	}
	if sc := c.SecurityContext; sc != nil && sc.RunAsUser != nil {
		pod.User = *sc.RunAsUser
	}
	var err error
	if pod.Readiness, err = probeOf(c, c.ReadinessProbe, "readiness"); err != nil {
		return pod, err
	}
	if pod.Liveness, err = probeOf(c, c.LivenessProbe, "liveness"); err != nil {
		return pod, err
	}
	return pod, nil
}

func probeOf(c corev1.Container, p *corev1.Probe, what string) (*pipeline.Probe, error) {
	if p == nil {
		return nil, nil
	}
	if p.HTTPGet == nil {
		return nil, fmt.Errorf("container %s: the %s probe is not an HTTP GET: a replay runs only HTTP probes", c.Name, what)
	}
	port, err := portOf(c, p.HTTPGet.Port)
	if err != nil {
		return nil, fmt.Errorf("container %s: %s probe: %w", c.Name, what, err)
	}
	return &pipeline.Probe{Path: p.HTTPGet.Path, Port: port, InitialDelaySeconds: int(p.InitialDelaySeconds), PeriodSeconds: int(p.PeriodSeconds),
		TimeoutSeconds: int(p.TimeoutSeconds), FailureThreshold: int(p.FailureThreshold)}, nil
}

func portOf(c corev1.Container, port intstr.IntOrString) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("port %q is not one of the container's", port.StrVal)
}

// RenderDeployment renders the chart in dir for t (a placeholder image, the
// chart's Secret names) and returns its Deployment.
func RenderDeployment(dir string, t targets.Target) (*appsv1.Deployment, error) {
	ch, err := chart.Load(dir)
	if err != nil {
		return nil, err
	}
	computed := pipeline.ComputedValues(pipeline.Image{Repository: t.Image, Digest: pipeline.PlaceholderDigest}, pipeline.SecretNames{})
	vals, err := chart.Values(dir, t.ValuesFiles, computed)
	if err != nil {
		return nil, err
	}
	ms, err := chart.Render(ch, vals, chart.RenderOptions{Release: t.Release, Namespace: t.Namespace})
	if err != nil {
		return nil, err
	}
	docs := ms.Find("Deployment")
	if len(docs) != 1 {
		return nil, fmt.Errorf("the chart renders %d Deployments for %s, want one", len(docs), t.Name)
	}
	var dep appsv1.Deployment
	if err := yaml.Unmarshal([]byte(docs[0].YAML), &dep); err != nil {
		return nil, fmt.Errorf("read the Deployment the chart renders for %s: %w", t.Name, err)
	}
	return &dep, nil
}
