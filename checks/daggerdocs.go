package checks

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"sort"
	"strings"
)

// Function is what `dagger call --help` shows of one function of the module.
type Function struct {
	Name string
	// Doc is the function's doc comment, pragmas included.
	Doc string
	// Undocumented lists arguments with no comment line right above them,
	// and every name after the first of a declaration such as `a, b string`:
	// the codegen gives those no comment (unpackASTFields and
	// commentForFuncField in the Go SDK codegen's modules.go).
	Undocumented []string
}

// Functions lists the exported functions of the Dagger module in dir: New and
// the methods of its exported types.
func Functions(dir string) ([]Function, error) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool {
		n := fi.Name()
		return !strings.HasSuffix(n, "_test.go") && !strings.HasSuffix(n, ".gen.go")
	}, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("parse dagger module %s: %w", dir, err)
	}
	var out []Function
	for _, f := range pkgs["main"].Files {
		commentEnds := map[int]bool{}
		for _, cg := range f.Comments {
			commentEnds[fset.Position(cg.End()).Line] = true
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || !fn.Name.IsExported() || (fn.Recv == nil && fn.Name.Name != "New") {
				continue
			}
			if fn.Recv != nil && !ast.IsExported(typeName(fn.Recv.List[0].Type)) {
				continue
			}
			fun := Function{Name: fn.Name.Name, Doc: fn.Doc.Text()}
			for _, p := range fn.Type.Params.List {
				if sel, ok := p.Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "Context" {
					continue
				}
				documented := commentEnds[fset.Position(p.Pos()).Line-1]
				for i, n := range p.Names {
					if !documented || i > 0 {
						fun.Undocumented = append(fun.Undocumented, n.Name)
					}
				}
			}
			out = append(out, fun)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
