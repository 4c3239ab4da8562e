// Command sandbox-cluster is the entrypoint of the sandbox's throwaway
// Kubernetes cluster, run as a Dagger service by `dagger call sandbox` in a
// container made of the official control-plane images.
//
//	sandbox-cluster serve [--bin-dir /usr/local/bin] [--api-port 6443] [--ready-port 6444] [--alias kube] ...
//
// serve generates the cluster's PKI, starts etcd, kube-apiserver and
// kube-controller-manager from --bin-dir (where the official images keep
// them) as child processes, waits until the API server is ready, registers
// fake nodes (package testcluster/fakenode) that bind pods and report them
// Running and Ready, runs a fake kubelet (package testcluster/fakekubelet)
// behind them that answers pod logs and port-forwards through the API server,
// and only then opens the ready port. Dagger's service health check waits
// for that port, so a function that starts the service finds the cluster
// ready. The ready port serves GET /kubeconfig: an admin kubeconfig whose
// server is https://<alias>:<api-port>, the name the serving certificate
// carries. No container really runs.
//
// serve exits when a component exits, and stops the components on SIGTERM
// or SIGINT; the kernel kills them if serve itself dies. With
// $SANDBOX_PKI_SEED set, the cluster's CA and admin keys are derived from it
// (package tools/testcluster/controlplane), so every instance of the service
// started with the same seed has the same credentials.
//
//	sandbox-cluster kubeconfig --url http://kube:6444/kubeconfig --out FILE [--server HOST:PORT] [--tls-server-name kube]
//
// kubeconfig fetches that kubeconfig, retrying until the service answers,
// optionally points every cluster at another address while the certificate
// is still checked against the original name, and writes it to FILE (never
// to the terminal: it holds the admin key).
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage:
  sandbox-cluster serve [flags]        run the throwaway cluster with fake nodes (serve -h for flags)
  sandbox-cluster kubeconfig [flags]   fetch its admin kubeconfig into a file (kubeconfig -h for flags)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(cli(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// cli runs one command and returns the process exit code.
func cli(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	switch args[0] {
	case "serve":
		opts, err := parseServe(args[1:], getenv, stderr)
		if err != nil {
			return flagError("serve", err, stderr)
		}
		opts.Log = log
		if err := serve(ctx, opts, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "sandbox-cluster serve: %v\n", err)
			return 1
		}
		return 0
	case "kubeconfig":
		opts, err := parseFetch(args[1:], stderr)
		if err != nil {
			return flagError("kubeconfig", err, stderr)
		}
		if err := fetchKubeconfig(ctx, opts); err != nil {
			fmt.Fprintf(stderr, "sandbox-cluster kubeconfig: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "sandbox-cluster: kubeconfig written to %s\n", opts.Out)
		return 0
	default:
		fmt.Fprintf(stderr, "sandbox-cluster: unknown command %q\n%s", args[0], usage)
		return 2
	}
}
