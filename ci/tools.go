//go:build tools

// This file pins dagger.io/dagger in go.mod: the Dagger engine generates
// internal/dagger from it, and CI builds a stand-in of that package from the
// same version to type-check package main without an engine.
package main

import _ "dagger.io/dagger"
