// Package daggerstub renders, from a Dagger module's Go source, the part of
// the dagger.gen.go Dagger's Go codegen (v0.21) writes that depends on that
// source: JSON methods on exposed objects and enums, and the invoke func
// that dispatches every function call. The engine's real generated code is
// committed (ci/dagger.gen.go, ci/internal/dagger); Fresh proves it is
// current without an engine, and the stand-in lets a test compile a module
// whose names might collide with the engine's.
package daggerstub

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ringg/ringg-ci/tools/daggerstub/codegen"
)

// engineOwned are the functions of dagger.gen.go that do not depend on the
// module's source (the stand-in's are simpler than the engine's).
var engineOwned = map[string]bool{
	"main": true, "dispatch": true, "convertError": true, "findSingleGQLError": true,
	"setMarshalContext": true, "ptr": true, "convertSlice": true, "Tracer": true,
}

// Fresh reports whether the committed dagger.gen.go of the module in ciDir
// (a Go module whose path is modulePath) is what codegen writes for its
// source today: each source-dependent declaration, rendered from the source
// as the engine renders it, must be there word for word, and the committed
// file must hold none the source no longer has. The error lists every
// difference and says how to regenerate.
func Fresh(ciDir, modulePath string) error {
	name, err := codegen.ModuleName(ciDir)
	if err != nil {
		return err
	}
	m, err := codegen.Load(ciDir, name)
	if err != nil {
		return err
	}
	want, err := MainStub(modulePath, m)
	if err != nil {
		return err
	}
	committed, err := os.ReadFile(filepath.Join(ciDir, "dagger.gen.go"))
	if err != nil {
		return fmt.Errorf("read the committed generated code: %w; run `dagger develop` and commit ci/dagger.gen.go and ci/internal/dagger", err)
	}
	wantDecls, err := sourceDecls(want)
	if err != nil {
		return fmt.Errorf("parse the rendered dispatcher, a bug in tools/daggerstub: %w", err)
	}
	gotDecls, err := sourceDecls(committed)
	if err != nil {
		return fmt.Errorf("parse %s/dagger.gen.go: %w", ciDir, err)
	}
	var diffs []string
	for _, k := range sortedKeys(wantDecls) {
		switch got, ok := gotDecls[k]; {
		case !ok:
			diffs = append(diffs, k+" is missing")
		case got != wantDecls[k]:
			diffs = append(diffs, k+" differs")
		}
	}
	for _, k := range sortedKeys(gotDecls) {
		if _, ok := wantDecls[k]; !ok {
			diffs = append(diffs, k+" is there, but the source has nothing that makes it")
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%s/dagger.gen.go is stale against the module's functions (%s): regenerate it on an engine with `dagger develop` (see ../shared/engine/README.md or a laptop with Dagger v0.21.9) and commit it",
			ciDir, strings.Join(diffs, "; "))
	}
	return nil
}

// sourceDecls maps each source-dependent function declaration of a
// dagger.gen.go ("invoke", "RinggCi.MarshalJSON") to its formatted text.
func sourceDecls(src []byte) (map[string]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "dagger.gen.go", src, 0)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok {
			continue
		}
		key := fn.Name.Name
		if fn.Recv != nil && len(fn.Recv.List) == 1 {
			key = recvName(fn.Recv.List[0].Type) + "." + key
		} else if engineOwned[key] {
			continue
		}
		var b bytes.Buffer
		if err := format.Node(&b, fset, fn); err != nil {
			return nil, err
		}
		out[key] = b.String()
	}
	return out, nil
}

func recvName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return recvName(t.X)
	case *ast.Ident:
		return t.Name
	}
	return "?"
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
