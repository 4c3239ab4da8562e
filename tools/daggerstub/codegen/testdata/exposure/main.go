// A module exercising what the codegen exposes and how it names arguments.
package main

import (
	"context"

	"example.com/x/internal/dagger"
)

// Shop is the main object of the module "shop".
type Shop struct {
	// Where the goods are.
	Source *dagger.Directory
	// Overrides.
	Project, Image string
	// +private
	Token  *dagger.Secret
	Region string `json:"zone"`
	Skip   string `json:"-"`
	cache  string
}

// Receipt is returned by a function, so it is exposed.
type Receipt struct {
	Lines []Line
}

// Line is exposed through Receipt's field.
type Line struct{ Text string }

// Hidden is only used by an unexported method.
type Hidden struct{ X string }

// Size is an enum; its values are trimmed of the prefix Size.
type Size string

const (
	SizeSmall Size = "S"
	SizeLarge Size = "L"
)

// Loose is a named string without constants: a scalar, not an enum.
type Loose string

type secretNote string

func New(
	// Source of the shop.
	// +defaultPath="/"
	source *dagger.Directory,
) *Shop {
	return &Shop{Source: source}
}

// Buy things.
// +cache="never"
func (s *Shop) Buy(
	ctx context.Context,
	// Size to buy.
	// +default="S"
	size Size,
	dry_run, credsJSON bool, // shared declaration
	note Loose,
	items ...string,
) (*Receipt, error) {
	return nil, nil
}

// Configure with an options struct.
func (s Shop) Configure(opts *struct {
	// Name.
	Name string
	Size Size
}) *Shop {
	return nil
}

// Leak returns an unexported type.
func (s *Shop) Leak() secretNote { return "" }

func (s *Shop) hide() Hidden { return Hidden{} }

// Total of a receipt.
func (r *Receipt) Total(ctx context.Context) (int, error) { return 0, nil }

// Wrapper embeds types: its fields are named after them.
type Wrapper struct {
	*dagger.Container
	Line
}

// Wrap returns a Wrapper.
func (s *Shop) Wrap() Wrapper { return Wrapper{} }
