package ops

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/ringg/ringg-ci/ci/targets"
)

// ErrUnhealthy is returned when a pod's health endpoint does not answer 200.
var ErrUnhealthy = errors.New("unhealthy")

// HealthOptions configure Health. Zero values mean the chatbot's contract.
type HealthOptions struct {
	// Path is the health endpoint; default DefaultHealthPath.
	Path string
	// Port is the container port; default DefaultPort.
	Port int32
	// Timeout bounds each pod's check, port-forward included; default 10s.
	Timeout time.Duration
	// Parallel is how many pods are checked at once; default 8.
	Parallel int
	// Logger receives one line per pod; nil discards them.
	Logger *slog.Logger
}

// PodHealth is the result of one pod's check.
type PodHealth struct {
	Pod   string `json:"pod"`
	Ready bool   `json:"ready"` // the pod's Ready condition, as Kubernetes sees it
	// Status is the HTTP status of the health endpoint; 0 when it could
	// not be reached.
	Status  int           `json:"status"`
	Latency time.Duration `json:"-"`
	// Body is the start of a failing answer's body.
	Body  string `json:"body,omitempty"`
	Error string `json:"error,omitempty"`
}

// MarshalJSON adds latencyMs, the latency in milliseconds, and healthy.
func (p PodHealth) MarshalJSON() ([]byte, error) {
	type plain PodHealth
	return json.Marshal(struct {
		plain
		LatencyMS float64 `json:"latencyMs"`
		Healthy   bool    `json:"healthy"`
	}{plain(p), float64(p.Latency.Microseconds()) / 1000, p.Healthy()})
}

// Healthy reports whether the endpoint answered 200.
func (p PodHealth) Healthy() bool { return p.Status == http.StatusOK && p.Error == "" }

// HealthReport is the health of every pod of a target.
type HealthReport struct {
	Target    string      `json:"target"`
	Namespace string      `json:"namespace"`
	Selector  string      `json:"selector"`
	Endpoint  string      `json:"endpoint"` // port and path checked
	Pods      []PodHealth `json:"pods"`
}

// Unhealthy names the pods that failed their check.
func (r HealthReport) Unhealthy() []string {
	var out []string
	for _, p := range r.Pods {
		if !p.Healthy() {
			out = append(out, p.Pod)
		}
	}
	return out
}

// String is a table, one row per pod, under a summary line.
func (r HealthReport) String() string {
	var b strings.Builder
	bad := len(r.Unhealthy())
	verdict := "all healthy"
	if bad > 0 {
		verdict = fmt.Sprintf("%d unhealthy", bad)
	}
	fmt.Fprintf(&b, "health of %s in %s (%s), %s: %d pods, %s\n", r.Target, r.Namespace, r.Selector, r.Endpoint, len(r.Pods), verdict)
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "POD\tREADY\tSTATUS\tLATENCY\tRESULT")
	for _, p := range r.Pods {
		status, latency, result := "-", "-", "ok"
		if p.Status != 0 {
			status, latency = strconv.Itoa(p.Status), p.Latency.Round(time.Millisecond).String()
		}
		switch {
		case p.Error != "":
			result = "error: " + p.Error
		case !p.Healthy():
			result = "unhealthy: " + p.Body
		}
		fmt.Fprintf(w, "%s\t%t\t%s\t%s\t%s\n", p.Pod, p.Ready, status, latency, result)
	}
	w.Flush()
	return b.String()
}

