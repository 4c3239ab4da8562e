package fakekubelet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/httpstream/spdy"
	"k8s.io/apimachinery/pkg/util/portforward"

	"github.com/ringg/ringg-ci/examples/chatbot/server"
	"github.com/ringg/ringg-ci/testcluster/fakenode"
)

// HealthPath is the chatbot's health endpoint, answered by DefaultApp.
const HealthPath = "/pc/v1/healthcheck"

// DefaultApp plays the chatbot on every port a container of the pod
// declares: the stand-in chatbot's own server (examples/chatbot/server), so
// health checks, drains and WebSocket calls forwarded to a pod reach the code
// the stand-in's image runs, configured from the container's literal
// environment (CLOSE_CALLS_AFTER_SECONDS breaks its calls, as on a real
// cluster). A container whose image tag is TagUnhealthy answers HealthPath
// with 503 {"status":"unhealthy"} instead. Undeclared ports have nothing
// listening. Each forwarded connection gets its own server: a call's state
// lives in its connection.
func DefaultApp(pod *corev1.Pod, port int32) http.Handler {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.ContainerPort != port {
				continue
			}
			if healthStatus(fakenode.ImageTag(c.Image)) != http.StatusOK {
				mux := http.NewServeMux()
				mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusServiceUnavailable)
					fmt.Fprintln(w, `{"status":"unhealthy"}`)
				})
				return mux
			}
			return standIn(c.Env)
		}
	}
	return nil
}

// standIn is the stand-in chatbot configured from a container's literal
// environment. A configuration it refuses answers 500 with the reason.
func standIn(env []corev1.EnvVar) http.Handler {
	getenv := func(name string) string {
		for _, e := range env {
			if e.Name == name {
				return e.Value
			}
		}
		return ""
	}
	cfg, err := server.ConfigFromEnv(getenv)
	if err != nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		})
	}
	// Nothing of the host is touched: no drain marker, no credentials file.
	cfg.DrainMarkerPath, cfg.CredsPath = "", ""
	return server.New(server.Options{Config: cfg, Getenv: getenv}).Handler()
}

// streamTimeout bounds the wait for the second stream of a pair, as the
// kubelet's stream creation timeout does.
const streamTimeout = 30 * time.Second

// portForward answers /portForward/{namespace}/{pod} as the kubelet does
// for the API server: a SPDY upgrade with protocol portforward.k8s.io, then
// pairs of streams (error and data) sharing a requestID header, each pair
// one connection to the port in their port header. The API server speaks
// SPDY to a kubelet that does not declare websocket support in its Node
// status (it translates a client's websocket tunnel itself), so SPDY is all
// this kubelet speaks.
func (k *Kubelet) portForward(w http.ResponseWriter, r *http.Request) {
	pod, ok := k.pod(w, r)
	if !ok {
		return
	}
	if _, err := httpstream.Handshake(r, w, []string{portforward.PortForwardV1Name}); err != nil {
		k.log.Warn("fake kubelet: port-forward handshake failed", "pod", pod.Name, "err", err)
		return // Handshake has answered
	}
	streams := make(chan httpstream.Stream)
	conn := spdy.NewResponseUpgrader().UpgradeResponse(w, r, func(s httpstream.Stream, _ <-chan struct{}) error {
		select {
		case streams <- s:
			return nil
		case <-k.app.stop:
			return errors.New("fake kubelet is stopping")
		}
	})
	if conn == nil {
		return // the upgrader has answered
	}
	defer conn.Close()
	conn.SetIdleTimeout(5 * time.Minute)
	k.log.Debug("fake kubelet: port-forward", "pod", pod.Namespace+"/"+pod.Name)

	type pair struct {
		data, errs httpstream.Stream
		created    time.Time
	}
	pairs := map[string]*pair{}
	expire := time.NewTicker(time.Second)
	defer expire.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-conn.CloseChan():
			return
		case <-k.app.stop:
			return
		case now := <-expire.C:
			for id, p := range pairs {
				if now.Sub(p.created) > streamTimeout {
					k.log.Warn("fake kubelet: incomplete stream pair", "pod", pod.Name, "requestID", id)
					conn.RemoveStreams(p.data, p.errs)
					delete(pairs, id)
				}
			}
		case s := <-streams:
			id := requestID(s)
			p := pairs[id]
			if p == nil {
				p = &pair{created: time.Now()}
				pairs[id] = p
			}
			switch s.Headers().Get(corev1.StreamType) {
			case corev1.StreamTypeData:
				p.data = s
			case corev1.StreamTypeError:
				p.errs = s
			default:
				k.log.Warn("fake kubelet: unknown stream type", "type", s.Headers().Get(corev1.StreamType))
				s.Reset()
				continue
			}
			if p.data != nil && p.errs != nil {
				delete(pairs, id)
				wg.Go(func() {
					k.forward(pod, p.data, p.errs)
					conn.RemoveStreams(p.data, p.errs)
				})
			}
		}
	}
}

