package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	"k8s.io/client-go/rest"
)

func TestProxyForwardsAndCounts(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	upstream := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		io.WriteString(w, "ok "+r.URL.Path)
	}))
	defer upstream.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: upstream.Certificate().Raw})

	// A fake clock: every request arrives one second after the previous.
	var tick time.Time
	now := func() time.Time { tick = tick.Add(time.Second); return tick }
	p, err := startProxy(&rest.Config{Host: upstream.URL, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}}, now)
	assert.NilError(t, err)
	defer p.close()

	pool := x509.NewCertPool()
	assert.Assert(t, pool.AppendCertsFromPEM(p.CAPEM))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, path := range []string{"/api", "/openapi/v3", "/openapi/v3/apis/apps/v1", "/apis"} {
		resp, err := client.Get(p.URL + path)
		assert.NilError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, string(body), "ok "+path)
	}

	mu.Lock()
	assert.DeepEqual(t, seen, []string{"GET /api", "GET /openapi/v3", "GET /openapi/v3/apis/apps/v1", "GET /apis"})
	mu.Unlock()
	at := func(s int) time.Time { return time.Time{}.Add(time.Duration(s) * time.Second) }
	tests := []struct {
		name string
		got  counts
		want counts
	}{
		{"everything", p.between(at(0), at(10)), counts{Total: 4, OpenAPI: 2}},
		{"a window", p.between(at(2), at(3)), counts{Total: 2, OpenAPI: 2}},
		{"around a hole", p.outside(at(0), at(10), at(1), at(4)), counts{Total: 2, OpenAPI: 0}},
		{"nothing", p.between(at(5), at(10)), counts{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { assert.DeepEqual(t, tc.got, tc.want) })
	}
}
