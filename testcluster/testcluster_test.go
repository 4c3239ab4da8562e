package testcluster_test

import (
	"context"
	"os"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ringg/ringg-ci/testcluster"
)

var cluster *testcluster.Cluster

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m, &cluster)) }

func TestServerReportsItsKubernetesVersion(t *testing.T) {
	cluster.Namespace(t)
	v, err := cluster.Client().Discovery().ServerVersion()
	assert.NilError(t, err)
	// The build stamps the version; unstamped, charts with a kubeVersion
	// constraint are refused.
	assert.Equal(t, v.GitVersion, "v1.37.2")
	t.Logf("start to ready %s", cluster.StartupDuration().Round(time.Millisecond))
	if rss, err := cluster.RSS(); err == nil {
		t.Logf("helper RSS %d MiB", rss>>20)
	}
}

func TestNamespaceIsDeletedAfterTheTest(t *testing.T) {
	if cluster == nil {
		t.Skip("no test cluster (-short)")
	}
	var name string
	t.Run("uses", func(t *testing.T) {
		name = cluster.Namespace(t)
		_, err := cluster.Client().CoreV1().Namespaces().Get(t.Context(), name, metav1.GetOptions{})
		assert.NilError(t, err)
	})
	ns, err := cluster.Client().CoreV1().Namespaces().Get(t.Context(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return
	}
	assert.NilError(t, err)
	assert.Assert(t, ns.DeletionTimestamp != nil, "namespace %s is not being deleted", name)
}

func TestControllerManagerCreatesDefaultServiceAccount(t *testing.T) {
	ns := cluster.Namespace(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	w, err := cluster.Client().CoreV1().ServiceAccounts(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=default"})
	assert.NilError(t, err)
	defer w.Stop()
	for ev := range w.ResultChan() {
		if sa, ok := ev.Object.(*corev1.ServiceAccount); ok && sa.Name == "default" {
			return
		}
	}
	t.Fatalf("no default service account in %s after 20s: is kube-controller-manager running?", ns)
}

func TestRestartKeepsObjectsPortAndCertificates(t *testing.T) {
	ns := cluster.Namespace(t)
	before := cluster.Kubeconfig()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kept"}, Data: map[string]string{"k": "v"}}
	_, err := cluster.Client().CoreV1().ConfigMaps(ns).Create(t.Context(), cm, metav1.CreateOptions{})
	assert.NilError(t, err)
	requests := cluster.Requests()

	cluster.Restart(t)

	got, err := cluster.Client().CoreV1().ConfigMaps(ns).Get(t.Context(), "kept", metav1.GetOptions{})
	assert.NilError(t, err)
	assert.DeepEqual(t, got.Data, map[string]string{"k": "v"})
	after, err := os.ReadFile(cluster.KubeconfigPath())
	assert.NilError(t, err)
	// Same server URL and same credentials: the old kubeconfig still works.
	assert.Equal(t, string(after), string(before))
	assert.Assert(t, cluster.Requests() > requests)
}

// BenchmarkStart measures a cold start of a fresh cluster (new data dir,
// new certificates) to its ready line, and the helper's memory.
func BenchmarkStart(b *testing.B) {
	if cluster == nil {
		b.Skip("no test cluster (-short)")
	}
	for b.Loop() {
		c, err := testcluster.Start(b.Context(), testcluster.Options{NoFakeNodes: true})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(c.StartupDuration().Seconds(), "s-to-ready")
		if rss, err := c.RSS(); err == nil {
			b.ReportMetric(float64(rss>>20), "MiB-rss")
		}
		if err := c.Stop(); err != nil {
			b.Fatal(err)
		}
	}
}

// Every test namespace enforces the "restricted" Pod Security Standard with
// the API server's PodSecurity admission, as a hardened production namespace
// does: a pod that runs as root, may escalate privileges, keeps
// capabilities or has no seccomp profile is refused at creation, and one
// that meets it is admitted.
func TestNamespaceEnforcesRestrictedPodSecurity(t *testing.T) {
	ns := cluster.Namespace(t)
	got, err := cluster.Client().CoreV1().Namespaces().Get(t.Context(), ns, metav1.GetOptions{})
	assert.NilError(t, err)
	assert.Equal(t, got.Labels["pod-security.kubernetes.io/enforce"], "restricted")

	pod := func(name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "repo/app:v1"}}}}
	}
	_, err = cluster.Client().CoreV1().Pods(ns).Create(t.Context(), pod("defaults"), metav1.CreateOptions{})
	assert.Assert(t, apierrors.IsForbidden(err), "a pod with default security settings was not refused: %v", err)
	assert.ErrorContains(t, err, `violates PodSecurity "restricted:latest"`)
	for _, want := range []string{"allowPrivilegeEscalation != false", "unrestricted capabilities", "runAsNonRoot != true", "seccompProfile"} {
		assert.ErrorContains(t, err, want)
	}

	ok := pod("restricted")
	testcluster.Restrict(&ok.Spec)
	_, err = cluster.Client().CoreV1().Pods(ns).Create(t.Context(), ok, metav1.CreateOptions{})
	assert.NilError(t, err)

	// A namespace that plays one without the check admits the same pod the
	// restricted one refused.
	privileged := cluster.NamespaceEnforcing(t, testcluster.Privileged)
	_, err = cluster.Client().CoreV1().Pods(privileged).Create(t.Context(), pod("defaults"), metav1.CreateOptions{})
	assert.NilError(t, err)
}
