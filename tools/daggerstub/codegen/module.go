// Package codegen reads a Dagger module's package main the way the Go SDK's
// codegen of Dagger v0.21 does (cmd/codegen/generator/go/templates in the
// dagger repository): which struct is the main object, which objects, fields,
// enums and functions the engine exposes, and which local variable the
// generated dispatcher declares for each argument.
//
// It reads the syntax only, so it needs neither an engine nor the generated
// code; tools/daggerstub renders a stand-in dispatcher from it and package
// checks tests the rules the codegen enforces.
package codegen

import (
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Module is the package main of a Dagger module as the codegen sees it.
type Module struct {
	Fset *token.FileSet
	// Files are the module's own files by base name: *_test.go and *.gen.go
	// are left out, as the generated code is what is being stood in for.
	Files map[string]*ast.File
	// Main is the main object: the struct named after the module.
	Main *Object
	// New is the constructor, or nil.
	New *Func
	// Objects are the exposed structs (Main and every struct reachable from
	// it through exposed fields, arguments and results), by name.
	Objects []*Object
	// Enums are the exposed named basic types that have constants.
	Enums []*Enum
	// Interfaces are the exposed local interface types, by name.
	Interfaces []string
	// Unexported lists every reference to an unexported local type from an
	// exposed field, argument or result: the codegen refuses to generate
	// code for such a type ("cannot code-generate unexported type", visit.go).
	Unexported []TypeRef
	// Decls are the package-level names the module declares, with where.
	Decls map[string]token.Pos

	types   map[string]*ast.TypeSpec
	methods map[string][]*ast.FuncDecl
	consts  []constDecl
}

// TypeRef is a reference to a local type from an exposed declaration.
type TypeRef struct {
	Type string
	// Where is Object.Function, Object.Field or New.
	Where string
	Pos   token.Pos
}

// Object is an exposed struct.
type Object struct {
	Name   string
	Spec   *ast.TypeSpec
	Fields []Field
	// Methods are its exported methods, by name: each one is a function.
	Methods []*Func
}

// Field is one name of a struct field declaration.
type Field struct {
	Name     string
	Type     ast.Expr
	Exported bool
	// JSONName is the name from a json tag, or Name.
	JSONName string
	// Skipped is set by a json:"-" tag: the codegen leaves the field out of
	// the object's schema and out of its JSON (module_objects.go).
	Skipped bool
	// SharedWith names the first field of a declaration naming several
	// ("A, B string"): the codegen gives only that first name the
	// declaration's comment and pragmas (unpackASTFields in modules.go).
	SharedWith string
	// Doc is the field's help: its doc comment, or else its line comment,
	// without pragmas. Empty for a name after the first of its declaration.
	Doc string
	// Private is set by a +private pragma: the field keeps state between
	// calls but is not shown as a function.
	Private bool
	Pos     token.Pos
}

// Exposed tells whether the engine shows the field as a function.
func (f Field) Exposed() bool { return f.Exported && !f.Skipped && !f.Private }

// Enum is a named basic type with constants: the codegen makes it a GraphQL
// enum and generates methods for it (module_enums.go).
type Enum struct {
	Name string
	// Basic is the underlying type, e.g. string.
	Basic  string
	Values []EnumValue
	Pos    token.Pos
}

// EnumValue is one constant of an enum.
type EnumValue struct {
	// Const is the constant's Go name; Name is what the API calls it: Const
	// with the enum's name trimmed when every constant starts with it.
	Const, Name string
	// Value is the constant's value when it is a string literal.
	Value    string
	IsString bool
}

// Load parses the package main in dir. The main object is the struct whose
// CamelCase name is that of moduleName, as in the codegen
// (isMainModuleObject); with an empty moduleName it is the type New returns.
func Load(dir, moduleName string) (*Module, error) {
	m, err := parse(dir)
	if err != nil {
		return nil, err
	}
	mainName, err := m.mainObjectName(moduleName)
	if err != nil {
		return nil, fmt.Errorf("find the main object of the dagger module in %s: %w", dir, err)
	}
	m.walk(mainName)
	if m.Main == nil {
		return nil, fmt.Errorf("the main object %s of the dagger module in %s is not a struct: declare `type %s struct{...}`", mainName, dir, mainName)
	}
	return m, nil
}

func parse(dir string) (*Module, error) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read dagger module %s: %w", dir, err)
	}
	m := &Module{
		Fset: fset, Files: map[string]*ast.File{}, Decls: map[string]token.Pos{},
		types: map[string]*ast.TypeSpec{}, methods: map[string][]*ast.FuncDecl{},
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || strings.HasSuffix(name, ".gen.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("parse dagger module file: %w", err)
		}
		if f.Name.Name != "main" {
			continue
		}
		m.Files[name] = f
		m.index(f)
	}
	if len(m.Files) == 0 {
		return nil, fmt.Errorf("no package main in %s: is it the dagger module's source directory?", dir)
	}
	return m, nil
}

