package codegen

import (
	"go/ast"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// walk finds what the engine exposes, starting at the main object and
// following exposed fields, arguments and results, as visitTypes (visit.go)
// does from the module's main object.
func (m *Module) walk(mainName string) {
	w := &walker{m: m, seen: map[string]bool{}}
	w.queue = append(w.queue, mainName)
	for len(w.queue) > 0 {
		name := w.queue[0]
		w.queue = w.queue[1:]
		if w.seen[name] {
			continue
		}
		w.seen[name] = true
		w.visit(name, name == mainName)
	}
	sort.Slice(m.Objects, func(i, j int) bool { return m.Objects[i].Name < m.Objects[j].Name })
	sort.Slice(m.Enums, func(i, j int) bool { return m.Enums[i].Name < m.Enums[j].Name })
	sort.Strings(m.Interfaces)
}

type walker struct {
	m     *Module
	seen  map[string]bool
	queue []string
}

func (w *walker) visit(name string, isMain bool) {
	ts := w.m.types[name]
	if ts.Assign.IsValid() {
		w.ref(name, ts.Type)
		return
	}
	switch t := ts.Type.(type) {
	case *ast.StructType:
		obj := w.object(ts, t)
		w.m.Objects = append(w.m.Objects, obj)
		if isMain {
			w.m.Main = obj
			if fn := w.m.constructor(); fn != nil {
				w.m.New = w.function("", fn)
				w.refs(w.m.New)
			}
		}
	case *ast.InterfaceType:
		w.m.Interfaces = append(w.m.Interfaces, name)
	case *ast.Ident:
		if e := w.m.enum(ts, t.Name); e != nil {
			w.m.Enums = append(w.m.Enums, e)
		}
	}
}

func (w *walker) object(ts *ast.TypeSpec, st *ast.StructType) *Object {
	obj := &Object{Name: ts.Name.Name, Spec: ts, Fields: fields(st)}
	for _, f := range obj.Fields {
		if f.Exposed() {
			w.ref(obj.Name+"."+f.Name, f.Type)
		}
	}
	for _, d := range w.m.methods[obj.Name] {
		if d.Name.IsExported() {
			fn := w.function(obj.Name, d)
			obj.Methods = append(obj.Methods, fn)
			w.refs(fn)
		}
	}
	sort.Slice(obj.Methods, func(i, j int) bool { return obj.Methods[i].Name < obj.Methods[j].Name })
	return obj
}

// refs follows the argument and result types of an exposed function.
func (w *walker) refs(fn *Func) {
	for _, p := range fn.Params {
		if !p.Context {
			w.ref(fn.Where(), p.Type)
		}
	}
	for _, r := range fn.Results {
		w.ref(fn.Where(), r)
	}
}

// ref queues the local types e names and records unexported ones.
func (w *walker) ref(where string, e ast.Expr) {
	ast.Inspect(e, func(n ast.Node) bool {
		switch t := n.(type) {
		case *ast.SelectorExpr:
			return false // a type of another package
		case *ast.Ident:
			if w.m.types[t.Name] == nil {
				return false
			}
			if !ast.IsExported(t.Name) {
				w.m.Unexported = append(w.m.Unexported, TypeRef{Type: t.Name, Where: where, Pos: t.Pos()})
				return false
			}
			w.queue = append(w.queue, t.Name)
		}
		return true
	})
}

// fields unpacks a struct's field declarations, one Field per name.
func fields(st *ast.StructType) []Field {
	var out []Field
	for _, decl := range st.Fields.List {
		names := decl.Names
		if len(names) == 0 { // embedded: the field is named after its type
			names = []*ast.Ident{ast.NewIdent(embeddedName(decl.Type))}
			names[0].NamePos = decl.Type.Pos()
		}
		for i, n := range names {
			f := Field{Name: n.Name, Type: decl.Type, Exported: ast.IsExported(n.Name), JSONName: n.Name, Pos: n.Pos()}
			jsonTag(decl.Tag, &f)
			if i == 0 {
				f.Doc, f.Private = fieldHelp(decl)
			} else {
				f.SharedWith = names[0].Name
			}
			out = append(out, f)
		}
	}
	return out
}

// embeddedName is the name of an embedded field: its type's, without
// package or pointer.
func embeddedName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return embeddedName(t.X)
	case *ast.SelectorExpr:
		return t.Sel.Name
	case *ast.IndexExpr:
		return embeddedName(t.X)
	}
	return baseIdent(e)
}

func jsonTag(tag *ast.BasicLit, f *Field) {
	if tag == nil {
		return
	}
	raw, err := strconv.Unquote(tag.Value)
	if err != nil {
		return
	}
	name, _, _ := strings.Cut(reflect.StructTag(raw).Get("json"), ",")
	switch name {
	case "-":
		f.Skipped = true
	case "":
	default:
		f.JSONName = name
	}
}

// fieldHelp is the help text of a field declaration and its +private pragma,
// from its doc comment or else its line comment.
func fieldHelp(decl *ast.Field) (string, bool) {
	docPragmas, doc := Pragmas(decl.Doc.Text())
	linePragmas, line := Pragmas(decl.Comment.Text())
	for k, v := range linePragmas {
		docPragmas[k] = v
	}
	help := strings.TrimSpace(doc)
	if help == "" {
		help = strings.TrimSpace(line)
	}
	private := false
	if v, ok := docPragmas["private"]; ok {
		b, isBool := v.(bool)
		private = v == nil || (isBool && b)
	}
	return help, private
}

// enum is the named basic type ts as an enum, or nil when no constant has
// its type (then it is a plain scalar).
func (m *Module) enum(ts *ast.TypeSpec, basic string) *Enum {
	if m.types[basic] != nil {
		return nil
	}
	e := &Enum{Name: ts.Name.Name, Basic: basic, Pos: ts.Pos()}
	for _, c := range m.consts {
		if c.typ != e.Name {
			continue
		}
		for i, n := range c.spec.Names {
			v := EnumValue{Const: n.Name, Name: n.Name}
			if i < len(c.spec.Values) {
				v.Value, v.IsString = stringConst(c.spec.Values[i])
			}
			e.Values = append(e.Values, v)
		}
	}
	if len(e.Values) == 0 {
		return nil
	}
	sort.Slice(e.Values, func(i, j int) bool { return e.Values[i].Const < e.Values[j].Const })
	trimEnumPrefix(e)
	return e
}

func stringConst(v ast.Expr) (string, bool) {
	if call, ok := v.(*ast.CallExpr); ok && len(call.Args) == 1 {
		v = call.Args[0]
	}
	lit, ok := v.(*ast.BasicLit)
	if !ok || lit.Kind.String() != "STRING" {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// trimEnumPrefix drops the enum's name from its values' API names when every
// constant starts with it (TargetStaging → Staging), as parseGoEnum does.
func trimEnumPrefix(e *Enum) {
	for _, v := range e.Values {
		if !strings.HasPrefix(v.Const, e.Name) {
			return
		}
	}
	for i := range e.Values {
		e.Values[i].Name = e.Values[i].Const[len(e.Name):]
	}
}
