package fakekubelet_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/ringg/ringg-ci/testcluster"
	"github.com/ringg/ringg-ci/testcluster/fakekubelet"
)

var cluster *testcluster.Cluster

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m, &cluster)) }

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func chatbot(name, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "dv-pipecat", Image: image,
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8765}},
		}}},
	}
}

// startDirect runs a kubelet that knows the given pods, with no cluster.
func startDirect(t *testing.T, pods ...*corev1.Pod) *fakekubelet.Kubelet {
	t.Helper()
	k, err := fakekubelet.Start(fakekubelet.Options{
		Now: func() time.Time { return now },
		Pod: func(_ context.Context, ns, name string) (*corev1.Pod, error) {
			for _, p := range pods {
				if p.Namespace == ns && p.Name == name {
					return p, nil
				}
			}
			return nil, apierrors.NewNotFound(corev1.Resource("pods"), name)
		},
	})
	assert.NilError(t, err)
	t.Cleanup(func() { k.Close() })
	return k
}

// verifyingClient trusts only the kubelet's certificate, as the API server
// does with --kubelet-certificate-authority.
func verifyingClient(t *testing.T, k *fakekubelet.Kubelet) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	assert.Assert(t, pool.AppendCertsFromPEM(k.CACertPEM()))
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func TestStartNeedsAPodLookup(t *testing.T) {
	_, err := fakekubelet.Start(fakekubelet.Options{})
	assert.ErrorContains(t, err, "no Pod lookup")
}

func TestContainerLogsHonourTheKubeletQuery(t *testing.T) {
	crashing := chatbot("crashing", "repo/app:crashloop")
	crashing.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "dv-pipecat", RestartCount: 2,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}
	pulling := chatbot("pulling", "repo/app:pull-error")
	pulling.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "dv-pipecat",
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}}
	k := startDirect(t, chatbot("ok", "repo/app:v1"), chatbot("sick", "repo/app:unhealthy@sha256:00"), chatbot("never", "repo/app:never-ready"), crashing, pulling)
	client := verifyingClient(t, k)
	tests := []struct {
		name, path string
		status     int
		want       string
	}{
		{"everything", "/containerLogs/default/ok/dv-pipecat", 200,
			"INFO starting dv-pipecat (repo/app:v1) in pod ok\nINFO Uvicorn running on http://0.0.0.0:8765\nINFO GET /pc/v1/healthcheck 200\nINFO GET /pc/v1/healthcheck 200\n"},
		{"since-one-minute", "/containerLogs/default/ok/dv-pipecat?sinceSeconds=60", 200,
			"INFO GET /pc/v1/healthcheck 200\nINFO GET /pc/v1/healthcheck 200\n"},
		{"since-time", "/containerLogs/default/ok/dv-pipecat?sinceTime=2026-03-01T11:59:59Z", 200,
			"INFO GET /pc/v1/healthcheck 200\n"},
		{"tail-one", "/containerLogs/default/ok/dv-pipecat?tailLines=1", 200,
			"INFO GET /pc/v1/healthcheck 200\n"},
		{"limit-cuts-the-start", "/containerLogs/default/ok/dv-pipecat?limitBytes=10", 200,
			"INFO start"},
		{"timestamps", "/containerLogs/default/ok/dv-pipecat?tailLines=1&timestamps=true", 200,
			"2026-03-01T11:59:59Z INFO GET /pc/v1/healthcheck 200\n"},
		{"unhealthy-logs-503", "/containerLogs/default/sick/dv-pipecat?tailLines=1", 200,
			"INFO GET /pc/v1/healthcheck 503\n"},
		{"unknown-pod", "/containerLogs/default/gone/dv-pipecat", 404, "pod default/gone not found on this node\n"},
		{"unknown-container", "/containerLogs/default/ok/sidecar", 404, "container sidecar is not valid for pod ok\n"},
		{"bad-since", "/containerLogs/default/ok/dv-pipecat?sinceSeconds=x", 400, "sinceSeconds must be a positive integer\n"},
		{"no-previous-container", "/containerLogs/default/ok/dv-pipecat?previous=true", 400,
			"previous terminated container \"dv-pipecat\" in pod \"ok\" not found\n"},
		{"never-ready-logs-503", "/containerLogs/default/never/dv-pipecat?tailLines=1", 200,
			"INFO GET /pc/v1/healthcheck 503\n"},
		{"a crash's last line, previous container", "/containerLogs/default/crashing/dv-pipecat?previous=true", 200,
			"INFO starting dv-pipecat (repo/app:crashloop) in pod crashing\n" + fakekubelet.CrashLine + "\n"},
		{"a crash's last line, current container", "/containerLogs/default/crashing/dv-pipecat?tailLines=1", 200,
			fakekubelet.CrashLine + "\n"},
		{"a container that never started", "/containerLogs/default/pulling/dv-pipecat", 400,
			"container \"dv-pipecat\" in pod \"pulling\" is waiting to start: ImagePullBackOff\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.Get(k.URL() + tt.path)
			assert.NilError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			assert.NilError(t, err)
			assert.Equal(t, resp.StatusCode, tt.status)
			assert.Equal(t, string(body), tt.want)
		})
	}
}