// Health checks the health endpoint of every pod of t through a
// port-forward by the API server, so it needs only pods list and
// pods/portforward. It returns the report and, when any pod did not answer
// 200, an error wrapping ErrUnhealthy that names them.
func Health(ctx context.Context, cfg *rest.Config, c kubernetes.Interface, t targets.Target, opts HealthOptions) (HealthReport, error) {
	if opts.Path == "" {
		opts.Path = DefaultHealthPath
	}
	if opts.Port == 0 {
		opts.Port = DefaultPort
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	report := HealthReport{Target: string(t.Name), Namespace: t.Namespace, Selector: Selector(t), Endpoint: fmt.Sprintf(":%d%s", opts.Port, opts.Path)}
	ps, red, err := printedPods(ctx, c, t, "")
	if err != nil {
		return report, fmt.Errorf("check health of %s: %w", t.Name, err)
	}
	report.Pods = make([]PodHealth, len(ps))
	each(len(ps), opts.Parallel, func(i int) {
		p := &ps[i]
		h := PodHealth{Pod: p.Name, Ready: ready(p)}
		pctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
		if err := check(pctx, cfg, c, p, opts, &h); err != nil {
			h.Error = err.Error()
		}
		h.Body, h.Error = red.Text(h.Body), red.Text(h.Error)
		log.Info("health", "target", t.Name, "pod", h.Pod, "status", h.Status, "latency", h.Latency.Round(time.Millisecond), "error", h.Error)
		report.Pods[i] = h
	})
	if bad := report.Unhealthy(); len(bad) > 0 {
		return report, fmt.Errorf("%w: %d of %d pods of %s in %s failed %s: %s; read their logs with `logs --pod NAME`",
			ErrUnhealthy, len(bad), len(report.Pods), t.Name, t.Namespace, report.Endpoint, strings.Join(bad, ", "))
	}
	return report, nil
}

// check sends one GET to the pod's port over a port-forward stream and fills
// h's status, latency and body.
func check(ctx context.Context, cfg *rest.Config, c kubernetes.Interface, p *corev1.Pod, opts HealthOptions, h *PodHealth) error {
	f, err := openForward(ctx, cfg, c, p, opts.Port)
	if err != nil {
		return err
	}
	defer f.close()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://localhost:%d%s", opts.Port, opts.Path), nil)
	if err != nil {
		return fmt.Errorf("build the health request: %w", err)
	}
	req.Close = true
	start := time.Now()
	exchange := func() error {
		if err := req.Write(f.data); err != nil {
			return fmt.Errorf("send GET %s: %w", opts.Path, err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(f.data), req)
		if err != nil {
			return fmt.Errorf("read the answer to GET %s: %w", opts.Path, err)
		}
		defer resp.Body.Close()
		h.Latency = time.Since(start)
		h.Status = resp.StatusCode
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
			h.Body = strings.TrimSpace(string(body))
		}
		return nil
	}
	err = exchange()
	f.data.Close()
	if err != nil {
		return f.why(ctx, err, opts.Path)
	}
	return nil
}

// dial opens a port-forward connection to the pod as kubectl does: a
// websocket tunnel first, SPDY when the server cannot upgrade to it.
func dial(ctx context.Context, cfg *rest.Config, c kubernetes.Interface, p *corev1.Pod) (httpstream.Connection, error) {
	u := c.CoreV1().RESTClient().Post().Resource("pods").Namespace(p.Namespace).Name(p.Name).SubResource("portforward").URL()
	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("port-forward to %s: %w", p.Name, err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	tunnel, err := portforward.NewSPDYOverWebsocketDialer(u, cfg)
	if err != nil {
		return nil, fmt.Errorf("port-forward to %s: %w", p.Name, err)
	}
	fallback := portforward.NewFallbackDialer(tunnel, dialer, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	type dialed struct {
		conn httpstream.Connection
		err  error
	}
	out := make(chan dialed, 1)
	go func() {
		conn, _, err := fallback.Dial(portforward.PortForwardProtocolV1Name)
		out <- dialed{conn, err}
	}()
	select {
	case d := <-out:
		if d.err != nil {
			return nil, portForwardError(p, d.err)
		}
		return d.conn, nil
	case <-ctx.Done():
		go func() {
			if d := <-out; d.conn != nil {
				d.conn.Close()
			}
		}()
		return nil, fmt.Errorf("port-forward to %s: %w", p.Name, ctx.Err())
	}
}

// portForwardError says why a port-forward could not open: RBAC only when
// the API server refused it, else the path through the pod's node.
func portForwardError(p *corev1.Pod, err error) error {
	if apierrors.IsForbidden(err) || strings.Contains(strings.ToLower(err.Error()), "forbidden") {
		return fmt.Errorf("port-forward to %s: %w; the deploying account needs create and get on pods/portforward (deploy/rbac/<cluster>.yaml)", p.Name, err)
	}
	return fmt.Errorf("port-forward to %s: %w; the API server could not reach the kubelet of node %q that runs the pod: check the node (kubectl describe node) and retry", p.Name, err, p.Spec.NodeName)
}
