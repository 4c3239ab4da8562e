package fakenode

import (
	"context"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// AppRun is how an app's process fares in a pod's container.
type AppRun struct {
	// Behavior is Ready, NeverReady (it runs but its readiness probe
	// fails) or CrashLoop (it exits soon after each start).
	Behavior Behavior
	// Probe is a failing readiness probe's result as the kubelet words it,
	// e.g. "HTTP probe failed with statuscode: 503".
	Probe string
	// ExitCode is how a crashing process exits; zero means 1.
	ExitCode int32
	// Logs are the lines the process prints in each run, oldest first.
	Logs []string
}

// Play decides how the app fares in pod, given the environment the kubelet
// gives its first container; ok false leaves the pod to Options.Behavior.
type Play func(pod *corev1.Pod, env map[string]string) (run AppRun, ok bool)

// Apps plays the app in the pods of fake nodes: one Apps serves the fake
// nodes (the pod's state) and the fake kubelet (its logs), so that both tell
// the same run. A pod's run is decided once, from its environment.
type Apps struct {
	play   Play
	client kubernetes.Interface
	// ImageEnv, when set, gives the environment an image's config sets
	// (its ENV), which a kubelet starts the container with, under what the
	// pod sets; nil or an error means none.
	ImageEnv func(ctx context.Context, image string) (map[string]string, error)

	mu   sync.Mutex
	runs map[types.UID]*appRun
}

type appRun struct {
	run AppRun
	ok  bool
}

// NewApps plays pods with play, reading the Secrets and ConfigMaps their
// environment comes from through client.
func NewApps(client kubernetes.Interface, play Play) *Apps {
	return &Apps{play: play, client: client, runs: map[types.UID]*appRun{}}
}

// Run is how the app fares in pod, or false when play leaves the pod alone
// or its environment cannot be read yet.
func (a *Apps) Run(ctx context.Context, pod *corev1.Pod) (AppRun, bool) {
	if a == nil || len(pod.Spec.Containers) == 0 {
		return AppRun{}, false
	}
	a.mu.Lock()
	r, done := a.runs[pod.UID]
	a.mu.Unlock()
	if done {
		return r.run, r.ok
	}
	env, err := ContainerEnv(ctx, a.client, pod, pod.Spec.Containers[0].Name)
	if err != nil {
		return AppRun{}, false
	}
	if a.ImageEnv != nil {
		if base, err := a.ImageEnv(ctx, pod.Spec.Containers[0].Image); err == nil {
			for k, v := range base {
				if _, set := env[k]; !set {
					env[k] = v
				}
			}
		}
	}
	run, ok := a.play(pod, env)
	a.mu.Lock()
	a.runs[pod.UID] = &appRun{run: run, ok: ok}
	a.mu.Unlock()
	return run, ok
}

// forget drops what is remembered of a pod that is gone.
func (a *Apps) forget(uid types.UID) {
	if a == nil {
		return
	}
	a.mu.Lock()
	delete(a.runs, uid)
	a.mu.Unlock()
}

// ContainerEnv is the environment the kubelet gives a container: its
// envFrom sources (Secrets and ConfigMaps, with their prefixes) first, then
// its env (values, and keys of Secrets and ConfigMaps), a later name
// replacing an earlier one. Unlike a kubelet, it does not refuse a missing
// Secret or ConfigMap: it contributes nothing.
func ContainerEnv(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod, container string) (map[string]string, error) {
	var c *corev1.Container
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == container {
			c = &pod.Spec.Containers[i]
		}
	}
	if c == nil {
		return nil, fmt.Errorf("pod %s has no container %s", pod.Name, container)
	}
	secrets := map[string]map[string][]byte{}
	configs := map[string]map[string]string{}
	secret := func(name string) (map[string][]byte, error) {
		if d, ok := secrets[name]; ok {
			return d, nil
		}
		s, err := client.CoreV1().Secrets(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			secrets[name] = nil
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read secret %s for pod %s: %w", name, pod.Name, err)
		}
		secrets[name] = s.Data
		return s.Data, nil
	}
	config := func(name string) (map[string]string, error) {
		if d, ok := configs[name]; ok {
			return d, nil
		}
		cm, err := client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			configs[name] = nil
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read configmap %s for pod %s: %w", name, pod.Name, err)
		}
		configs[name] = cm.Data
		return cm.Data, nil
	}
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.SecretRef != nil:
			d, err := secret(ef.SecretRef.Name)
			if err != nil {
				return nil, err
			}
			for k, v := range d {
				env[ef.Prefix+k] = string(v)
			}
		case ef.ConfigMapRef != nil:
			d, err := config(ef.ConfigMapRef.Name)
			if err != nil {
				return nil, err
			}
			for k, v := range d {
				env[ef.Prefix+k] = v
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = expand(e.Value, env)
		case e.ValueFrom.SecretKeyRef != nil:
			d, err := secret(e.ValueFrom.SecretKeyRef.Name)
			if err != nil {
				return nil, err
			}
			if v, ok := d[e.ValueFrom.SecretKeyRef.Key]; ok {
				env[e.Name] = string(v)
			}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			d, err := config(e.ValueFrom.ConfigMapKeyRef.Name)
			if err != nil {
				return nil, err
			}
			if v, ok := d[e.ValueFrom.ConfigMapKeyRef.Key]; ok {
				env[e.Name] = v
			}
		}
	}
	return env, nil
}

// expand replaces $(NAME) with earlier variables, as the kubelet does.
func expand(v string, env map[string]string) string {
	if !strings.Contains(v, "$(") {
		return v
	}
	for k, val := range env {
		v = strings.ReplaceAll(v, "$("+k+")", val)
	}
	return v
}

// terminationMessage is what the kubelet puts in a crashed container's
// last state: with terminationMessagePolicy FallbackToLogsOnError, the last
// lines it printed (at most 80 lines and 2 KiB).
func terminationMessage(c *corev1.Container, logs []string) string {
	if c == nil || c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError || len(logs) == 0 {
		return ""
	}
	if len(logs) > 80 {
		logs = logs[len(logs)-80:]
	}
	msg := strings.Join(logs, "\n")
	if len(msg) > 2048 {
		msg = msg[len(msg)-2048:]
	}
	return msg
}