// requestID pairs streams; a client without the header gets the kubelet's
// fallback, where the data stream follows its error stream.
func requestID(s httpstream.Stream) string {
	if id := s.Headers().Get(corev1.PortForwardRequestIDHeader); id != "" {
		return id
	}
	id := s.Identifier()
	if s.Headers().Get(corev1.StreamType) == corev1.StreamTypeData {
		id -= 2
	}
	return strconv.FormatUint(uint64(id), 10)
}

// forward connects one data stream to the pod's port and reports a failure
// on the error stream, which it closes when the connection ends.
func (k *Kubelet) forward(pod *corev1.Pod, data, errs httpstream.Stream) {
	defer errs.Close()
	port, err := strconv.ParseInt(data.Headers().Get(corev1.PortHeader), 10, 32)
	if err != nil || port <= 0 {
		fmt.Fprintf(errs, "invalid port %q", data.Headers().Get(corev1.PortHeader))
		data.Reset()
		return
	}
	h := k.opts.App(pod, int32(port))
	if h == nil {
		fmt.Fprintf(errs, "failed to connect to localhost:%d inside namespace %q, IPv4: dial tcp4 127.0.0.1:%d: connect: connection refused", port, pod.Namespace, port)
		data.Reset()
		return
	}
	local, remote := net.Pipe()
	if !k.app.serve(remote, h) {
		local.Close()
		data.Reset()
		return
	}
	toApp := make(chan struct{})
	fromApp := make(chan struct{})
	go func() {
		defer close(toApp)
		_, _ = io.Copy(local, data)
	}()
	go func() {
		defer close(fromApp)
		_, _ = io.Copy(data, local)
		data.Close()
	}()
	select {
	case <-fromApp:
	case <-toApp:
		// The client sent everything; let the app finish answering.
		select {
		case <-fromApp:
		case <-time.After(10 * time.Second):
		case <-k.app.stop:
		}
	case <-k.app.stop:
	}
	local.Close()
	data.Reset()
	<-fromApp
}

// appServer serves HTTP on in-memory connections, each with its own handler.
type appServer struct {
	srv   *http.Server
	conns chan net.Conn
	stop  chan struct{}
	once  sync.Once
}

type handlerKey struct{}

type appConn struct {
	net.Conn
	h http.Handler
}

func newAppServer(log *slog.Logger) *appServer {
	a := &appServer{conns: make(chan net.Conn), stop: make(chan struct{})}
	a.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Context().Value(handlerKey{}).(http.Handler).ServeHTTP(w, r)
		}),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, handlerKey{}, c.(appConn).h)
		},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() { _ = a.srv.Serve(a) }()
	return a
}

func (a *appServer) serve(c net.Conn, h http.Handler) bool {
	select {
	case a.conns <- appConn{Conn: c, h: h}:
		return true
	case <-a.stop:
		return false
	}
}

func (a *appServer) close() {
	a.once.Do(func() {
		close(a.stop)
		_ = a.srv.Close()
	})
}

// Accept, Close and Addr make appServer the listener of its own server.
func (a *appServer) Accept() (net.Conn, error) {
	select {
	case c := <-a.conns:
		return c, nil
	case <-a.stop:
		return nil, net.ErrClosed
	}
}

func (a *appServer) Close() error { return nil }

func (a *appServer) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "fake-pod" }
