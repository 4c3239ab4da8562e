package checks

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ringg/ringg-ci/tools/daggerstub/codegen"
)

// The rules below are what the Go SDK codegen of Dagger v0.21
// (cmd/codegen/generator/go/templates in the dagger repository, branch
// backport-0.21) rejects, fails to compile, or silently degrades. Each one
// reads the module in dir and returns its problems, each naming the file, the
// function, argument or field, and the fix. No engine is needed to find them.

// loadModule reads the Dagger module in dir as the codegen does: its main
// object is named after the module in the dagger.json pointing at dir (or,
// without one, is what New returns).
func loadModule(dir string) (*codegen.Module, error) {
	name, err := codegen.ModuleName(dir)
	if err != nil {
		return nil, err
	}
	return codegen.Load(dir, name)
}

func check(dir string, rule func(*codegen.Module) []string) ([]string, error) {
	m, err := loadModule(dir)
	if err != nil {
		return nil, err
	}
	problems := rule(m)
	sort.Strings(problems)
	return problems, nil
}

// dispatcherNames are the identifiers each case of the generated invoke func
// uses after it declares the arguments' variables (fillObjectFunctionCase
// and checkErrStatement in modules.go), with what they are there.
var dispatcherNames = map[string]string{
	"json":         "the encoding/json package every argument is decoded with",
	"fmt":          "the fmt package decoding errors are reported with",
	"panic":        "the builtin decoding errors are raised with",
	"err":          "the dispatcher's error result",
	"nil":          "the nil every argument is compared with",
	"byte":         "the type every argument's JSON is converted to",
	"inputArgs":    "the map the arguments are read from",
	"parent":       "the decoded object the function is called on",
	"ctx":          "the dispatcher's context, passed as the function's context.Context",
	"dagger":       "the package of the arguments' core types",
	"ptr":          "the helper that passes a pointer to an options struct",
	"convertSlice": "the helper that converts interface slices",
}

// predeclaredTypes may be named in a later argument's declaration.
var predeclaredTypes = map[string]bool{
	"any": true, "bool": true, "error": true, "float32": true, "float64": true, "int": true, "int8": true,
	"int16": true, "int32": true, "int64": true, "rune": true, "string": true, "uint": true, "uint8": true,
	"uint16": true, "uint32": true, "uint64": true, "uintptr": true, "complex64": true, "complex128": true,
}

// ArgumentVariables reports arguments whose local variable in the generated
// dispatcher breaks it. The dispatcher declares `var <LowerCamel(name)> T`
// per argument in the scope where it then calls json.Unmarshal, fmt.Errorf,
// panic and the function (fillObjectFunctionCase in modules.go), so an
// argument named json, err, ctx, parent, … hides what the dispatcher needs
// and the module does not compile on the engine. Two arguments with the
// same variable (dry_run and dryRun) share one variable, and an argument
// with no name gets one made from its type.
func ArgumentVariables(dir string) ([]string, error) {
	return check(dir, func(m *codegen.Module) []string {
		var problems []string
		for _, fn := range m.Functions() {
			problems = append(problems, argumentVariables(m, fn)...)
		}
		return problems
	})
}

func argumentVariables(m *codegen.Module, fn *codegen.Func) []string {
	var problems []string
	where := fmt.Sprintf("%s (%s)", fn.Where(), m.File(fn.Decl.Pos()))
	byVar := map[string]string{}
	for i, p := range fn.Params {
		name := p.Name
		if p.Inline { // one variable, named as the options struct parameter
			name = p.Var
		}
		if _, seen := byVar[p.Var]; p.Context || (p.Inline && seen) {
			continue
		}
		switch {
		case p.Unnamed || name == "_":
			problems = append(problems, fmt.Sprintf("%s: parameter %d (%s) has no name, so the engine's dispatcher names its variable after the type, or cannot name it at all for _; name it", where, i+1, m.ExprString(p.Type)))
		case dispatcherNames[p.Var] != "":
			problems = append(problems, fmt.Sprintf("%s: argument %s becomes the variable %s in the engine's generated dispatcher (dagger.gen.go, func invoke), where it hides %s: the module does not compile on the engine; rename it, e.g. %s",
				where, name, p.Var, dispatcherNames[p.Var], suggestName(p.Var)))
		case predeclaredTypes[p.Var]:
			problems = append(problems, fmt.Sprintf("%s: argument %s becomes the variable %s in the engine's generated dispatcher, hiding the type %s from the declarations after it; rename it, e.g. %s",
				where, name, p.Var, p.Var, suggestName(p.Var)))
		}
		if other, ok := byVar[p.Var]; ok && p.Var != "" {
			problems = append(problems, fmt.Sprintf("%s: arguments %s and %s both become %s in the engine's dispatcher and API, so one value fills both; rename one", where, other, name, p.Var))
		}
		byVar[p.Var] = name
	}
	return problems
}

func suggestName(v string) string {
	if v == "json" {
		return "asJson"
	}
	return v + "Value"
}

// FieldHelp reports exported fields of exposed objects that `dagger
// functions` lists as functions without help. The engine exposes every
// exported field not marked +private (module_objects.go parseGoStruct and
// TypeDef), with its doc comment, or else its line comment, as help. In a
// declaration naming several fields ("Project, Image string") only the first
// name gets the comment and the pragmas (unpackASTFields in modules.go), so
// `// +private` above it hides Project alone.
func FieldHelp(dir string) ([]string, error) {
	return check(dir, func(m *codegen.Module) []string {
		var problems []string
		for _, obj := range m.Objects {
			for _, f := range obj.Fields {
				problems = append(problems, fieldHelp(m, obj, f)...)
			}
		}
		return problems
	})
}

