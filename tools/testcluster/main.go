// Command testcluster runs a throwaway Kubernetes control plane for tests and
// sandboxes: etcd embedded in the process, kube-apiserver in the same process,
// and kube-controller-manager as a child process of the same binary.
//
//	testcluster serve --data-dir D [--port N] [--bind-address 127.0.0.1] [--tls-san kube]... [--pki-seed S]
//
// serve keeps everything in D: etcd data, the PKI (pki/), the chosen ports
// (state.json) and an admin kubeconfig (D/kubeconfig). Starting again with the
// same D brings back the same cluster on the same port with the same
// certificates. When the API server answers /readyz it prints
//
//	kubeconfig: D/kubeconfig
//	ready
//
// on stdout; logs go to stderr. It stops, taking its child with it, on
// SIGTERM, SIGINT or EOF on stdin (so a parent that dies takes the cluster
// with it; pass --watch-stdin=false where stdin is /dev/null).
//
// With --pki-seed the CA, service account and admin keys are derived from the
// seed: key = P-256 scalar from HKDF-SHA256(seed, salt none, info
// "ringg-testcluster/<name>", 32 bytes) for names "ca", "service-account" and
// "kubernetes-admin"; the CA certificate is self-signed with subject
// CN=ringg-testcluster-ca, serial 1, valid 2024-01-01 to 2124-01-01. Whoever
// holds the seed can rebuild the CA and admin client certificate without
// reading files back from the cluster.
//
// Run under the name etcd, kube-apiserver or kube-controller-manager (a
// symbolic link to it), the binary is that component with its own flags, as
// the official etcd, kube-apiserver and kube-controller-manager images run
// it: cmd/sandbox-cluster's tests use it so, in place of those images.
//
// Build it from this directory, outside any workspace:
//
//	GOWORK=off go build -trimpath -ldflags "-X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37" -o testcluster .
package main

import (
	"fmt"
	"os"
	"path/filepath"

	_ "time/tzdata" // CronJob time zones

	_ "k8s.io/component-base/logs/json/register"          // --logging-format=json
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric

	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

const usage = `usage:
  testcluster serve --data-dir D [flags]   run the control plane (serve -h for flags)
  testcluster controller-manager [flags]   internal: the kube-controller-manager child
`

func main() {
	// As the upstream commands' main functions do.
	switch filepath.Base(os.Args[0]) {
	case "etcd":
		etcdmain.Main(os.Args)
		return
	case "kube-apiserver":
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	}
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		os.Exit(serve(os.Args[2:], os.Stdout, os.Stderr))
	case "controller-manager":
		os.Exit(runControllerManager(os.Args[2:]))
	default:
		fmt.Fprintf(os.Stderr, "testcluster: unknown command %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}
