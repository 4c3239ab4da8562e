package codegen

import (
	"bytes"
	"go/ast"
	"go/printer"
	"go/token"
	"strings"
)

// Func is an exposed function: a method of an exposed object, or New.
type Func struct {
	// Object is the receiver's type; "" for New.
	Object string
	Name   string
	Decl   *ast.FuncDecl
	// Params are the parameters one per name, context included, in order.
	Params []Param
	// Results are the result types, one per value.
	Results []ast.Expr
	// Pragmas are those of the doc comment (+cache, +check, …); Doc is the
	// rest of it, the function's help.
	Pragmas map[string]any
	Doc     string
}

// Where names the function as Object.Name, or New.
func (f *Func) Where() string {
	if f.Object == "" {
		return f.Name
	}
	return f.Object + "." + f.Name
}

// Param is one argument as the generated dispatcher handles it
// (fillObjectFunctionCase in modules.go).
type Param struct {
	// Name is the argument's name: the Go parameter's name, or the field's for
	// an inline options struct. It is the key the dispatcher reads the value
	// from in inputArgs. An unnamed parameter gets its type's name.
	Name string
	// Var is the local variable the dispatcher declares and passes:
	// LowerCamel(Name), or the options struct parameter's own name.
	Var string
	// VarType is the type Var is declared with.
	VarType ast.Expr
	// Target is what the dispatcher decodes the value into: Var, or
	// Var.Field for an inline options struct.
	Target string
	// Type is the type as written, "...T" for a variadic one.
	Type ast.Expr
	// Unnamed marks a parameter declared without a name.
	Unnamed bool
	// Context marks a context.Context parameter: the dispatcher passes its own ctx.
	Context  bool
	Variadic bool
	// Inline is set for the fields of an inline options struct.
	Inline bool
	// Pragmas and Doc come from the argument's comment, found by position as
	// commentForFuncField (modules.go) finds it.
	Pragmas map[string]any
	Doc     string
	Pos     token.Pos
}

func (w *walker) function(object string, d *ast.FuncDecl) *Func {
	pragmas, doc := Pragmas(d.Doc.Text())
	fn := &Func{Object: object, Name: d.Name.Name, Decl: d, Pragmas: pragmas, Doc: strings.TrimSpace(doc)}
	fn.Params = w.m.params(d)
	if d.Type.Results != nil {
		for _, r := range unpack(d.Type.Results) {
			fn.Results = append(fn.Results, r.Type)
		}
	}
	return fn
}

func (m *Module) params(d *ast.FuncDecl) []Param {
	fields := unpack(d.Type.Params)
	var out []Param
	i := 0
	if len(fields) > 0 && isContext(fields[0].Type) {
		out = append(out, Param{Name: fieldName(fields[0]), Context: true, Type: fields[0].Type, Pos: fields[0].Pos()})
		i = 1
	}
	if i+1 == len(fields) {
		if st := inlineStruct(fields[i].Type); st != nil {
			return append(out, m.inlineParams(fields[i], st)...)
		}
	}
	file := m.Files[m.File(d.Pos())]
	for ; i < len(fields); i++ {
		doc, line := commentsFor(m.Fset, file, d, fields, i)
		p := m.param(fields[i], doc, line)
		p.Variadic = isEllipsis(fields[i].Type)
		if p.Variadic {
			p.VarType = &ast.ArrayType{Elt: fields[i].Type.(*ast.Ellipsis).Elt}
		}
		out = append(out, p)
	}
	return out
}

func (m *Module) param(f *ast.Field, doc, line *ast.CommentGroup) Param {
	name := fieldName(f)
	unnamed := name == ""
	if unnamed {
		name = m.exprString(f.Type)
	}
	p := Param{Name: name, Var: LowerCamel(name), VarType: f.Type, Type: f.Type, Unnamed: unnamed, Context: isContext(f.Type), Pos: f.Pos()}
	p.Target = p.Var
	p.Pragmas, p.Doc = help(doc.Text(), line.Text())
	return p
}

