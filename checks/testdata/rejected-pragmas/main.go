package main

import "example.com/x/internal/dagger"

// Mod has pragmas the codegen refuses.
type Mod struct{}

// Target is an enum.
type Target string

const (
	Staging Target = "STAGING"
	Prod    Target = "PROD"
)

func New() *Mod { return &Mod{} }

// Run somewhere.
// +cache=5
// +check=yes
func (m *Mod) Run(
	// Target.
	// +default="staging"
	target Target,
	// Source.
	// +defaultPath=1
	// +ignore=["ok", 2]
	src *dagger.Directory,
	// Fine: by value.
	// +default="PROD"
	other Target,
	// Fine too: by API name.
	// +default="Staging"
	third Target,
) error {
	return nil
}

// Fine.
// +cache="never"
// +check
func (m *Mod) Fine() error { return nil }