// index records the file's package-level declarations.
func (m *Module) index(f *ast.File) {
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil {
				m.Decls[d.Name.Name] = d.Name.Pos()
				continue
			}
			recv := baseIdent(d.Recv.List[0].Type)
			m.methods[recv] = append(m.methods[recv], d)
		case *ast.GenDecl:
			m.indexGen(d)
		}
	}
}

func (m *Module) indexGen(d *ast.GenDecl) {
	var lastType ast.Expr
	for _, spec := range d.Specs {
		switch s := spec.(type) {
		case *ast.TypeSpec:
			m.Decls[s.Name.Name] = s.Name.Pos()
			if s.Doc == nil {
				s.Doc = d.Doc
			}
			m.types[s.Name.Name] = s
		case *ast.ValueSpec:
			for _, n := range s.Names {
				m.Decls[n.Name] = n.Pos()
			}
			if d.Tok != token.CONST {
				continue
			}
			// An implicit repetition (iota) keeps the type of the spec before.
			if s.Type != nil || len(s.Values) > 0 {
				lastType = s.Type
			}
			m.consts = append(m.consts, constDecl{spec: s, typ: constType(lastType, s)})
		}
	}
}

type constDecl struct {
	spec *ast.ValueSpec
	// typ is the constant's named type, or "".
	typ string
}

// constType is the local type name of a constant: declared (Staging Target =
// "x"), converted (Staging = Target("x")) or repeated from the spec before.
func constType(declared ast.Expr, s *ast.ValueSpec) string {
	if id, ok := declared.(*ast.Ident); ok {
		return id.Name
	}
	if declared == nil && len(s.Values) == 1 {
		if call, ok := s.Values[0].(*ast.CallExpr); ok {
			if id, ok := call.Fun.(*ast.Ident); ok {
				return id.Name
			}
		}
	}
	return ""
}

func (m *Module) mainObjectName(moduleName string) (string, error) {
	if moduleName != "" {
		want := Camel(moduleName)
		for name, ts := range m.types {
			if _, ok := ts.Type.(*ast.StructType); ok && Camel(name) == want {
				return name, nil
			}
		}
		return "", fmt.Errorf("no struct named %s for module %q: declare `type %s struct{...}`", want, moduleName, want)
	}
	if fn := m.constructor(); fn != nil && fn.Type.Results != nil && len(fn.Type.Results.List) > 0 {
		if name := baseIdent(fn.Type.Results.List[0].Type); m.types[name] != nil {
			return name, nil
		}
	}
	return "", errors.New("no module name and no New returning a local struct: pass the module name from dagger.json")
}

func (m *Module) constructor() *ast.FuncDecl {
	for _, name := range m.fileNames() {
		for _, decl := range m.Files[name].Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == "New" {
				return fn
			}
		}
	}
	return nil
}

func (m *Module) fileNames() []string {
	names := make([]string, 0, len(m.Files))
	for n := range m.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// File is the base name of the file holding pos.
func (m *Module) File(pos token.Pos) string {
	return filepath.Base(m.Fset.Position(pos).Filename)
}

// ModuleName returns the name in the dagger.json whose source directory is
// dir, looking in dir and its parents; "" when there is none.
func ModuleName(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", dir, err)
	}
	for d := abs; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "dagger.json"))
		if err == nil {
			var cfg struct{ Name, Source string }
			if err := json.Unmarshal(b, &cfg); err != nil {
				return "", fmt.Errorf("read %s/dagger.json: %w", d, err)
			}
			if filepath.Join(d, cfg.Source) == abs {
				return cfg.Name, nil
			}
			return "", nil
		}
		if filepath.Dir(d) == d {
			return "", nil
		}
	}
}

// baseIdent is the local type name under pointers, slices and variadics, or "".
func baseIdent(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.Ident:
		return t.Name
	case *ast.StarExpr:
		return baseIdent(t.X)
	case *ast.ArrayType:
		return baseIdent(t.Elt)
	case *ast.Ellipsis:
		return baseIdent(t.Elt)
	case *ast.ParenExpr:
		return baseIdent(t.X)
	}
	return ""
}

// Methods are the methods declared on the local type name, exported or not.
func (m *Module) Methods(typeName string) []*ast.FuncDecl { return m.methods[typeName] }

// Functions are the exposed functions: New first, then each object's methods.
func (m *Module) Functions() []*Func {
	var out []*Func
	if m.New != nil {
		out = append(out, m.New)
	}
	for _, o := range m.Objects {
		out = append(out, o.Methods...)
	}
	return out
}
