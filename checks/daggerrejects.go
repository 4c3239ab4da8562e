package checks

import (
	"encoding/json"
	"fmt"
	"go/ast"

	"github.com/ringg/ringg-ci/tools/daggerstub/codegen"
)

// RejectedSignatures reports exposed functions, types and enums the codegen
// refuses when the module loads, which nobody sees without an engine:
//   - context.Context anywhere but first: "unexpected context type for arg"
//     (parseParamSpecs in module_funcs.go);
//   - more than two results, or a second that is not error: "has too many
//     return values" (parseGoFunc), "second return value must be error"
//     (fillObjectFunctionCase in modules.go);
//   - an anonymous struct argument, unless it is the lone options struct:
//     "nested structs are not supported" (parseParamSpecVar);
//   - a required argument marked +deprecated: "is required and cannot be
//     deprecated" (parseGoFunc);
//   - New not returning the main object: "New must return the main module
//     object" (fillObjectFunctionCases);
//   - an unexported local type in an exposed signature or field: "cannot
//     code-generate unexported type" (visitTypes in visit.go);
//   - an enum whose underlying type is not string: the generated MarshalJSON
//     compares it with "" and does not compile (module_enums.go).
func RejectedSignatures(dir string) ([]string, error) {
	return check(dir, func(m *codegen.Module) []string {
		var problems []string
		for _, fn := range m.Functions() {
			problems = append(problems, rejectedParams(m, fn)...)
			problems = append(problems, rejectedResults(m, fn)...)
		}
		for _, ref := range m.Unexported {
			problems = append(problems, fmt.Sprintf("%s (%s): uses the unexported type %s, and the codegen fails with \"cannot code-generate unexported type %s\"; export the type",
				ref.Where, m.File(ref.Pos), ref.Type, ref.Type))
		}
		for _, e := range m.Enums {
			if e.Basic != "string" {
				problems = append(problems, fmt.Sprintf("%s (%s): an enum (a type with constants) based on %s: the engine's generated MarshalJSON compares it with \"\" and does not compile; base it on string",
					e.Name, m.File(e.Pos), e.Basic))
			}
		}
		return problems
	})
}

func rejectedParams(m *codegen.Module, fn *codegen.Func) []string {
	var problems []string
	where := fmt.Sprintf("%s (%s)", fn.Where(), m.File(fn.Decl.Pos()))
	for i, p := range fn.Params {
		if p.Context && i > 0 {
			problems = append(problems, fmt.Sprintf("%s: context.Context is not the first parameter, and the codegen fails with \"unexpected context type for arg\"; move it first", where))
		}
		if isStruct(p.Type) {
			problems = append(problems, fmt.Sprintf("%s: argument %s has an anonymous struct type, which the codegen accepts only as a function's lone options argument, not beside others or nested in it (\"nested structs are not supported\"); declare a named struct type", where, p.Name))
		}
		if _, deprecated := p.Pragmas["deprecated"]; deprecated && !optional(p) {
			problems = append(problems, fmt.Sprintf("%s: argument %s is marked +deprecated but required, and the codegen fails with \"is required and cannot be deprecated\"; make it +optional or give it a +default", where, p.Name))
		}
	}
	return problems
}

func rejectedResults(m *codegen.Module, fn *codegen.Func) []string {
	where := fmt.Sprintf("%s (%s)", fn.Where(), m.File(fn.Decl.Pos()))
	rs := fn.Results
	switch {
	case len(rs) > 2:
		return []string{fmt.Sprintf("%s: returns %d values, and the codegen fails with \"has too many return values\"; return one value (a struct) and an error", where, len(rs))}
	case len(rs) == 2 && !isIdentNamed(rs[1], "error"):
		return []string{fmt.Sprintf("%s: the second result is %s, and the codegen fails with \"second return value must be error\"; return a value and an error", where, m.ExprString(rs[1]))}
	case fn.Object == "" && (len(rs) == 0 || baseName(rs[0]) != m.Main.Name):
		return []string{fmt.Sprintf("%s: New does not return the main object, and the codegen fails with \"New must return the main module object %q\"; return *%s", where, m.Main.Name, m.Main.Name)}
	}
	return nil
}

// optional mirrors paramSpec.isOptional (module_funcs.go, optional.go).
func optional(p codegen.Param) bool {
	for _, k := range []string{"default", "defaultPath", "defaultAddress"} {
		if _, ok := p.Pragmas[k]; ok {
			return true
		}
	}
	if v, ok := p.Pragmas["optional"]; ok && (v == nil || v == true) {
		return true
	}
	_, ptr := p.Type.(*ast.StarExpr)
	return ptr || p.Variadic
}

