//go:build tools

// This file pins dagger.io/dagger in go.mod: the Dagger engine generates
// internal/dagger from it, and CI builds a stand-in of that package from the
// same version to type-check package main without an engine.
package main

import (
	_ "dagger.io/dagger"
	_ "github.com/sethvargo/go-githubactions"
	_ "golang.org/x/oauth2/google"
	_ "golang.org/x/oauth2/google/externalaccount"
	_ "gotest.tools/v3/assert"
	_ "gotest.tools/v3/golden"
	_ "helm.sh/helm/v3/pkg/action"
	_ "helm.sh/helm/v3/pkg/chart/loader"
	_ "helm.sh/helm/v3/pkg/cli/values"
	_ "helm.sh/helm/v3/pkg/lint"
	_ "k8s.io/api/coordination/v1"
	_ "k8s.io/cli-runtime/pkg/genericclioptions"
	_ "k8s.io/client-go/discovery/cached/memory"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/client-go/restmapper"
	_ "k8s.io/client-go/tools/clientcmd"
	_ "k8s.io/client-go/tools/portforward"
	_ "k8s.io/client-go/transport"
	_ "k8s.io/client-go/transport/spdy"
)
