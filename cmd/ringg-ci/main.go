// Command ringg-ci is the runner: the release verbs the Dagger module runs
// in a container (`ringg-ci --help` lists them, runner/cli defines them). It
// runs the same anywhere with Go:
//
//	go run ./cmd/ringg-ci status --kubeconfig ~/.kube/config
//	RINGG_CI_ACCESS_TOKEN=$(gcloud auth print-access-token) go run ./cmd/ringg-ci plan --branch dv-main
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	// The TLS roots of Google's APIs come with the binary (Mozilla's, from a
	// checksummed module): the runner image is the binary alone, on no base
	// image, and a system's own roots still win where it has them.
	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/ringg/ringg-ci/runner/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := cli.Run(ctx, os.Args[1:], cli.OSEnv())
	stop()
	os.Exit(code)
}
