package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
)

// fetchOptions configure fetchKubeconfig.
type fetchOptions struct {
	// URL is the served kubeconfig, e.g. http://kube:6444/kubeconfig.
	URL string
	// Out is the file to write.
	Out string
	// Server, as host:port, replaces every cluster's server (as
	// https://Server); "" keeps them.
	Server string
	// TLSServerName is the name the server certificate is checked against
	// when Server is set; "" means the host of the original server.
	TLSServerName string
	// Timeout bounds the retries while the service is not answering yet.
	Timeout time.Duration
	// Client makes the requests; nil means one with a 10 s timeout.
	Client *http.Client
}

func parseFetch(args []string, stderr io.Writer) (fetchOptions, error) {
	var o fetchOptions
	fs := flag.NewFlagSet("sandbox-cluster kubeconfig", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.URL, "url", "http://"+DefaultAlias+":6444/kubeconfig", "where the service serves its kubeconfig")
	fs.StringVar(&o.Out, "out", "", "file to write the kubeconfig to (required; it holds the admin key)")
	fs.StringVar(&o.Server, "server", "", "host:port to reach the API server at instead, e.g. a Dagger service endpoint")
	fs.StringVar(&o.TLSServerName, "tls-server-name", "", "name to check the server certificate against with --server (default: the original server's host)")
	fs.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "keep retrying this long while the service does not answer")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q; every option is a flag", fs.Args())
	}
	if o.Out == "" {
		return o, errors.New("--out is required: the kubeconfig holds the admin key and is never printed")
	}
	return o, nil
}

// fetchKubeconfig downloads the served kubeconfig, retrying while the
// service does not answer, rewrites its server and writes it to o.Out.
func fetchKubeconfig(ctx context.Context, o fetchOptions) error {
	if _, err := url.Parse(o.URL); err != nil {
		return fmt.Errorf("fetch kubeconfig: --url %q: %w", o.URL, err)
	}
	client := o.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	var data []byte
	last := "no answer yet"
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		body, err := get(ctx, client, o.URL)
		if err == nil {
			data = body
			return true, nil
		}
		// A request our own deadline cut short says nothing about the
		// service: keep the last answer it gave.
		if ctx.Err() == nil || last == "no answer yet" {
			last = err.Error()
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("fetch kubeconfig from %s: %w (last error: %s); is the sandbox-cluster service running and bound?", o.URL, err, last)
	}
	out, err := rewriteKubeconfig(data, o.Server, o.TLSServerName)
	if err != nil {
		return err
	}
	if dir := filepath.Dir(o.Out); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("write kubeconfig: %w", err)
		}
	}
	if err := os.WriteFile(o.Out, out, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

func get(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s", resp.Status)
	}
	return body, nil
}

// rewriteKubeconfig points every cluster of a kubeconfig at server (host:port,
// as https://server) and has its certificate checked against tlsServerName,
// by default the host of the cluster's original server, so verification
// stays complete. With server "" it only sets tlsServerName, when given.
func rewriteKubeconfig(data []byte, server, tlsServerName string) ([]byte, error) {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("read kubeconfig: %w", err)
	}
	if len(cfg.Clusters) == 0 {
		return nil, errors.New("read kubeconfig: it has no cluster")
	}
	var newServer string
	if server != "" {
		if u, err := url.Parse(server); err == nil && u.Scheme != "" && u.Host != "" {
			newServer = u.Scheme + "://" + u.Host // a URL was passed
		} else if _, _, err := net.SplitHostPort(server); err == nil {
			newServer = "https://" + server
		} else {
			return nil, fmt.Errorf("rewrite kubeconfig: server %q is neither host:port nor a URL", server)
		}
	}
	for name, cl := range cfg.Clusters {
		if newServer == "" {
			if tlsServerName != "" {
				cl.TLSServerName = tlsServerName
			}
			continue
		}
		serverName := tlsServerName
		if serverName == "" {
			serverName = cl.TLSServerName
		}
		if serverName == "" {
			u, err := url.Parse(cl.Server)
			if err != nil || u.Hostname() == "" {
				return nil, fmt.Errorf("rewrite kubeconfig: cluster %q: server %q is not a URL; pass a TLS server name", name, cl.Server)
			}
			serverName = u.Hostname()
		}
		cl.Server = newServer
		cl.TLSServerName = serverName
		if cl.InsecureSkipTLSVerify {
			return nil, fmt.Errorf("rewrite kubeconfig: cluster %q skips TLS verification; refusing to keep it", name)
		}
	}
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("write kubeconfig: %w", err)
	}
	return out, nil
}

// flagError turns a flag parsing error into an exit code: 0 for -h.
func flagError(cmd string, err error, stderr io.Writer) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "sandbox-cluster %s: %v\n", cmd, err)
	return 2
}
