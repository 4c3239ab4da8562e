package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/internal/lockedbuffer"
	"github.com/ringg/ringg-ci/runner/kube"
	"github.com/ringg/ringg-ci/runner/ops"
	"github.com/ringg/ringg-ci/testcluster"
	"github.com/ringg/ringg-ci/testcluster/fakekubelet"
	"github.com/ringg/ringg-ci/tools/testcluster/controlplane"
)

// envRunCLI makes the test binary run its command line as sandbox-cluster
// instead of the tests, so a test can start the launcher as a process of its
// own and kill it.
const envRunCLI = "SANDBOX_CLUSTER_TEST_RUN_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(envRunCLI) == "1" {
		main()
	}
	os.Exit(m.Run())
}

func TestComponentsRunAsTheSandboxNeeds(t *testing.T) {
	env := map[string]string{EnvPKISeed: "seed-from-env"}
	o, err := parseServe(nil, func(k string) string { return env[k] }, io.Discard)
	assert.NilError(t, err)
	assert.Equal(t, o.PKISeed, "seed-from-env")
	assert.Equal(t, o.serverURL(), "https://kube:6443")
	l := layout{Layout: controlplane.Layout{DataDir: "/data"}, etcdClientPort: 32379, etcdPeerPort: 32380, kubeletCA: "/data/fake-kubelet-ca.crt"}
	comps := o.components(l)

	tests := []struct {
		name, path string
		want       []string
	}{
		{name: "etcd", path: "/usr/local/bin/etcd", want: []string{
			"--data-dir=/data/etcd",
			"--listen-client-urls=http://127.0.0.1:32379",
			"--listen-peer-urls=http://127.0.0.1:32380",
			"--initial-cluster=sandbox=http://127.0.0.1:32380",
			"--unsafe-no-fsync=true",
		}},
		{name: "kube-apiserver", path: "/usr/local/bin/kube-apiserver", want: []string{
			"--etcd-servers=http://127.0.0.1:32379",
			// Dagger's health check and clients dial the container's IP.
			"--bind-address=0.0.0.0",
			"--secure-port=6443",
			"--endpoint-reconciler-type=none",
			"--authorization-mode=RBAC",
			"--client-ca-file=/data/pki/ca.crt",
			"--service-account-signing-key-file=/data/pki/sa.key",
			"--kubelet-certificate-authority=/data/fake-kubelet-ca.crt",
			"--kubelet-preferred-address-types=InternalIP",
		}},
		{name: "kube-controller-manager", path: "/usr/local/bin/kube-controller-manager", want: []string{
			"--kubeconfig=/data/controller-manager.kubeconfig",
			"--controllers=*,-node-lifecycle-controller",
			"--service-account-private-key-file=/data/pki/sa.key",
			"--cluster-signing-key-file=/data/pki/ca.key",
			"--leader-elect=false",
		}},
	}
	assert.Equal(t, len(comps), len(tests))
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := comps[i]
			assert.Equal(t, c.name, tc.name)
			assert.Equal(t, c.path, tc.path)
			for _, w := range tc.want {
				assert.Check(t, is.Contains(c.args, w))
			}
			for _, a := range c.args {
				assert.Check(t, !strings.Contains(a, "seed-from-env"), "the seed must stay out of argv: %s", a)
			}
		})
	}
	assert.Check(t, is.Contains(o.apiServer(l).SANs(), "kube"), "the serving certificate must carry the alias")

	o, err = parseServe([]string{"--bin-dir", "/opt/k8s", "--alias", "k8s", "--api-port", "7443"}, func(string) string { return "" }, io.Discard)
	assert.NilError(t, err)
	comps = o.components(l)
	assert.Equal(t, comps[1].path, "/opt/k8s/kube-apiserver")
	assert.Check(t, is.Contains(comps[1].args, "--secure-port=7443"))
	assert.Check(t, is.Contains(o.apiServer(l).SANs(), "k8s"))
}

