package main

import (
	"context"

	"example.com/x/internal/dagger"
)

// Mod is a module whose arguments break the engine's generated dispatcher.
type Mod struct{}

func New(parent string) *Mod { return &Mod{} }

func (m *Mod) Status(ctx context.Context, json bool) (string, error) { return "", nil }

func (m *Mod) Errs(ctx context.Context, err string, inputArgs []string, fmt int) error { return nil }

func (m *Mod) Types(string string, n int) string { return "" }

func (m *Mod) Same(dry_run bool, dryRun bool) error { return nil }

func (m *Mod) Blank(_ string, s *dagger.Secret) error { return nil }

func (m *Mod) Unnamed(string) error { return nil }

func (m *Mod) Fine(ctx context.Context, asJson bool, errorText string, p dagger.Platform) error {
	return nil
}

// notExposed is not a function of the module, whatever its arguments.
func (m *Mod) notExposed(json bool) {}

// Options in a struct named json: the dispatcher declares `var json struct{…}`.
func (m *Mod) Opts(json *struct {
	// Name.
	Name string
	// Size.
	Size int
}) error {
	return nil
}
