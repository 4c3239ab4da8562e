// Package integration holds tests that run the pipeline's packages against
// real servers: a Kubernetes control plane with fake nodes (package
// testcluster), an in-process OCI registry and loopback HTTP servers.
//
// One test cluster serves the whole package; `go test -short` starts none and
// the tests that need it skip.
package integration

import (
	"os"
	"testing"

	"github.com/ringg/ringg-ci/testcluster"
)

// cluster is the package's test cluster; give each test its own namespace
// with cluster.Namespace(t).
var cluster *testcluster.Cluster

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m, &cluster)) }
