package checks

import (
	"testing"

	"gotest.tools/v3/assert"
)

// codegenRules are the rules of the engine's Go codegen, each with a module
// under testdata that breaks it and every problem it must report there.
var codegenRules = []struct {
	name  string
	check func(dir string) ([]string, error)
	bad   string
	want  []string
}{
	{
		name: "argument variables", check: ArgumentVariables, bad: "testdata/argument-variables",
		want: []string{
			"Mod.Blank (main.go): parameter 1 (string) has no name, so the engine's dispatcher names its variable after the type, or cannot name it at all for _; name it",
			"Mod.Errs (main.go): argument err becomes the variable err in the engine's generated dispatcher (dagger.gen.go, func invoke), where it hides the dispatcher's error result: the module does not compile on the engine; rename it, e.g. errValue",
			"Mod.Errs (main.go): argument fmt becomes the variable fmt in the engine's generated dispatcher (dagger.gen.go, func invoke), where it hides the fmt package decoding errors are reported with: the module does not compile on the engine; rename it, e.g. fmtValue",
			"Mod.Errs (main.go): argument inputArgs becomes the variable inputArgs in the engine's generated dispatcher (dagger.gen.go, func invoke), where it hides the map the arguments are read from: the module does not compile on the engine; rename it, e.g. inputArgsValue",
			"Mod.Opts (main.go): argument json becomes the variable json in the engine's generated dispatcher (dagger.gen.go, func invoke), where it hides the encoding/json package every argument is decoded with: the module does not compile on the engine; rename it, e.g. asJson",
			"Mod.Same (main.go): arguments dry_run and dryRun both become dryRun in the engine's dispatcher and API, so one value fills both; rename one",
			"Mod.Status (main.go): argument json becomes the variable json in the engine's generated dispatcher (dagger.gen.go, func invoke), where it hides the encoding/json package every argument is decoded with: the module does not compile on the engine; rename it, e.g. asJson",
			"Mod.Types (main.go): argument string becomes the variable string in the engine's generated dispatcher, hiding the type string from the declarations after it; rename it, e.g. stringValue",
			"Mod.Unnamed (main.go): parameter 1 (string) has no name, so the engine's dispatcher names its variable after the type, or cannot name it at all for _; name it",
			"New (main.go): argument parent becomes the variable parent in the engine's generated dispatcher (dagger.gen.go, func invoke), where it hides the decoded object the function is called on: the module does not compile on the engine; rename it, e.g. parentValue",
		},
	},
	{
		name: "field help", check: FieldHelp, bad: "testdata/fields-without-help",
		want: []string{
			"Mod.Dockerfile (main.go): exported field that `dagger functions` lists as a function without help; mark it `// +private` if it is state, or give it a doc comment",
			"Mod.Image (main.go): declared together with Project, so the codegen gives it neither that declaration's comment nor its +private and `dagger functions` lists it as a function without help; declare it on its own line with `// +private` (state only) or its own doc comment",
			"Mod.Password (main.go): declared together with Token, so the codegen gives it neither that declaration's comment nor its +private and `dagger functions` lists it as a function without help; declare it on its own line with `// +private` (state only) or its own doc comment",
			"Report.Digest (main.go): exported field that `dagger functions` lists as a function without help; mark it `// +private` if it is state, or give it a doc comment",
		},
	},
	{
		name: "lost state", check: LostState, bad: "testdata/state-outside-exported-fields",
		want: []string{
			"Mod.Token (main.go): tagged json:\"-\", so not kept between calls: the engine rebuilds the object from the JSON of its exported fields before every function; drop the tag (and mark it `// +private` if it is state), or drop the field",
			"Mod.cache (main.go): unexported, so not kept between calls: the engine rebuilds the object from the JSON of its exported fields before every function; export it and mark it `// +private`, or drop it",
		},
	},
	{
		name: "reserved names", check: ReservedNames, bad: "testdata/reserved-names",
		want: []string{
			"Level.Name (main.go): the engine generates Name on every exposed enum (IsEnum, MarshalJSON, Name, UnmarshalJSON, Value), so the module does not compile on the engine; rename yours",
			"Mod.MarshalJSON (main.go): the engine generates MarshalJSON on every exposed object (MarshalJSON, UnmarshalJSON), so the module does not compile on the engine; rename yours",
			"Tracer (main.go): the engine's generated dagger.gen.go declares Tracer in package main too, so the module does not compile on the engine; rename yours",
			"dispatch (main.go): the engine's generated dagger.gen.go declares dispatch in package main too, so the module does not compile on the engine; rename yours",
			"trace (main.go): the engine's generated dagger.gen.go imports go.opentelemetry.io/otel/trace as trace, and a package-level name may not reuse it, so the module does not compile on the engine; rename yours",
		},
	},
	{
		name: "rejected signatures", check: RejectedSignatures, bad: "testdata/rejected-signatures",
		want: []string{
			"Level (main.go): an enum (a type with constants) based on int: the engine's generated MarshalJSON compares it with \"\" and does not compile; base it on string",
			"Mod.CtxLast (main.go): context.Context is not the first parameter, and the codegen fails with \"unexpected context type for arg\"; move it first",
			"Mod.Hidden (main.go): uses the unexported type report, and the codegen fails with \"cannot code-generate unexported type report\"; export the type",
			"Mod.Nested (main.go): argument opts has an anonymous struct type, which the codegen accepts only as a function's lone options argument, not beside others or nested in it (\"nested structs are not supported\"); declare a named struct type",
			"Mod.NotErr (main.go): the second result is string, and the codegen fails with \"second return value must be error\"; return a value and an error",
			"Mod.Old (main.go): argument name is marked +deprecated but required, and the codegen fails with \"is required and cannot be deprecated\"; make it +optional or give it a +default",
			"Mod.Three (main.go): returns 3 values, and the codegen fails with \"has too many return values\"; return one value (a struct) and an error",
			"New (main.go): New does not return the main object, and the codegen fails with \"New must return the main module object \"Mod\"\"; return *Mod",
		},
	},
	{
		name: "rejected pragmas", check: RejectedPragmas, bad: "testdata/rejected-pragmas",
		want: []string{
			"Mod.Run (main.go): +cache=5 is not a string, and the codegen fails with \"cache pragma … must be a valid string\"; write +cache=\"never\", +cache=\"session\" or a quoted duration",
			"Mod.Run (main.go): +check=\"yes\" is not a boolean, and the codegen fails with \"check pragma … must be a valid boolean\"; write +check alone",
			"Mod.Run (main.go): argument src: +defaultPath=1 is not a string, and the codegen fails; quote it",
			"Mod.Run (main.go): argument src: +ignore=[\"ok\",2] is not a JSON array of strings, and the codegen fails; write +ignore=[\"pattern\", …]",
			"Mod.Run (main.go): argument target: +default=\"staging\" is not a value of the enum Target, and the engine fails with \"unknown enum value\"; use one of \"PROD\", \"STAGING\"",
		},
	},
}

// The module in ci/ must load and compile on the engine and show only what
// is meant in `dagger functions`: no codegen rule may fire on it.
func TestDaggerModuleFollowsCodegenRules(t *testing.T) {
	for _, r := range codegenRules {
		t.Run(r.name, func(t *testing.T) {
			problems, err := r.check("../ci")
			assert.NilError(t, err)
			assert.DeepEqual(t, problems, []string(nil))
		})
	}
}

// Each rule reports every violation in its bad example, and nothing else.
func TestCodegenRulesFindViolations(t *testing.T) {
	for _, r := range codegenRules {
		t.Run(r.name, func(t *testing.T) {
			problems, err := r.check(r.bad)
			assert.NilError(t, err)
			assert.DeepEqual(t, problems, r.want)
		})
	}
}
