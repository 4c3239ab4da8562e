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

	"github.com/ringg/ringg-ci/runner/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := cli.Run(ctx, os.Args[1:], cli.OSEnv())
	stop()
	os.Exit(code)
}
