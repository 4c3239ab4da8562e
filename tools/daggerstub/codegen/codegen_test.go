package codegen

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestLowerCamelNamesTheDispatcherVariable(t *testing.T) {
	cases := map[string]string{
		"json": "json", "JSON": "json", "asJson": "asJson", "dry_run": "dryRun", "credsJSON": "credsJson",
		"oidcRequestUrl": "oidcRequestUrl", "x2y": "x2Y", "_": "", "": "", "*dagger.Secret": "daggerSecret",
	}
	for in, want := range cases {
		assert.Check(t, is.Equal(LowerCamel(in), want), "LowerCamel(%q)", in)
	}
}

func TestCamelNamesTheMainObject(t *testing.T) {
	for in, want := range map[string]string{"ringg-ci": "RinggCi", "shop": "Shop", "my_mod.v2": "MyModV2", "RinggCi": "RinggCi"} {
		assert.Check(t, is.Equal(Camel(in), want), "Camel(%q)", in)
	}
}

func TestPragmas(t *testing.T) {
	cases := []struct {
		name, comment, rest string
		want                map[string]any
	}{
		{"bare", "Help text.\n+optional\n", "Help text.\n", map[string]any{"optional": nil}},
		{"json string", "+default=\"STAGING\"\n", "", map[string]any{"default": "STAGING"}},
		{"json over lines", "Dir.\n+ignore=[\".git\",\n  \"**/testdata\"]\n+optional\n", "Dir.\n",
			map[string]any{"ignore": []any{".git", "**/testdata"}, "optional": nil}},
		{"raw value", "+cache=never\n", "", map[string]any{"cache": "never"}},
		{"empty value", "+defaultPath=\n", "", map[string]any{"defaultPath": nil}},
		{"plus inside text", "Adds a +1 to it.\n", "Adds a +1 to it.\n", map[string]any{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, rest := Pragmas(tc.comment)
			assert.DeepEqual(t, got, tc.want)
			assert.Equal(t, rest, tc.rest)
		})
	}
}

func TestLoadFindsWhatTheEngineExposes(t *testing.T) {
	m, err := Load("testdata/exposure", "shop")
	assert.NilError(t, err)
	assert.Equal(t, m.Main.Name, "Shop")
	assert.Equal(t, m.New.Name, "New")
	var objects []string
	for _, o := range m.Objects {
		objects = append(objects, o.Name)
	}
	assert.DeepEqual(t, objects, []string{"Line", "Receipt", "Shop", "Wrapper"})
	var embedded []string
	for _, f := range m.Objects[3].Fields {
		embedded = append(embedded, f.Name)
	}
	assert.DeepEqual(t, embedded, []string{"Container", "Line"})
	assert.Equal(t, len(m.Enums), 1)
	assert.DeepEqual(t, m.Enums[0].Values, []EnumValue{
		{Const: "SizeLarge", Name: "Large", Value: "L", IsString: true},
		{Const: "SizeSmall", Name: "Small", Value: "S", IsString: true},
	})
	assert.Equal(t, len(m.Unexported), 1)
	assert.Equal(t, m.Unexported[0].Type, "secretNote")
	assert.Equal(t, m.Unexported[0].Where, "Shop.Leak")
}

func TestLoadFindsTheMainObjectFromNewWithoutAName(t *testing.T) {
	m, err := Load("testdata/exposure", "")
	assert.NilError(t, err)
	assert.Equal(t, m.Main.Name, "Shop")
}

func TestLoadRefusesAModuleWithoutItsObject(t *testing.T) {
	_, err := Load("testdata/exposure", "ringg-ci")
	assert.ErrorContains(t, err, "no struct named RinggCi")
}

func TestFieldsAsTheCodegenReadsThem(t *testing.T) {
	m, err := Load("testdata/exposure", "shop")
	assert.NilError(t, err)
	type view struct {
		Name, JSONName, SharedWith, Doc string
		Exported, Skipped, Private      bool
	}
	var got []view
	for _, f := range m.Main.Fields {
		got = append(got, view{f.Name, f.JSONName, f.SharedWith, f.Doc, f.Exported, f.Skipped, f.Private})
	}
	assert.DeepEqual(t, got, []view{
		{"Source", "Source", "", "Where the goods are.", true, false, false},
		{"Project", "Project", "", "Overrides.", true, false, false},
		{"Image", "Image", "Project", "", true, false, false},
		{"Token", "Token", "", "", true, false, true},
		{"Region", "zone", "", "", true, false, false},
		{"Skip", "Skip", "", "", true, true, false},
		{"cache", "cache", "", "", false, false, false},
	})
}

func TestParamsAsTheDispatcherDeclaresThem(t *testing.T) {
	m, err := Load("testdata/exposure", "shop")
	assert.NilError(t, err)
	type view struct {
		Name, Var, Target, Type, Doc string
		Context, Variadic, Inline    bool
	}
	params := func(fn *Func) []view {
		var out []view
		for _, p := range fn.Params {
			out = append(out, view{p.Name, p.Var, p.Target, m.ExprString(p.Type), p.Doc, p.Context, p.Variadic, p.Inline})
		}
		return out
	}
	byName := map[string]*Func{}
	for _, fn := range m.Main.Methods {
		byName[fn.Name] = fn
	}
	assert.DeepEqual(t, params(byName["Buy"]), []view{
		{"ctx", "", "", "context.Context", "", true, false, false},
		{"size", "size", "size", "Size", "Size to buy.", false, false, false},
		{"dry_run", "dryRun", "dryRun", "bool", "", false, false, false},
		// Shares a line with dry_run: no doc comment; its line comment is its help.
		{"credsJSON", "credsJson", "credsJson", "bool", "shared declaration", false, false, false},
		{"note", "note", "note", "Loose", "", false, false, false},
		{"items", "items", "items", "...string", "", false, true, false},
	})
	assert.DeepEqual(t, params(byName["Configure"]), []view{
		{"Name", "opts", "opts.Name", "string", "Name.", false, false, true},
		{"Size", "opts", "opts.Size", "Size", "", false, false, true},
	})
	assert.DeepEqual(t, byName["Buy"].Pragmas, map[string]any{"cache": "never"})
	assert.Equal(t, m.New.Params[0].Pragmas["defaultPath"], "/")
	_, exposed := byName["hide"]
	assert.Check(t, !exposed, "unexported methods are not functions")
}
