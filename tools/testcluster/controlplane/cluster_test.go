package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// readyzServer serves /readyz with p's serving certificate, answering 500
// until notReady answers have been given, then 200; it requires the
// admin's client certificate, as kube-apiserver does.
func readyzServer(t *testing.T, p PKI, notReady int32) APIServer {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(p.ServingCert(), p.ServingKey())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(p.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	var asked atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != AdminUser {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		if asked.Add(1) <= notReady {
			http.Error(w, "[-]etcd failed", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return APIServer{BindAddress: "127.0.0.1", Port: srv.Listener.Addr().(*net.TCPAddr).Port}
}

func TestWaitReady(t *testing.T) {
	l := Layout{DataDir: t.TempDir()}
	p, err := l.Prepare(APIServer{BindAddress: "127.0.0.1", AdvertiseAddress: "127.0.0.1", ServiceCIDR: "10.96.0.0/16", Port: 1}, []byte("seed"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.ControllerManagerKubeconfig()); err != nil {
		t.Fatalf("Prepare writes the controller-manager's kubeconfig: %v", err)
	}

	t.Run("ready after a few answers", func(t *testing.T) {
		api := readyzServer(t, p, 3)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := api.WaitReady(ctx, p, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("gives up with ctx, saying the last answer", func(t *testing.T) {
		api := readyzServer(t, p, 1<<30)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err := api.WaitReady(ctx, p, nil)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "500 Internal Server Error: [-]etcd failed") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("abort's error ends it", func(t *testing.T) {
		api := readyzServer(t, p, 1<<30)
		exited := errors.New("etcd exited")
		if err := api.WaitReady(context.Background(), p, func() error { return exited }); err != exited {
			t.Fatalf("got %v", err)
		}
	})
}
