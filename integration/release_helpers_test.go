package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
)

// restConfig is the test cluster's connection, for the Helm SDK.
func restConfig(t *testing.T) *rest.Config {
	t.Helper()
	return cluster.RESTConfig()
}

// restartCluster restarts the API server; tests calling it never run in
// parallel.
func restartCluster(t *testing.T) { cluster.Restart(t) }

func intstrZero() intstr.IntOrString { return intstr.FromInt32(0) }

// taggableChart copies the chart with its schema's image.repository pattern
// removed, so that a test can put a fake-node failure tag there.
func taggableChart(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	assert.NilError(t, os.CopyFS(dir, os.DirFS(chartDir)))
	path := filepath.Join(dir, "values.schema.json")
	raw, err := os.ReadFile(path)
	assert.NilError(t, err)
	var schema map[string]any
	assert.NilError(t, json.Unmarshal(raw, &schema))
	repo := schema["properties"].(map[string]any)["image"].(map[string]any)["properties"].(map[string]any)["repository"].(map[string]any)
	delete(repo, "pattern")
	raw, err = json.Marshal(schema)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(path, raw, 0o644))
	return dir
}

// settle waits until the namespace's Deployments and ReplicaSets have
// caught up with their specs, so that a snapshot stays still.
func (e *relEnv) settle() {
	e.t.Helper()
	ctx := context.Background()
	waitFor(e.t, 20*time.Second, func() bool {
		ds, err := e.kube.AppsV1().Deployments(e.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, d := range ds.Items {
			if d.Status.ObservedGeneration != d.Generation {
				return false
			}
		}
		rs, err := e.kube.AppsV1().ReplicaSets(e.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, r := range rs.Items {
			if r.Status.ObservedGeneration != r.Generation || r.Spec.Replicas == nil || r.Status.Replicas != *r.Spec.Replicas {
				return false
			}
		}
		return true
	})
	// Then until nothing of theirs changes for half a second: a starved
	// controller-manager writes the last status and conditions late.
	last := ""
	waitFor(e.t, 20*time.Second, func() bool {
		now, ok := e.appsVersions(ctx)
		if ok && now == last {
			return true
		}
		last = now
		time.Sleep(500 * time.Millisecond)
		return false
	})
}

// appsVersions lists the resource versions of the namespace's Deployments
// and ReplicaSets, in one string; false when it could not list them.
func (e *relEnv) appsVersions(ctx context.Context) (string, bool) {
	var b strings.Builder
	ds, err := e.kube.AppsV1().Deployments(e.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", false
	}
	rs, err := e.kube.AppsV1().ReplicaSets(e.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", false
	}
	for _, d := range ds.Items {
		fmt.Fprintf(&b, "deployment/%s=%s ", d.Name, d.ResourceVersion)
	}
	for _, r := range rs.Items {
		fmt.Fprintf(&b, "replicaset/%s=%s ", r.Name, r.ResourceVersion)
	}
	return b.String(), true
}

// chartWithValues copies the chart with one text of a values file replaced.
func chartWithValues(t *testing.T, file, old, new string) string {
	t.Helper()
	dir := t.TempDir()
	assert.NilError(t, os.CopyFS(dir, os.DirFS(chartDir)))
	path := filepath.Join(dir, file)
	raw, err := os.ReadFile(path)
	assert.NilError(t, err)
	assert.Assert(t, strings.Contains(string(raw), old), "%s has no %q", file, old)
	assert.NilError(t, os.WriteFile(path, []byte(strings.Replace(string(raw), old, new, 1)), 0o644))
	return dir
}
