package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// request is one API request the proxy forwarded.
type request struct {
	At      time.Time
	Method  string
	Path    string
	OpenAPI bool
}

// counts summarises the requests of a window.
type counts struct {
	Total, OpenAPI int
}

// proxy is a loopback TLS reverse proxy in front of the API server that
// records every request. Both tools reach the cluster through it, so both pay
// the same extra hop and are counted the same way. It serves its own
// certificate and authenticates upstream with the cluster's credentials, so a
// client needs only its CA.
type proxy struct {
	URL   string
	CAPEM []byte

	srv *http.Server
	mu  sync.Mutex
	log []request
	now func() time.Time
}

// startProxy listens on 127.0.0.1 and forwards to upstream's host with
// upstream's credentials.
func startProxy(upstream *rest.Config, now func() time.Time) (*proxy, error) {
	up := rest.CopyConfig(upstream)
	up.WrapTransport = nil
	rt, err := rest.TransportFor(up)
	if err != nil {
		return nil, fmt.Errorf("build the proxy's upstream transport: %w", err)
	}
	target, err := url.Parse(up.Host)
	if err != nil {
		return nil, fmt.Errorf("parse API server address %q: %w", up.Host, err)
	}
	certPEM, keyPEM, err := selfSigned()
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load the proxy's certificate: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the proxy: %w", err)
	}
	p := &proxy{URL: "https://" + ln.Addr().String(), CAPEM: certPEM, now: now}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = target.Host
		},
		Transport:     rt,
		FlushInterval: -1, // watches stream
	}
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.record(r)
			rp.ServeHTTP(w, r)
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = p.srv.ServeTLS(ln, "", "") }()
	return p, nil
}

func (p *proxy) record(r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, request{At: p.now(), Method: r.Method, Path: r.URL.Path, OpenAPI: strings.HasPrefix(r.URL.Path, "/openapi/")})
}

// between counts the requests that arrived in [from, to].
func (p *proxy) between(from, to time.Time) counts {
	return p.where(func(r request) bool { return !r.At.Before(from) && !r.At.After(to) })
}

// outside counts the requests that arrived in [from, to] but not in (a, b).
func (p *proxy) outside(from, to, a, b time.Time) counts {
	return p.where(func(r request) bool {
		in := !r.At.Before(from) && !r.At.After(to)
		hole := r.At.After(a) && r.At.Before(b)
		return in && !hole
	})
}

func (p *proxy) where(keep func(request) bool) counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	var c counts
	for _, r := range p.log {
		if keep(r) {
			c.Total++
			if r.OpenAPI {
				c.OpenAPI++
			}
		}
	}
	return c
}

// requests returns a copy of the log in [from, to], for -v.
func (p *proxy) requests(from, to time.Time) []request {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []request
	for _, r := range p.log {
		if !r.At.Before(from) && !r.At.After(to) {
			out = append(out, r)
		}
	}
	return out
}

// restConfig reaches the cluster through the proxy, with client-go's
// defaults otherwise (the runner sets its own rate limits).
func (p *proxy) restConfig() *rest.Config {
	return &rest.Config{Host: p.URL, TLSClientConfig: rest.TLSClientConfig{CAData: p.CAPEM}}
}

// kubeconfig is a kubeconfig for the helm CLI that reaches the cluster
// through the proxy.
func (p *proxy) kubeconfig() ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["bench"] = &clientcmdapi.Cluster{Server: p.URL, CertificateAuthorityData: p.CAPEM}
	cfg.AuthInfos["bench"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts["bench"] = &clientcmdapi.Context{Cluster: "bench", AuthInfo: "bench"}
	cfg.CurrentContext = "bench"
	return clientcmd.Write(*cfg)
}

func (p *proxy) close() error {
	err := p.srv.Close()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// selfSigned makes a certificate for 127.0.0.1 that is its own CA.
func selfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate the proxy's key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ringg-ci bench proxy"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create the proxy's certificate: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode the proxy's key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}
