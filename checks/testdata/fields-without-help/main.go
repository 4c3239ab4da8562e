package main

import "example.com/x/internal/dagger"

// Mod keeps its configuration in fields.
type Mod struct {
	// Application source.
	Source     *dagger.Directory
	Dockerfile string
	// Overrides of the project and image.
	Project, Image string
	// +private
	Token, Password *dagger.Secret
	// +private
	Kubeconfig *dagger.Secret
	Namespace  string // Kubernetes namespace.
	Skipped    string `json:"-"`
	hidden     string
}

// Report is returned by a function, so its fields are functions too.
type Report struct {
	Digest string
	// Pods ready.
	Ready int
}

// Unused is not reachable from Mod: nothing of it is exposed.
type Unused struct {
	Name string
}

func New() *Mod { return &Mod{} }

// Report the state.
func (m *Mod) Report() *Report { return nil }
