package checks

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// builtinTypes are the Go types Dagger maps to GraphQL scalars.
var builtinTypes = map[string]bool{
	"string": true, "bool": true, "int": true, "int32": true, "int64": true,
	"float32": true, "float64": true, "error": true,
}

// ForeignTypes reports every exported function, method and field of the Dagger
// module in dir (package main) whose type is neither a builtin, a type of
// package main, context.Context nor a type of the generated dagger package.
// Dagger's codegen rejects such a module at load time, which nobody can see
// without an engine.
func ForeignTypes(dir string) ([]string, error) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool {
		n := fi.Name()
		return !strings.HasSuffix(n, "_test.go") && !strings.HasSuffix(n, ".gen.go")
	}, parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("parse dagger module %s: %w", dir, err)
	}
	pkg, ok := pkgs["main"]
	if !ok {
		return nil, fmt.Errorf("no package main in %s", dir)
	}
	local := map[string]*ast.TypeSpec{}
	var files []*ast.File
	for _, f := range pkg.Files {
		files = append(files, f)
		ast.Inspect(f, func(n ast.Node) bool {
			if ts, ok := n.(*ast.TypeSpec); ok {
				local[ts.Name.Name] = ts
			}
			return true
		})
	}
	c := checker{fset: fset, local: local, seen: map[string]bool{}}
	for _, f := range files {
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || !fn.Name.IsExported() {
				continue
			}
			if fn.Recv == nil && fn.Name.Name != "New" {
				continue
			}
			where := fn.Name.Name
			if fn.Recv != nil {
				recv := typeName(fn.Recv.List[0].Type)
				if !ast.IsExported(recv) {
					continue
				}
				where = recv + "." + where
			}
			c.fields(where, fn.Type.Params)
			c.fields(where, fn.Type.Results)
		}
	}
	sort.Strings(c.problems)
	return c.problems, nil
}

type checker struct {
	fset     *token.FileSet
	local    map[string]*ast.TypeSpec
	seen     map[string]bool
	problems []string
}

func (c *checker) fields(where string, fl *ast.FieldList) {
	if fl == nil {
		return
	}
	for _, f := range fl.List {
		c.expr(where, f.Type)
	}
}

func (c *checker) expr(where string, e ast.Expr) {
	switch t := e.(type) {
	case *ast.Ident:
		if builtinTypes[t.Name] {
			return
		}
		ts, ok := c.local[t.Name]
		if !ok {
			c.bad(where, t)
			return
		}
		c.localType(ts)
	case *ast.StarExpr:
		c.expr(where, t.X)
	case *ast.ArrayType:
		c.expr(where, t.Elt)
	case *ast.SelectorExpr:
		pkg, _ := t.X.(*ast.Ident)
		if pkg != nil && (pkg.Name == "dagger" || (pkg.Name == "context" && t.Sel.Name == "Context")) {
			return
		}
		c.bad(where, t)
	default:
		c.bad(where, t)
	}
}

// localType checks the exported fields of a package-main struct, once.
func (c *checker) localType(ts *ast.TypeSpec) {
	if c.seen[ts.Name.Name] {
		return
	}
	c.seen[ts.Name.Name] = true
	switch u := ts.Type.(type) {
	case *ast.StructType:
		for _, f := range u.Fields.List {
			for _, n := range f.Names {
				if n.IsExported() {
					c.expr(ts.Name.Name+"."+n.Name, f.Type)
				}
			}
		}
	case *ast.Ident:
		c.expr(ts.Name.Name, u)
	}
}

func (c *checker) bad(where string, e ast.Expr) {
	c.problems = append(c.problems, fmt.Sprintf("%s (%s): type %s is not from package main or dagger",
		where, filepath.Base(c.fset.Position(e.Pos()).Filename), exprString(e)))
}

func typeName(e ast.Expr) string {
	if s, ok := e.(*ast.StarExpr); ok {
		e = s.X
	}
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

func exprString(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.Ident:
		return t.Name
	case *ast.SelectorExpr:
		return exprString(t.X) + "." + t.Sel.Name
	case *ast.StarExpr:
		return "*" + exprString(t.X)
	case *ast.ArrayType:
		return "[]" + exprString(t.Elt)
	case *ast.MapType:
		return "map[" + exprString(t.Key) + "]" + exprString(t.Value)
	default:
		return fmt.Sprintf("%T", e)
	}
}
