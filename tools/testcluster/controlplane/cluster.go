package controlplane

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"
)

// Layout is where a cluster keeps its files under one data directory.
type Layout struct {
	DataDir string
}

// PKI is the cluster's certificates, under pki/.
func (l Layout) PKI() PKI { return PKI{Dir: filepath.Join(l.DataDir, "pki")} }

// ControllerManagerKubeconfig is the kubeconfig kube-controller-manager
// runs with.
func (l Layout) ControllerManagerKubeconfig() string {
	return filepath.Join(l.DataDir, "controller-manager.kubeconfig")
}

// Prepare makes, in l, the certificates a serves and its clients use (keys
// derived from seed unless it is empty; kept across restarts while a's
// names stay) and the controller-manager's kubeconfig.
func (l Layout) Prepare(a APIServer, seed []byte) (PKI, error) {
	p := l.PKI()
	if err := p.Ensure(KeySource{Seed: seed}, a.SANs()); err != nil {
		return p, fmt.Errorf("prepare certificates: %w", err)
	}
	return p, p.WriteKubeconfig(l.ControllerManagerKubeconfig(), a.ClientURL(), ControllerManagerUser)
}

// WaitReady asks a's /readyz, as the admin of p, every 100 ms until it
// answers ok. It gives up when ctx ends, or when abort (called after each
// answer that is not ok; nil for none) returns an error, which it returns
// as it is: a component that exited, a signal.
func (a APIServer) WaitReady(ctx context.Context, p PKI, abort func() error) error {
	tlsConfig, err := p.ClientTLS(AdminUser)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	server := a.ClientURL()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := "no answer yet"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/readyz", nil)
		if err != nil {
			return fmt.Errorf("wait for the API server: %w", err)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		} else if ctx.Err() == nil || last == "no answer yet" { // not one our deadline cut short
			last = err.Error()
		}
		if abort != nil {
			if err := abort(); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s/readyz: %w (last answer: %s); see the log above", server, ctx.Err(), last)
		case <-tick.C:
		}
	}
}