func TestParseServeRejects(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "empty alias", args: []string{"--alias", ""}, want: "--alias is empty"},
		{name: "arguments", args: []string{"now"}, want: `unexpected arguments ["now"]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseServe(tc.args, func(string) string { return "" }, io.Discard)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// fakeBinDir writes shell scripts, named as the components, into a new
// directory; each runs with $D set to that directory.
func fakeBinDir(t *testing.T, scripts map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range scripts {
		script := "#!/bin/sh\nD=" + dir + "\n" + body + "\n"
		assert.NilError(t, os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755))
	}
	return dir
}

// sleeper records its PID and sleeps until killed.
const sleeper = `echo $$ > "$D/$(basename "$0").pid"; exec sleep 600`

// waitPID waits for a script of fakeBinDir to record its PID.
func waitPID(t *testing.T, dir, name string) int {
	t.Helper()
	file := filepath.Join(dir, name+".pid")
	var pid int
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		data, err := os.ReadFile(file)
		if p, convErr := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && convErr == nil {
			pid = p
			return poll.Success()
		}
		return poll.Continue("%s recorded no PID", name)
	}, poll.WithTimeout(time.Minute), poll.WithDelay(20*time.Millisecond))
	return pid
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// waitGone waits until pid has stopped, until the test's deadline.
func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	timeout := 24 * time.Hour // no test deadline: wait as long as it takes
	if deadline, ok := t.Deadline(); ok {
		timeout = time.Until(deadline) - 5*time.Second
	}
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if alive(pid) {
			return poll.Continue("%s (pid %d) is still running", what, pid)
		}
		return poll.Success()
	}, poll.WithTimeout(timeout), poll.WithDelay(20*time.Millisecond))
}

func TestServeFailsWhenAComponentExits(t *testing.T) {
	dir := fakeBinDir(t, map[string]string{
		// etcd fails once kube-apiserver runs, however slowly it starts.
		"etcd":           `until [ -s "$D/kube-apiserver.pid" ]; do sleep 0.05; done; echo "cannot open the data directory" >&2; exit 3`,
		"kube-apiserver": sleeper,
	})
	var stderr lockedbuffer.Buffer
	err := serve(t.Context(), serveOptions{
		BinDir: dir, BindAddress: "127.0.0.1", APIPort: freeTestPort(t), ReadyPort: freeTestPort(t), Alias: "kube",
		ReadyTimeout: 10 * time.Minute,
	}, io.Discard, &stderr)
	assert.ErrorContains(t, err, "etcd exited: exit status 3")
	assert.Check(t, is.Contains(stderr.String(), "etcd: cannot open the data directory\n"))
	waitGone(t, waitPID(t, dir, "kube-apiserver"), "kube-apiserver after serve returned")
}

func TestServeFailsWithoutBinaries(t *testing.T) {
	err := serve(t.Context(), serveOptions{
		BinDir: t.TempDir(), BindAddress: "127.0.0.1", APIPort: freeTestPort(t), ReadyPort: freeTestPort(t), Alias: "kube",
	}, io.Discard, io.Discard)
	assert.ErrorContains(t, err, "start etcd:")
	assert.ErrorContains(t, err, "pass --bin-dir")
}

// TestComponentsDieWithTheLauncher kills sandbox-cluster with SIGKILL, which
// it cannot handle: its components must die too.
func TestComponentsDieWithTheLauncher(t *testing.T) {
	dir := fakeBinDir(t, map[string]string{"etcd": sleeper, "kube-apiserver": sleeper})
	cmd := exec.Command(os.Args[0], "serve", "--bin-dir", dir, "--data-dir", t.TempDir(), "--bind-address", "127.0.0.1",
		"--api-port", strconv.Itoa(freeTestPort(t)), "--ready-port", strconv.Itoa(freeTestPort(t)))
	cmd.Env = append(os.Environ(), envRunCLI+"=1")
	var out lockedbuffer.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	assert.NilError(t, cmd.Start())
	etcd, apiserver := waitPID(t, dir, "etcd"), waitPID(t, dir, "kube-apiserver")
	assert.Check(t, alive(etcd) && alive(apiserver))
	assert.NilError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	waitGone(t, etcd, "etcd after its launcher was killed")
	waitGone(t, apiserver, "kube-apiserver after its launcher was killed")
	t.Logf("launcher output:\n%s", out.String())
}

func freeTestPort(t *testing.T) int {
	t.Helper()
	port, err := controlplane.FreePort("127.0.0.1")
	assert.NilError(t, err)
	return port
}

// readyzOK asks the API server's /readyz, checking its certificate against
// the CA in dataDir and the alias.
func readyzOK(dataDir, addr, alias string) bool {
	ca, err := os.ReadFile(filepath.Join(dataDir, "pki", "ca.crt"))
	if err != nil {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return false
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: alias, MinVersion: tls.VersionTLS12},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + addr + "/readyz")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// realBinDir is a directory whose etcd, kube-apiserver and
// kube-controller-manager are the testcluster helper, which runs as each of
// them under their names: the same Kubernetes and etcd sources as the
// official images. It skips the test when the helper cannot be built.
func realBinDir(t *testing.T) string {
	t.Helper()
	var buildLog bytes.Buffer
	buildCtx, cancel := context.WithTimeout(t.Context(), 30*time.Minute)
	bin, err := testcluster.Build(buildCtx, testcluster.BuildOptions{Log: &buildLog})
	cancel()
	if err != nil {
		t.Skipf("skipping: the testcluster helper could not be built (%v); build log:\n%s", err, buildLog.String())
	}
	dir := t.TempDir()
	for _, name := range []string{binEtcd, binAPIServer, binControllerManager} {
		assert.NilError(t, os.Symlink(bin, filepath.Join(dir, name)))
	}
	return dir
}

// runningFrom lists the processes whose argv[0] is in dir.
func runningFrom(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv0, _, _ := bytes.Cut(cmdline, []byte{0})
		if strings.HasPrefix(string(argv0), dir+"/") {
			out = append(out, fmt.Sprintf("%d %s", pid, argv0))
		}
	}
	return out
}

// deployTrack creates a Deployment shaped as the chart's release for t
// (its pods carry t's instance and track labels and the chatbot's
// container and port) and waits until its pods are Ready.
func deployTrack(t *testing.T, client kubernetes.Interface, tg targets.Target, image string, replicas int32) {
	t.Helper()
	labels := map[string]string{ops.LabelInstance: tg.Release, ops.LabelTrack: tg.Track}
	_, err := client.AppsV1().Deployments(tg.Namespace).Create(t.Context(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: tg.Release, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: ops.DefaultContainer, Image: image,
					Ports: []corev1.ContainerPort{{ContainerPort: ops.DefaultPort}},
				}}},
			},
		},
	}, metav1.CreateOptions{})
	assert.NilError(t, err)
	for {
		d, err := client.AppsV1().Deployments(tg.Namespace).Get(t.Context(), tg.Release, metav1.GetOptions{})
		assert.NilError(t, err)
		if d.Status.ReadyReplicas == replicas && d.Status.UpdatedReplicas == replicas {
			return
		}
		if t.Context().Err() != nil {
			t.Fatalf("deployment %s never became Ready: %+v", tg.Release, d.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestServe runs sandbox-cluster with the real etcd, kube-apiserver and
// kube-controller-manager on 127.0.0.1, as the Dagger service would on
// 0.0.0.0, and uses it as the module's function does: through an address
// other than the alias, with the certificate checked against the alias;
// then deploys, checks health through port-forwards and reads logs, both
// answered by the fake kubelet through the API server.
func TestServe(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no cluster")
	}
	binDir := realBinDir(t)

	const alias = "kube"
	dataDir := t.TempDir()
	apiPort, readyPort := freeTestPort(t), freeTestPort(t)
	apiAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort))
	readyAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(readyPort))
	logFile, err := os.Create(filepath.Join(t.TempDir(), "sandbox-cluster.log"))
	assert.NilError(t, err)
	defer logFile.Close()
	stdout := &lockedbuffer.Buffer{}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := time.Now()
	go func() {
		done <- serve(ctx, serveOptions{
			BinDir: binDir, DataDir: dataDir, BindAddress: "127.0.0.1",
			APIPort: apiPort, ReadyPort: readyPort, Alias: alias,
			PKISeed: "test-seed", ReadyTimeout: 5 * time.Minute, Namespaces: []string{"sandbox-test", "sandbox-other"},
		}, stdout, logFile)
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cancel()
			<-done
		}
	})
	dumpLog := func() {
		data, _ := os.ReadFile(logFile.Name())
		if len(data) > 16<<10 {
			data = data[len(data)-16<<10:]
		}
		t.Logf("stdout:\n%s\nlast log lines:\n%s", stdout.String(), data)
	}

	// The ready port must open only once /readyz is ok: whenever a dial
	// succeeds, a /readyz asked after it must answer ok.
	for {
		conn, dialErr := net.DialTimeout("tcp", readyAddr, 200*time.Millisecond)
		ok := readyzOK(dataDir, apiAddr, alias)
		if dialErr == nil {
			conn.Close()
			// One slow answer on a busy machine is no verdict; a port opened
			// before the API server was ready fails for seconds, not for one.
			for try := 0; !ok && try < 3; try++ {
				time.Sleep(300 * time.Millisecond)
				ok = readyzOK(dataDir, apiAddr, alias)
			}
			if !ok {
				dumpLog()
				t.Fatal("the ready port accepted a connection before the API server's /readyz was ok")
			}
			break
		}
		select {
		case err := <-done:
			dumpLog()
			t.Fatalf("serve returned before the ready port opened: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Logf("ready port open after %s", time.Since(started).Round(time.Millisecond))
	// serve says so just after it opened the port, maybe after our dial.
	for wait := time.Now(); !strings.Contains(stdout.String(), "pods are made Ready by a fake node") && time.Since(wait) < 10*time.Second; {
		time.Sleep(20 * time.Millisecond)
	}
	assert.Check(t, is.Contains(stdout.String(), "pods are made Ready by a fake node"))
	log, err := os.ReadFile(logFile.Name())
	assert.NilError(t, err)
	assert.Check(t, is.Contains(string(log), "kube-apiserver: "), "the components' logs are prefixed with their names")

	// The served kubeconfig names the alias.
	resp, err := http.Get("http://" + readyAddr + "/kubeconfig")
	assert.NilError(t, err)
	served, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.NilError(t, err)
	assert.Equal(t, resp.StatusCode, http.StatusOK)
	servedCfg, err := clientcmd.Load(served)
	assert.NilError(t, err)
	assert.Check(t, len(servedCfg.Clusters) == 1)
	for name, cl := range servedCfg.Clusters {
		assert.Equal(t, cl.Server, "https://"+net.JoinHostPort(alias, strconv.Itoa(apiPort)), name)
		assert.Check(t, !cl.InsecureSkipTLSVerify)
	}

	// As the function does: fetch it pointed at another address, keeping
	// the alias as the certificate's name.
	out := filepath.Join(t.TempDir(), "kubeconfig")
	assert.NilError(t, fetchKubeconfig(t.Context(), fetchOptions{URL: "http://" + readyAddr + "/kubeconfig", Out: out, Server: apiAddr, Timeout: 10 * time.Second}))
	cfg, err := clientcmd.BuildConfigFromFlags("", out)
	assert.NilError(t, err)
	assert.Equal(t, cfg.Host, "https://"+apiAddr)
	assert.Equal(t, cfg.TLSClientConfig.ServerName, alias)
	assert.Check(t, !cfg.TLSClientConfig.Insecure)
	client, err := kubernetes.NewForConfig(cfg)
	assert.NilError(t, err)
	version, err := client.Discovery().ServerVersion()
	assert.NilError(t, err)
	assert.Equal(t, version.GitVersion, "v1.37.2", "the binaries carry the release's version stamp")

	// The module's own loader gives the same result from the served copy.
	viaKube, err := kube.FromKubeconfig(served, kube.KubeconfigOptions{Server: apiAddr})
	assert.NilError(t, err)
	assert.Equal(t, viaKube.TLSClientConfig.ServerName, alias)
	kubeClient, err := kubernetes.NewForConfig(viaKube)
	assert.NilError(t, err)
	_, err = kubeClient.Discovery().ServerVersion()
	assert.NilError(t, err)

	// Verification is real: another name fails.
	wrong, err := kube.FromKubeconfig(served, kube.KubeconfigOptions{Server: apiAddr, TLSServerName: "not-the-alias"})
	assert.NilError(t, err)
	wrongClient, err := kubernetes.NewForConfig(wrong)
	assert.NilError(t, err)
	_, err = wrongClient.Discovery().ServerVersion()
	assert.ErrorContains(t, err, "certificate")

	// The fake nodes make the pods of both tracks Ready: the canary runs
	// a healthy image, stable one whose health check answers 503.
	// The namespaces serve was asked for exist once it is ready.
	ns := "sandbox-test"
	for _, name := range []string{ns, "sandbox-other"} {
		_, err = client.CoreV1().Namespaces().Get(t.Context(), name, metav1.GetOptions{})
		assert.NilError(t, err, "namespace %s was created before the ready port opened", name)
	}
	canary, err := targets.Get(targets.Canary)
	assert.NilError(t, err)
	canary = canary.With(targets.Overrides{Namespace: ns})
	stable, err := targets.Get(targets.Stable)
	assert.NilError(t, err)
	stable = stable.With(targets.Overrides{Namespace: ns})
	deployTrack(t, client, canary, "registry:5000/ringg/chatbot:sandbox", 2)
	deployTrack(t, client, stable, "registry:5000/ringg/chatbot:"+fakekubelet.TagUnhealthy, 1)
	pods, err := client.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
	assert.NilError(t, err)
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			assert.Check(t, strings.HasPrefix(p.Spec.NodeName, "fake-"), p.Spec.NodeName)
			assert.Equal(t, p.Status.HostIP, "127.0.0.1", "the node's InternalIP is where its kubelet listens")
		}
	}

	// Health: a port-forward through the API server to each pod's port,
	// answered by the fake kubelet.
	health, err := ops.Health(t.Context(), cfg, client, canary, ops.HealthOptions{Timeout: time.Minute})
	assert.NilError(t, err, health.String())
	assert.Equal(t, len(health.Pods), 2)
	for _, p := range health.Pods {
		assert.Check(t, p.Healthy() && p.Ready, "%+v", p)
	}
	t.Logf("canary health:\n%s", health)
	health, err = ops.Health(t.Context(), cfg, client, stable, ops.HealthOptions{Timeout: time.Minute})
	assert.Check(t, errors.Is(err, ops.ErrUnhealthy), "stable's image answers 503: %v", err)
	assert.Equal(t, len(health.Pods), 1)
	assert.Equal(t, health.Pods[0].Status, http.StatusServiceUnavailable, "%+v", health.Pods[0])

	// Logs: pods/log through the API server, answered by the fake kubelet.
	logs, err := ops.Logs(t.Context(), client, canary, ops.LogOptions{})
	assert.NilError(t, err)
	assert.Equal(t, len(logs.Pods), 2)
	for _, p := range logs.Pods {
		assert.Check(t, slices.Contains(p.Lines, "INFO Uvicorn running on http://0.0.0.0:8765"), "%s: %q", p.Pod, p.Lines)
	}
	assert.Check(t, is.Contains(logs.String(), "INFO GET /pc/v1/healthcheck 200"))

	// Stopping (SIGTERM in the container) stops every component.
	cancel()
	stopped = true
	assert.NilError(t, <-done)
	_, err = net.DialTimeout("tcp", apiAddr, time.Second)
	assert.Check(t, err != nil, "the API server still accepts connections after serve returned")
	_, err = net.DialTimeout("tcp", readyAddr, time.Second)
	assert.Check(t, err != nil, "the ready port still accepts connections after serve returned")
	assert.Check(t, is.Len(runningFrom(binDir), 0), "components still running after serve returned")
	if t.Failed() {
		dumpLog()
	}
}

// TestSandboxImagesMatchTheTestClusterVersions keeps the sandbox (official
// images, ci/sandbox.go) on the Kubernetes and etcd that the tests build
// (tools/testcluster/go.mod), so both run the same control plane.
func TestSandboxImagesMatchTheTestClusterVersions(t *testing.T) {
	goMod, err := os.ReadFile("../../tools/testcluster/go.mod")
	assert.NilError(t, err)
	required := func(module string) string {
		for line := range strings.Lines(string(goMod)) {
			fields := strings.Fields(line)
			if len(fields) >= 2 && fields[0] == module {
				return fields[1]
			}
		}
		t.Fatalf("tools/testcluster/go.mod does not require %s", module)
		return ""
	}
	kubernetes, etcd := required("k8s.io/kubernetes"), required("go.etcd.io/etcd/server/v3")
	sandbox, err := os.ReadFile("../../ci/sandbox.go")
	assert.NilError(t, err)
	for _, want := range []string{
		`"registry.k8s.io/kube-apiserver:` + kubernetes + `"`,
		`"registry.k8s.io/kube-controller-manager:` + kubernetes + `"`,
		// kubeadm's tag: the etcd version and an image revision.
		`"registry.k8s.io/etcd:` + strings.TrimPrefix(etcd, "v") + `-0"`,
	} {
		assert.Check(t, is.Contains(string(sandbox), want), "ci/sandbox.go must use %s", want)
	}
}
