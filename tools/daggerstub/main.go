// Command daggerstub writes a stand-in for the code the Dagger engine
// generates into the ci module, so package main can be type-checked and vetted
// without an engine.
//
// The engine generates ci/internal/dagger (the typed API) and ci/dagger.gen.go
// (var dag and the function dispatcher). Neither can be generated here. The
// stand-in for internal/dagger aliases every exported, non-generic name of
// dagger.io/dagger at the version pinned in ci/go.mod, whose core API is the
// same, so a call to a method that version lacks still fails to compile. The
// stand-in for dagger.gen.go is rendered from the module's own source as the
// engine renders the real one (see MainStub and package codegen): the same
// package-level names, JSON methods on exposed objects and enums, and an
// invoke func whose local variables and calls are the engine's, so a module
// that does not compile on the engine does not compile here. The output is a
// `go build -overlay` file:
//
//	go run ./tools/daggerstub -ci ci -out .cache/daggerstub
//	cd ci && go vet -overlay ../.cache/daggerstub/overlay.json .
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ringg/ringg-ci/tools/daggerstub/codegen"
)

func main() {
	ciDir := flag.String("ci", ".dagger", "directory of the Dagger module's Go module (dagger.json \"source\")")
	out := flag.String("out", ".cache/daggerstub", "directory to write the stand-in files and overlay.json into")
	flag.Parse()
	if err := run(*ciDir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "daggerstub:", err)
		os.Exit(1)
	}
}

func run(ciDir, out string) error {
	ciAbs, err := filepath.Abs(ciDir)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", ciDir, err)
	}
	outAbs, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", out, err)
	}
	modPath, err := goList(ciAbs, "-m", "-f", "{{.Path}}")
	if err != nil {
		return err
	}
	sdkDir, err := goList(ciAbs, "-m", "-f", "{{.Dir}}", "dagger.io/dagger")
	if err != nil {
		return fmt.Errorf("find dagger.io/dagger (run `go mod download` in %s): %w", ciDir, err)
	}
	names, err := Exported(sdkDir)
	if err != nil {
		return err
	}
	mainStub, err := mainStubFor(ciAbs, modPath)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"internal_dagger.go": AliasPackage(names),
		"dagger_gen.go":      mainStub,
	}
	if err := os.MkdirAll(outAbs, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", out, err)
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(outAbs, name), src, 0o644); err != nil {
			return fmt.Errorf("write stand-in %s: %w", name, err)
		}
	}
	// go vet wants the directory of the replaced package to exist.
	if err := os.MkdirAll(filepath.Join(ciAbs, "internal", "dagger"), 0o755); err != nil {
		return fmt.Errorf("create %s/internal/dagger: %w", ciDir, err)
	}
	overlay, err := json.MarshalIndent(map[string]map[string]string{"Replace": {
		filepath.Join(ciAbs, "internal", "dagger", "dagger.gen.go"): filepath.Join(outAbs, "internal_dagger.go"),
		filepath.Join(ciAbs, "dagger.gen.go"):                       filepath.Join(outAbs, "dagger_gen.go"),
	}}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode overlay: %w", err)
	}
	return os.WriteFile(filepath.Join(outAbs, "overlay.json"), overlay, 0o644)
}

// mainStubFor reads the module in ciDir, named as in the dagger.json that
// points at it, and renders its stand-in dagger.gen.go.
func mainStubFor(ciDir, modPath string) ([]byte, error) {
	name, err := codegen.ModuleName(ciDir)
	if err != nil {
		return nil, err
	}
	m, err := codegen.Load(ciDir, name)
	if err != nil {
		return nil, err
	}
	src, err := MainStub(modPath, m)
	if err != nil {
		return nil, fmt.Errorf("the engine would reject the dagger module in %s: %w", ciDir, err)
	}
	return src, nil
}

func goList(dir string, args ...string) (string, error) {
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list %s in %s: %w", strings.Join(args, " "), dir, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Names are the exported top-level names of a package, by kind.
type Names struct {
	Types, Consts, Vars, Funcs []string
	// Generic lists names left out: an alias cannot stand in for them without
	// copying their type parameters.
	Generic []string
}

// Exported lists the exported, top-level names of the Go package in dir
// (test files excluded).
func Exported(dir string) (Names, error) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.SkipObjectResolution)
	if err != nil {
		return Names{}, fmt.Errorf("parse %s: %w", dir, err)
	}
	var n Names
	for _, pkg := range pkgs {
		for _, f := range pkg.Files {
			collect(f, &n)
		}
	}
	for _, s := range []*[]string{&n.Types, &n.Consts, &n.Vars, &n.Funcs, &n.Generic} {
		sort.Strings(*s)
	}
	if len(n.Types) == 0 {
		return Names{}, fmt.Errorf("no exported types in %s: is it dagger.io/dagger?", dir)
	}
	return n, nil
}

func collect(f *ast.File, n *Names) {
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if d.Recv != nil || !d.Name.IsExported() {
				continue
			}
			if d.Type.TypeParams != nil {
				n.Generic = append(n.Generic, d.Name.Name)
				continue
			}
			n.Funcs = append(n.Funcs, d.Name.Name)
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if !s.Name.IsExported() {
						continue
					}
					if s.TypeParams != nil {
						n.Generic = append(n.Generic, s.Name.Name)
						continue
					}
					n.Types = append(n.Types, s.Name.Name)
				case *ast.ValueSpec:
					for _, id := range s.Names {
						if !id.IsExported() {
							continue
						}
						if d.Tok == token.CONST {
							n.Consts = append(n.Consts, id.Name)
						} else {
							n.Vars = append(n.Vars, id.Name)
						}
					}
				}
			}
		}
	}
}

// AliasPackage renders package dagger as aliases of dagger.io/dagger.
func AliasPackage(n Names) []byte {
	var b bytes.Buffer
	b.WriteString("// Code generated by tools/daggerstub: a stand-in for the engine's codegen. DO NOT EDIT.\n\n")
	b.WriteString("package dagger\n\nimport upstream \"dagger.io/dagger\"\n\n")
	if len(n.Generic) > 0 {
		fmt.Fprintf(&b, "// Left out (generic): %s.\n\n", strings.Join(n.Generic, ", "))
	}
	block := func(kw string, names []string, line func(string) string) {
		if len(names) == 0 {
			return
		}
		fmt.Fprintf(&b, "%s (\n", kw)
		for _, name := range names {
			b.WriteString("\t" + line(name) + "\n")
		}
		b.WriteString(")\n\n")
	}
	block("type", n.Types, func(s string) string { return s + " = upstream." + s })
	block("const", n.Consts, func(s string) string { return s + " = upstream." + s })
	block("var", append(append([]string{}, n.Vars...), n.Funcs...), func(s string) string { return s + " = upstream." + s })
	src, err := format.Source(b.Bytes())
	if err != nil {
		panic(fmt.Sprintf("daggerstub produced invalid Go: %v", err))
	}
	return src
}
