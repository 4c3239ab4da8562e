package release

import (
	"context"
	"fmt"
	"slices"
	"strings"

	hrelease "helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/ringg/ringg-ci/runner/kube"
)

// manifestDeployment returns the Deployment a release record's manifest
// holds, or nil.
func manifestDeployment(manifest string) *appsv1.Deployment {
	for _, doc := range releaseutil.SplitManifests(manifest) {
		var head metav1.TypeMeta
		if yaml.Unmarshal([]byte(doc), &head) != nil || head.Kind != "Deployment" {
			continue
		}
		var dep appsv1.Deployment
		if yaml.Unmarshal([]byte(doc), &dep) == nil {
			return &dep
		}
	}
	return nil
}

// PodImage is the digest one pod runs and how often its containers
// restarted.
type PodImage struct {
	Pod      string `json:"pod"`
	Digest   string `json:"digest"`
	Ready    bool   `json:"ready"`
	Restarts int32  `json:"restarts"`
}

// podDigest returns the digest a pod's containers run: from the runtime's
// imageID (repo@sha256:...), else from the spec's image when it is pinned.
// Several containers with different digests give them joined by ",".
func podDigest(pod *corev1.Pod) string {
	var ds []string
	for _, cs := range pod.Status.ContainerStatuses {
		d := digestIn(cs.ImageID)
		if d == "" {
			d = digestIn(cs.Image)
		}
		if d == "" {
			for _, c := range pod.Spec.Containers {
				if c.Name == cs.Name {
					d = digestIn(c.Image)
				}
			}
		}
		if d != "" && !slices.Contains(ds, d) {
			ds = append(ds, d)
		}
	}
	if len(pod.Status.ContainerStatuses) == 0 {
		for _, c := range pod.Spec.Containers {
			if d := digestIn(c.Image); d != "" && !slices.Contains(ds, d) {
				ds = append(ds, d)
			}
		}
	}
	return strings.Join(ds, ",")
}

// digestIn returns the sha256 digest after the last "@" of an image
// reference, or "".
func digestIn(ref string) string {
	at := strings.LastIndex(ref, "@")
	if at < 0 || !strings.HasPrefix(ref[at+1:], "sha256:") {
		return ""
	}
	return ref[at+1:]
}

// workload is a release's Deployment and its live pods.
type workload struct {
	deployment *appsv1.Deployment // nil when absent
	pods       []PodImage
}

// observe reads the Deployment a release record names and its pods (not
// those being deleted), sorted by name.
func observe(ctx context.Context, k kubernetes.Interface, rel *hrelease.Release) (workload, error) {
	var w workload
	want := manifestDeployment(rel.Manifest)
	if want == nil {
		return w, nil
	}
	dep, err := k.AppsV1().Deployments(rel.Namespace).Get(ctx, want.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return w, nil
	}
	if err != nil {
		return w, fmt.Errorf("get deployment %s in %s: %w", want.Name, rel.Namespace, err)
	}
	w.deployment = dep
	sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil {
		return w, fmt.Errorf("deployment %s selector: %w", dep.Name, err)
	}
	pods, err := k.CoreV1().Pods(rel.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return w, fmt.Errorf("list pods of deployment %s in %s: %w", dep.Name, rel.Namespace, err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil || !metav1.IsControlledBy(p, dep) && !ownedViaReplicaSet(p, dep) {
			continue
		}
		var restarts int32
		for _, cs := range p.Status.ContainerStatuses {
			restarts += cs.RestartCount
		}
		w.pods = append(w.pods, PodImage{Pod: p.Name, Digest: podDigest(p), Ready: kube.PodReady(p), Restarts: restarts})
	}
	slices.SortFunc(w.pods, func(a, b PodImage) int { return strings.Compare(a.Pod, b.Pod) })
	return w, nil
}

// ownedViaReplicaSet tells whether a pod belongs to one of dep's ReplicaSets
// by name (dep-<hash>): the stable Service's app label also matches the
// canary's pods, but their selectors differ by instance, so this is only a
// guard.
func ownedViaReplicaSet(p *corev1.Pod, dep *appsv1.Deployment) bool {
	for _, o := range p.OwnerReferences {
		if o.Kind == "ReplicaSet" && strings.HasPrefix(o.Name, dep.Name+"-") {
			return true
		}
	}
	return false
}

// digests lists the distinct digests pods run, sorted.
func digests(pods []PodImage) []string {
	var ds []string
	for _, p := range pods {
		if !slices.Contains(ds, p.Digest) {
			ds = append(ds, p.Digest)
		}
	}
	slices.Sort(ds)
	return ds
}

// oneDigest is the digest a release's pods all run, when ds (from digests)
// names exactly one known digest. A pod with several containers reports
// their digests joined by commas, which is not one.
func oneDigest(ds []string) (string, bool) {
	if len(ds) != 1 || ds[0] == "" || strings.Contains(ds[0], ",") {
		return "", false
	}
	return ds[0], true
}

func availableCondition(dep *appsv1.Deployment) (bool, string) {
	for _, c := range dep.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue, c.Message
		}
	}
	return false, "no Available condition yet"
}
