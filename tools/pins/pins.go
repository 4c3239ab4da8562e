//go:build tools

// Package pins keeps test-only dependencies of the root module in go.mod
// before any test imports them.
package pins

import (
	_ "github.com/google/go-containerregistry/pkg/registry"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "gotest.tools/v3/golden"
	_ "k8s.io/client-go/kubernetes"
)