func TestChattyContainerLogsThousandsOfLines(t *testing.T) {
	lines := fakekubelet.DefaultLogs(chatbot("loud", "repo/app:chatty"), "dv-pipecat", now)
	assert.Equal(t, len(lines), fakekubelet.ChattyLines+4)
	for i := 1; i < len(lines); i++ {
		assert.Assert(t, !lines[i].Time.Before(lines[i-1].Time), "lines are oldest first")
	}
}

// forward sends GET path to port of the pod over a SPDY port-forward to
// target (the kubelet itself or the API server's pods/portforward), and
// returns the status and what came back on the error stream.
func forward(t *testing.T, cfg *rest.Config, target *url.URL, port int, path string) (int, string) {
	t.Helper()
	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	assert.NilError(t, err)
	conn, _, err := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, target).Dial(portforward.PortForwardProtocolV1Name)
	assert.NilError(t, err)
	defer conn.Close()
	h := http.Header{}
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	h.Set(corev1.PortHeader, strconv.Itoa(port))
	h.Set(corev1.PortForwardRequestIDHeader, "1")
	errs, err := conn.CreateStream(h)
	assert.NilError(t, err)
	errs.Close()
	h.Set(corev1.StreamType, corev1.StreamTypeData)
	status := 0
	// A port nothing listens on gets its data stream reset at once, which
	// can reach the client before the stream's creation is acknowledged:
	// no status then, and the reason is on the error stream.
	if data, err := conn.CreateStream(h); err == nil {
		req, _ := http.NewRequest(http.MethodGet, "http://localhost"+path, nil)
		req.Close = true
		if err := req.Write(data); err == nil {
			if resp, err := http.ReadResponse(bufio.NewReader(data), req); err == nil {
				status = resp.StatusCode
				resp.Body.Close()
			}
		}
		data.Close()
	}
	msg, _ := io.ReadAll(errs)
	return status, string(msg)
}

func TestPortForwardReachesTheApp(t *testing.T) {
	k := startDirect(t, chatbot("ok", "repo/app:v1"), chatbot("sick", "repo/app:unhealthy"))
	cfg := &rest.Config{Host: k.URL(), TLSClientConfig: rest.TLSClientConfig{CAData: k.CACertPEM()}}
	tests := []struct {
		pod        string
		port       int
		path       string
		wantStatus int
		wantErr    string
	}{
		{"ok", 8765, fakekubelet.HealthPath, 200, ""},
		{"sick", 8765, fakekubelet.HealthPath, 503, ""},
		{"ok", 8765, "/nothing", 404, ""},
		{"ok", 9999, fakekubelet.HealthPath, 0, `failed to connect to localhost:9999 inside namespace "default"`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s-%d%s", tt.pod, tt.port, tt.path), func(t *testing.T) {
			u, err := url.Parse(k.URL() + "/portForward/default/" + tt.pod)
			assert.NilError(t, err)
			status, msg := forward(t, cfg, u, tt.port, tt.path)
			assert.Equal(t, status, tt.wantStatus)
			if tt.wantErr == "" {
				assert.Equal(t, msg, "")
			} else {
				assert.Assert(t, strings.Contains(msg, tt.wantErr), "error stream: %q", msg)
			}
		})
	}
}

// TestAPIServerProxiesToTheKubelet goes through the real API server: it
// finds the kubelet from the Node status, verifies its certificate and
// proxies pods/log and pods/portforward to it.
func TestAPIServerProxiesToTheKubelet(t *testing.T) {
	ns := cluster.Namespace(t)
	ctx := t.Context()
	pod := chatbot("sick", "repo/app:unhealthy")
	pod.Namespace = ns
	testcluster.Restrict(&pod.Spec)
	_, err := cluster.Client().CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	assert.NilError(t, err)
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cluster.Client().CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	})
	assert.NilError(t, err, "pod never ran")

	raw, err := cluster.Client().CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{TailLines: new(int64(1))}).DoRaw(ctx)
	assert.NilError(t, err)
	assert.Equal(t, string(raw), "INFO GET /pc/v1/healthcheck 503\n")

	u := cluster.Client().CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod.Name).SubResource("portforward").URL()
	status, msg := forward(t, cluster.RESTConfig(), u, 8765, fakekubelet.HealthPath)
	assert.Equal(t, status, 503)
	assert.Equal(t, msg, "")
}
