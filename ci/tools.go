//go:build tools

// This file keeps dagger.io/dagger in go.mod, as the engine's codegen
// requires it (`go get dagger.io/dagger@v0.21.9` on every load): without it
// `go mod tidy` here would drop what codegen adds back, and the committed
// go.mod would not be the one the engine leaves unchanged.
package main

import _ "dagger.io/dagger"
