package main

import "example.com/x/internal/dagger"

// Mod sets fields in New that its functions never see.
type Mod struct {
	// +private
	Source *dagger.Directory
	cache  map[string]string
	// +private
	Token string `json:"-"`
	// Kept: exported and tagged with another name.
	Renamed string `json:"renamed,omitempty"`
}

func New(src *dagger.Directory) *Mod {
	return &Mod{Source: src, cache: map[string]string{}}
}
