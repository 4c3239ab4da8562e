package main

import (
	"context"

	"example.com/x/internal/dagger"
	"example.com/x/targets"
)

type Mod struct {
	Src    *dagger.Directory
	Target targets.Name
	hidden targets.Name
}

type Result struct {
	Digest string
	Pods   map[string]int
}

type Env string

func New(src *dagger.Directory, env Env) *Mod { return &Mod{Src: src} }

func (m *Mod) Ok(ctx context.Context, names []string, n int) (*Result, error) { return nil, nil }

func (m *Mod) Bad(ctx context.Context, t targets.Name) (string, error) { return "", nil }

func (m *Mod) unexported(t targets.Name) {}

func helper(t targets.Target) {}
