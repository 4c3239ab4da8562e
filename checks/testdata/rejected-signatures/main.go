package main

import "context"

// Mod is the main object: the module is named "mod" in dagger.json.
type Mod struct{}

// Other is not the main object.
type Other struct{}

// Level is an enum that is not based on string.
type Level int

const (
	Low Level = iota
	High
)

type report struct{ Digest string }

func New() *Other { return &Other{} }

func (m *Mod) CtxLast(name string, ctx context.Context) error { return nil }

func (m *Mod) Three() (string, int, error) { return "", 0, nil }

func (m *Mod) NotErr() (string, string) { return "", "" }

func (m *Mod) Nested(ctx context.Context, a string, opts struct{ B string }) error { return nil }

func (m *Mod) Old(
	// Name.
	// +deprecated="use Name"
	name string,
	// Fine: optional.
	// +optional
	// +deprecated
	alias string,
) error {
	return nil
}

func (m *Mod) Hidden() *report { return nil }

func (m *Mod) Set(l Level) error { return nil }

// Options is fine: a lone inline struct is the options argument.
func (m *Mod) Options(ctx context.Context, opts struct {
	// Name.
	Name string
}) error {
	return nil
}
