// Package fakekubelet serves the two kubelet endpoints the API server proxies
// for an operator: container logs (pods/log) and port forwarding
// (pods/portforward). The fake nodes of package fakenode publish it in their
// Node status, so `kubectl logs`-style reads and port-forwards reach it through
// the real API server, its authorization and its stream translation, exactly as
// they reach a kubelet on a cluster.
//
// It listens on 127.0.0.1 with a self-signed certificate whose PEM the API
// server is given as --kubelet-certificate-authority, so the API server
// verifies it as it would verify a kubelet. What a container logs and what its
// ports answer are functions of the pod: DefaultLogs and DefaultApp choose by
// image tag ("unhealthy" answers the health check with 503, "chatty" logs
// thousands of lines).
package fakekubelet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Options configure Start.
type Options struct {
	// Pod looks up the pod a request names; a request for a pod it cannot
	// find is answered 404. Required.
	Pod func(ctx context.Context, namespace, name string) (*corev1.Pod, error)
	// Logs returns what a container has logged so far, oldest first; nil
	// means DefaultLogs.
	Logs func(pod *corev1.Pod, container string, now time.Time) []Line
	// App answers connections forwarded to a pod's port; a nil handler means
	// nothing listens there (the forward fails as "connection refused"). Nil
	// means DefaultApp.
	App func(pod *corev1.Pod, port int32) http.Handler
	// Now is the clock for log times; nil means time.Now.
	Now func() time.Time
	// Log receives one line per request and errors; nil discards them.
	Log *slog.Logger
}

// Kubelet is a running fake kubelet.
type Kubelet struct {
	opts   Options
	log    *slog.Logger
	ln     net.Listener
	srv    *http.Server
	caPEM  []byte
	app    *appServer
	done   chan struct{}
	closed sync.Once
}

// Start listens on a free port of 127.0.0.1 and serves until Close.
func Start(opts Options) (*Kubelet, error) {
	if opts.Pod == nil {
		return nil, errors.New("start fake kubelet: no Pod lookup; pass a function that gets pods from the cluster")
	}
	if opts.Logs == nil {
		opts.Logs = DefaultLogs
	}
	if opts.App == nil {
		opts.App = DefaultApp
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cert, caPEM, err := selfSigned()
	if err != nil {
		return nil, fmt.Errorf("start fake kubelet: %w", err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, fmt.Errorf("start fake kubelet: listen on 127.0.0.1: %w", err)
	}
	k := &Kubelet{opts: opts, log: log, ln: ln, caPEM: caPEM, done: make(chan struct{})}
	k.app = newAppServer(log)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", k.containerLogs)
	mux.HandleFunc("/portForward/{namespace}/{pod}", k.portForward)
	k.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go func() {
		defer close(k.done)
		if err := k.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("fake kubelet stopped", "err", err)
		}
	}()
	return k, nil
}

// Port is the port the kubelet listens on, for the Node's
// status.daemonEndpoints.kubeletEndpoint.
func (k *Kubelet) Port() int32 { return int32(k.ln.Addr().(*net.TCPAddr).Port) }

// Address is the IP the kubelet listens on, for the Node's InternalIP.
func (k *Kubelet) Address() string { return k.ln.Addr().(*net.TCPAddr).IP.String() }

// URL is the kubelet's base URL.
func (k *Kubelet) URL() string { return "https://" + k.ln.Addr().String() }

// CACertPEM is the certificate that signs the kubelet's serving certificate
// (it is self-signed): give it to the API server as
// --kubelet-certificate-authority.
func (k *Kubelet) CACertPEM() []byte { return append([]byte(nil), k.caPEM...) }

// Close stops serving and ends open streams. It is safe to call more than
// once.
func (k *Kubelet) Close() error {
	var err error
	k.closed.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		// Hijacked (port-forward) connections are not closed by Shutdown.
		k.app.close()
		if err = k.srv.Shutdown(ctx); err != nil {
			err = k.srv.Close()
		}
		<-k.done
	})
	return err
}

func (k *Kubelet) pod(w http.ResponseWriter, r *http.Request) (*corev1.Pod, bool) {
	ns, name := r.PathValue("namespace"), r.PathValue("pod")
	pod, err := k.opts.Pod(r.Context(), ns, name)
	if err != nil {
		k.log.Warn("fake kubelet: unknown pod", "namespace", ns, "pod", name, "err", err)
		http.Error(w, fmt.Sprintf("pod %s/%s not found on this node", ns, name), http.StatusNotFound)
		return nil, false
	}
	return pod, true
}

// selfSigned makes a certificate for 127.0.0.1 and localhost that is its own
// certificate authority.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generate a serving key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generate a serial number: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "fake-kubelet"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("sign the serving certificate: %w", err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pemBytes, nil
}