// RejectedPragmas reports pragmas whose value the codegen refuses or the
// engine cannot use:
//   - +cache must be a string: "cache pragma … must be a valid string";
//     +check, +generate and +up are bare or a boolean (parseGoFunc in
//     module_funcs.go);
//   - +defaultPath and +defaultAddress must be strings, +ignore a JSON array
//     of strings (parseParamSpecVar);
//   - the +default of an enum argument must be one of its values, by API
//     name or value: "unknown enum value" (TypeDefFunc, and lookup in
//     module_enums.go).
func RejectedPragmas(dir string) ([]string, error) {
	return check(dir, func(m *codegen.Module) []string {
		var problems []string
		for _, fn := range m.Functions() {
			where := fmt.Sprintf("%s (%s)", fn.Where(), m.File(fn.Decl.Pos()))
			problems = append(problems, functionPragmas(where, fn.Pragmas)...)
			for _, p := range fn.Params {
				problems = append(problems, argumentPragmas(m, where, p)...)
			}
		}
		return problems
	})
}

func functionPragmas(where string, pragmas map[string]any) []string {
	var problems []string
	if v, ok := pragmas["cache"]; ok {
		if _, isString := v.(string); !isString {
			problems = append(problems, fmt.Sprintf("%s: +cache=%s is not a string, and the codegen fails with \"cache pragma … must be a valid string\"; write +cache=\"never\", +cache=\"session\" or a quoted duration", where, show(v)))
		}
	}
	for _, k := range []string{"check", "generate", "up"} {
		if v, ok := pragmas[k]; ok && v != nil {
			if _, isBool := v.(bool); !isBool {
				problems = append(problems, fmt.Sprintf("%s: +%s=%s is not a boolean, and the codegen fails with \"%s pragma … must be a valid boolean\"; write +%s alone", where, k, show(v), k, k))
			}
		}
	}
	return problems
}

func argumentPragmas(m *codegen.Module, where string, p codegen.Param) []string {
	var problems []string
	for _, k := range []string{"defaultPath", "defaultAddress"} {
		if v, ok := p.Pragmas[k]; ok {
			if _, isString := v.(string); !isString {
				problems = append(problems, fmt.Sprintf("%s: argument %s: +%s=%s is not a string, and the codegen fails; quote it", where, p.Name, k, show(v)))
			}
		}
	}
	if v, ok := p.Pragmas["ignore"]; ok && !stringList(v) {
		problems = append(problems, fmt.Sprintf("%s: argument %s: +ignore=%s is not a JSON array of strings, and the codegen fails; write +ignore=[\"pattern\", …]", where, p.Name, show(v)))
	}
	if v, ok := p.Pragmas["default"]; ok {
		if e := enumOf(m, p.Type); e != nil && !enumHas(e, v) {
			problems = append(problems, fmt.Sprintf("%s: argument %s: +default=%s is not a value of the enum %s, and the engine fails with \"unknown enum value\"; use one of %s", where, p.Name, show(v), e.Name, enumNames(e)))
		}
	}
	return problems
}

// show renders a pragma value as it was written, near enough: as JSON.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func stringList(v any) bool {
	list, ok := v.([]any)
	if !ok {
		return false
	}
	for _, s := range list {
		if _, ok := s.(string); !ok {
			return false
		}
	}
	return true
}

func enumOf(m *codegen.Module, t ast.Expr) *codegen.Enum {
	name := baseName(t)
	for _, e := range m.Enums {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// enumHas looks a default up as the codegen does: by API name, then value.
func enumHas(e *codegen.Enum, v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	for _, ev := range e.Values {
		if ev.Name == s || (ev.IsString && ev.Value == s) {
			return true
		}
	}
	return false
}

func enumNames(e *codegen.Enum) string {
	var s string
	for i, ev := range e.Values {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%q", ev.Value)
	}
	return s
}

func isStruct(e ast.Expr) bool {
	if star, ok := e.(*ast.StarExpr); ok {
		e = star.X
	}
	_, ok := e.(*ast.StructType)
	return ok
}

func isIdentNamed(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

// baseName is the type name under pointers and slices, or "".
func baseName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return baseName(t.X)
	case *ast.ArrayType:
		return baseName(t.Elt)
	case *ast.Ident:
		return t.Name
	}
	return ""
}
