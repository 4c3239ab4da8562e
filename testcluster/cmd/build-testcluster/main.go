// Command build-testcluster builds the testcluster helper binary into its
// cache (or reuses the cached one) and prints its path, so CI can build it
// once before running tests:
//
//	export RINGG_TESTCLUSTER_BIN="$(go run ./testcluster/cmd/build-testcluster)"
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/ringg/ringg-ci/testcluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	bin, err := testcluster.Build(ctx, testcluster.BuildOptions{Log: os.Stderr})
	if err != nil {
		fmt.Fprintf(os.Stderr, "build-testcluster: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(bin)
}