// inlineParams unpacks a lone struct-typed parameter into one argument per
// field, all decoded into one variable named as the parameter.
func (m *Module) inlineParams(parent *ast.Field, st *ast.StructType) []Param {
	var out []Param
	for _, f := range unpack(st.Fields) {
		name := fieldName(f)
		p := Param{Name: name, Var: fieldName(parent), VarType: parent.Type, Type: f.Type, Inline: true, Pos: f.Pos()}
		p.Target = p.Var + "." + name
		p.Pragmas, p.Doc = help(f.Doc.Text(), f.Comment.Text())
		out = append(out, p)
	}
	return out
}

// help merges the pragmas of a doc and a line comment; the help text is the
// doc comment's, else the line comment's.
func help(doc, line string) (map[string]any, string) {
	pragmas, docText := Pragmas(doc)
	linePragmas, lineText := Pragmas(line)
	for k, v := range linePragmas {
		pragmas[k] = v
	}
	text := strings.TrimSpace(docText)
	if text == "" {
		text = strings.TrimSpace(lineText)
	}
	return pragmas, text
}

// commentsFor finds the doc and line comment of the i-th unpacked parameter
// by line numbers: a doc comment must end on the parameter's line or the one
// before, and is not looked for when the previous parameter (or the opening
// parenthesis) is on either of those lines; a line comment must start on the
// parameter's line, which the next parameter (or the closing parenthesis)
// must not share.
func commentsFor(fset *token.FileSet, file *ast.File, d *ast.FuncDecl, fields []*ast.Field, i int) (doc, line *ast.CommentGroup) {
	lineOf := func(p token.Pos) int { return fset.Position(p).Line }
	at := lineOf(fields[i].Pos())
	prev := lineOf(d.Type.Params.Pos())
	if i > 0 {
		prev = lineOf(fields[i-1].Pos())
	}
	// The codegen compares against the declared (not unpacked) list here.
	next := lineOf(d.Type.Params.End())
	if i+1 < len(d.Type.Params.List) {
		next = lineOf(fields[i+1].Pos())
	}
	for _, cg := range file.Comments {
		last := cg.List[len(cg.List)-1]
		end := lineOf(last.Pos()) + strings.Count(last.Text, "\n")
		if doc == nil && prev != at && prev != at-1 && (end == at || end == at-1) {
			doc = cg
		}
		if line == nil && next != at && lineOf(cg.List[0].Pos()) == at {
			line = cg
		}
	}
	return doc, line
}

// unpack splits "a, b T" into one field per name; names after the first
// lose the comments, as unpackASTFields (modules.go) does.
func unpack(fl *ast.FieldList) []*ast.Field {
	var out []*ast.Field
	for _, f := range fl.List {
		if len(f.Names) == 0 {
			out = append(out, f)
			continue
		}
		for i, n := range f.Names {
			c := *f
			c.Names = []*ast.Ident{n}
			if i > 0 {
				c.Doc, c.Comment = nil, nil
			}
			out = append(out, &c)
		}
	}
	return out
}

func fieldName(f *ast.Field) string {
	if len(f.Names) == 0 {
		return ""
	}
	return f.Names[0].Name
}

func isContext(e ast.Expr) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "context" && sel.Sel.Name == "Context"
}

func isEllipsis(e ast.Expr) bool {
	_, ok := e.(*ast.Ellipsis)
	return ok
}

func inlineStruct(e ast.Expr) *ast.StructType {
	if star, ok := e.(*ast.StarExpr); ok {
		e = star.X
	}
	st, _ := e.(*ast.StructType)
	return st
}

// ExprString renders a type expression as Go source.
func (m *Module) ExprString(e ast.Expr) string { return m.exprString(e) }

func (m *Module) exprString(e ast.Expr) string {
	var b bytes.Buffer
	if err := printer.Fprint(&b, m.Fset, e); err != nil {
		return "?"
	}
	return b.String()
}
