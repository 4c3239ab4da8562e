package main

// Mod declares what the engine's generated code declares too.
type Mod struct{}

// Level is an enum.
type Level string

const (
	Debug Level = "DEBUG"
	Info  Level = "INFO"
)

func New() *Mod { return &Mod{} }

// Run at a level.
func (m *Mod) Run(level Level) error { return nil }

// MarshalJSON is generated for every object.
func (m Mod) MarshalJSON() ([]byte, error) { return nil, nil }

// Name is generated for every enum.
func (l Level) Name() string { return string(l) }

// String is not generated: fine.
func (l Level) String() string { return string(l) }

func dispatch() {}

var trace = "x"

func Tracer() {}