func fieldHelp(m *codegen.Module, obj *codegen.Object, f codegen.Field) []string {
	where := fmt.Sprintf("%s.%s (%s)", obj.Name, f.Name, m.File(f.Pos))
	switch {
	case !f.Exported || f.Skipped:
		return nil
	case f.SharedWith != "":
		return []string{fmt.Sprintf("%s: declared together with %s, so the codegen gives it neither that declaration's comment nor its +private and `dagger functions` lists it as a function without help; declare it on its own line with `// +private` (state only) or its own doc comment", where, f.SharedWith)}
	case !f.Private && f.Doc == "":
		return []string{fmt.Sprintf("%s: exported field that `dagger functions` lists as a function without help; mark it `// +private` if it is state, or give it a doc comment", where)}
	}
	return nil
}

// LostState reports fields of exposed objects that are empty in every
// function. The engine passes the object to each call as JSON and the
// dispatcher decodes it (`json.Unmarshal(parentJSON, &parent)`,
// fillObjectFunctionCase in modules.go) with generated JSON methods that
// carry only the exported fields without a json:"-" tag (module_objects.go),
// so whatever New or an earlier call put in any other field is gone.
func LostState(dir string) ([]string, error) {
	return check(dir, func(m *codegen.Module) []string {
		var problems []string
		for _, obj := range m.Objects {
			for _, f := range obj.Fields {
				if f.Exported && !f.Skipped {
					continue
				}
				why, fix := "unexported", "export it and mark it `// +private`, or drop it"
				if f.Skipped {
					why, fix = `tagged json:"-"`, "drop the tag (and mark it `// +private` if it is state), or drop the field"
				}
				problems = append(problems, fmt.Sprintf("%s.%s (%s): %s, so not kept between calls: the engine rebuilds the object from the JSON of its exported fields before every function; %s",
					obj.Name, f.Name, m.File(f.Pos), why, fix))
			}
		}
		return problems
	})
}

// generatedNames are the package-level names of the engine's dagger.gen.go
// (templates/src/_dagger.gen.go/module.go.tmpl and mainSrc, invokeSrc in
// modules.go); package main may not declare them again.
var generatedNames = []string{
	"DaggerObject", "ExecError", "Tracer", "convertError", "convertSlice", "dag", "dispatch",
	"findSingleGQLError", "invoke", "main", "marshalCtx", "ptr", "setMarshalContext",
}

// generatedImports are the names dagger.gen.go imports packages under; a
// package-level declaration may not reuse a name imported in another file.
var generatedImports = map[string]string{
	"context": "context", "json": "encoding/json", "fmt": "fmt", "slog": "log/slog", "os": "os",
	"gqlerror": "github.com/vektah/gqlparser/v2/gqlerror", "otel": "go.opentelemetry.io/otel",
	"trace": "go.opentelemetry.io/otel/trace", "resource": "go.opentelemetry.io/otel/sdk/resource",
	"semconv": "go.opentelemetry.io/otel/semconv/v1.40.0", "telemetry": "github.com/dagger/otel-go",
	"dagger": "<module>/internal/dagger", "querybuilder": "github.com/dagger/querybuilder",
}

// generatedMethods are the methods the engine generates on each exposed
// object (module_objects.go ImplementationCode) and enum (module_enums.go
// ImplementationCode).
var (
	objectMethods = []string{"MarshalJSON", "UnmarshalJSON"}
	enumMethods   = []string{"IsEnum", "MarshalJSON", "Name", "UnmarshalJSON", "Value"}
)

// ReservedNames reports declarations that collide with what the engine
// generates into package main, which then does not compile on the engine.
func ReservedNames(dir string) ([]string, error) {
	return check(dir, func(m *codegen.Module) []string {
		var problems []string
		for _, name := range generatedNames {
			if pos, ok := m.Decls[name]; ok {
				problems = append(problems, fmt.Sprintf("%s (%s): the engine's generated dagger.gen.go declares %s in package main too, so the module does not compile on the engine; rename yours", name, m.File(pos), name))
			}
		}
		for name, path := range generatedImports {
			if pos, ok := m.Decls[name]; ok {
				problems = append(problems, fmt.Sprintf("%s (%s): the engine's generated dagger.gen.go imports %s as %s, and a package-level name may not reuse it, so the module does not compile on the engine; rename yours", name, m.File(pos), path, name))
			}
		}
		for _, obj := range m.Objects {
			problems = append(problems, reservedMethods(m, obj.Name, "object", objectMethods)...)
		}
		for _, e := range m.Enums {
			problems = append(problems, reservedMethods(m, e.Name, "enum", enumMethods)...)
		}
		return problems
	})
}

func reservedMethods(m *codegen.Module, typeName, kind string, reserved []string) []string {
	var problems []string
	for _, d := range m.Methods(typeName) {
		for _, r := range reserved {
			if d.Name.Name == r {
				problems = append(problems, fmt.Sprintf("%s.%s (%s): the engine generates %s on every exposed %s (%s), so the module does not compile on the engine; rename yours",
					typeName, r, m.File(d.Pos()), r, kind, strings.Join(reserved, ", ")))
			}
		}
	}
	return problems
}
