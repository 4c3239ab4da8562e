// Command deployonce runs one deploy with the runner and exits. The
// bench command builds it and runs it as a child process to read the peak
// RSS of a deploy: it links only the runner's release package, so the number
// is the runner's,
// not the benchmark's.
//
//	deployonce -kubeconfig k -namespace ns -chart deploy/chart -target canary -digest sha256:...
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/runner/release"
	"github.com/ringg/ringg-ci/tools/bench/internal/plans"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file of the cluster")
	ns := flag.String("namespace", "", "namespace of the releases")
	chartDir := flag.String("chart", "", "chart directory")
	target := flag.String("target", "canary", "canary or stable")
	digest := flag.String("digest", "", "image digest to deploy")
	flag.Parse()
	if err := run(*kubeconfig, *ns, *chartDir, *target, *digest); err != nil {
		fmt.Fprintln(os.Stderr, "deployonce:", err)
		os.Exit(1)
	}
}

func run(kubeconfig, ns, chartDir, target, digest string) error {
	raw, err := os.ReadFile(kubeconfig)
	if err != nil {
		return fmt.Errorf("read kubeconfig: %w", err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(raw)
	if err != nil {
		return fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	var plan pipeline.DeployPlan
	switch target {
	case "canary":
		plan, err = plans.Canary(ns, chartDir, digest, nil)
	case "stable":
		plan, err = plans.Stable(ns, chartDir, digest)
	default:
		return fmt.Errorf("target %q: use canary or stable", target)
	}
	if err != nil {
		return err
	}
	d := release.Deploy{Clients: release.Clients{Config: cfg}, Plan: plan}
	_, err = d.Run(context.Background())
	return err
}
