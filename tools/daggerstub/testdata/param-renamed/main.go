// A tiny Dagger module that compiles on the engine: its arguments, objects,
// enum and options struct cover each shape of the generated dispatcher.
package main

import (
	"context"
	"strings"

	"github.com/ringg/ringg-ci/ci/internal/dagger"
)

// Level is an enum.
type Level string

const (
	LevelLow  Level = "LOW"
	LevelHigh Level = "HIGH"
)

// Tiny is the main object.
type Tiny struct {
	// Source to work on.
	// +private
	Source *dagger.Directory
	// Name shown in reports.
	Name string `json:"displayName"`
}

// Report is returned by a function, so it is exposed with its methods.
type Report struct {
	// Lines of the report.
	Lines []string
}

func New(
	// Source to work on.
	// +defaultPath="/"
	source *dagger.Directory,
	// Name shown in reports.
	// +optional
	name string,
) *Tiny {
	return &Tiny{Source: source, Name: name}
}

// Show the state. The context is named c so that tests can name another
// argument ctx: the dispatcher passes its own ctx whatever the name.
func (m *Tiny) Status(
	c context.Context,
	// Level of detail.
	level Level,
	// Print JSON.
	// +optional
	asJson bool,
) (string, error) {
	if asJson {
		return "{}", nil
	}
	return m.Name + " " + string(level), c.Err()
}

// Echo words.
func (m *Tiny) Echo(words ...string) string { return strings.Join(words, " ") }

// Configure with an options struct.
func (m *Tiny) Configure(opts *struct {
	// New name.
	Name string
	// New level.
	Level Level
}) *Tiny {
	return &Tiny{Source: m.Source, Name: opts.Name}
}

// Check nothing.
func (m Tiny) Check(ctx context.Context) error { return ctx.Err() }

// Report on a platform.
func (m *Tiny) Report(platform dagger.Platform) *Report {
	return &Report{Lines: []string{string(platform)}}
}

// Nothing at all.
func (m *Tiny) Nothing() {}

// Count the lines.
func (r *Report) Count() int { return len(r.Lines) }
