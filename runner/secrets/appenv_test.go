package secrets

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"
)

// The messages a shape leads to, written out once so the table reads as the
// rules: what the old pipeline (jq, then kubectl create secret
// --from-literal) stored is accepted with the same data; what kubectl refused,
// and what no environment variable can hold, is refused.
const (
	warnNotPortable = "is not a portable environment variable name (letters, digits and '_', not starting with a digit): " +
		"Kubernetes 1.34 and later pass it to the app through envFrom (older clusters may skip it), " +
		"but shells and some libraries cannot read it; rename it if the app does not see it"
	warnNumberForm = "is a number that the old pipeline's jq 1.7 rewrote (12e-1 became 1.2, 1e3 became 1E+3); " +
		"stored as jq wrote it, as before; quote it to store it as written"
	warnEmptyObject = "app secrets JSON: is an empty object, so the app Secret holds no variables (as the old pipeline's empty Secret did); " +
		"leave the input unset instead to keep the deployed Secret"
	refuseKeyFix = "rename it with letters, digits and '_' only (Kubernetes also allows '-' and '.')"
)

func oneProblem(msg string) string { return "validate secrets: 1 problem:\napp secrets JSON: " + msg }

func TestAppEnvShapes(t *testing.T) {
	long253, long254 := strings.Repeat("K", 253), strings.Repeat("K", 254)
	tests := []struct {
		name string
		doc  string
		// Accepted: the exact data and warnings.
		data     map[string]string
		warnings []string
		// Refused: the exact error.
		err string
	}{
		{name: "string", doc: `{"K": "SECRETVALUE \"q\" \u00e9"}`, data: map[string]string{"K": `SECRETVALUE "q" é`}},
		{name: "empty string", doc: `{"K": ""}`, data: map[string]string{"K": ""}},
		{name: "integer", doc: `{"PORT": 8765}`, data: map[string]string{"PORT": "8765"}},
		{name: "float", doc: `{"TEMPERATURE": 0.7}`, data: map[string]string{"TEMPERATURE": "0.7"}},
		{name: "float with trailing zero", doc: `{"RATIO": 1.50}`, data: map[string]string{"RATIO": "1.50"}},
		{
			name: "exponent, as jq 1.7 wrote it", doc: `{"N": 4.2e1}`, data: map[string]string{"N": "42"},
			warnings: []string{`app secrets JSON: key "N": ` + warnNumberForm},
		},
		{name: "exponent in jq's own form", doc: `{"N": 1E+3}`, data: map[string]string{"N": "1E+3"}},
		{name: "negative", doc: `{"OFFSET": -12}`, data: map[string]string{"OFFSET": "-12"}},
		{name: "negative zero", doc: `{"Z": -0}`, data: map[string]string{"Z": "-0"}},
		{name: "beyond float64 precision", doc: `{"ID": 9007199254740993}`, data: map[string]string{"ID": "9007199254740993"}},
		{name: "true", doc: `{"DEBUG": true}`, data: map[string]string{"DEBUG": "true"}},
		{name: "false", doc: `{"DEBUG": false}`, data: map[string]string{"DEBUG": "false"}},
		{
			name: "null", doc: `{"TOKEN": null}`,
			err: oneProblem(`key "TOKEN": value is null; give a string ("" for empty) or remove the key`),
		},
		{
			name: "object", doc: `{"DB": {"password": "SECRETVALUE"}}`,
			err: oneProblem(`key "DB": value is a nested object; environment variables are flat strings, so flatten it or encode it as a JSON string`),
		},
		{
			name: "array", doc: `{"HOSTS": ["SECRETVALUE"]}`,
			err: oneProblem(`key "HOSTS": value is an array; environment variables are strings, so encode it as one string`),
		},
		{
			name: "duplicate", doc: `{"K": "SECRETVALUE-1", "OTHER": "x", "K": "SECRETVALUE-2"}`,
			data:     map[string]string{"K": "SECRETVALUE-2", "OTHER": "x"},
			warnings: []string{`app secrets JSON: key "K": appears 2 times; the last value is used, as the old jq-based pipeline did; remove the others`},
		},
		{
			name: "duplicate whose earlier value could not be a variable", doc: `{"K": null, "K": {"a": 1}, "K": 7}`,
			data:     map[string]string{"K": "7"},
			warnings: []string{`app secrets JSON: key "K": appears 3 times; the last value is used, as the old jq-based pipeline did; remove the others`},
		},
		{
			name: "duplicate whose last value cannot be a variable", doc: `{"K": "SECRETVALUE", "K": null}`,
			err: oneProblem(`key "K": value is null; give a string ("" for empty) or remove the key`),
		},
		{name: "empty object", doc: `{}`, data: map[string]string{}, warnings: []string{warnEmptyObject}},
		{
			name: "dash key", doc: `{"redis-url": "SECRETVALUE"}`, data: map[string]string{"redis-url": "SECRETVALUE"},
			warnings: []string{`app secrets JSON: key "redis-url": ` + warnNotPortable},
		},
		{
			name: "dot key", doc: `{"app.key": "SECRETVALUE"}`, data: map[string]string{"app.key": "SECRETVALUE"},
			warnings: []string{`app secrets JSON: key "app.key": ` + warnNotPortable},
		},
		{
			name: "leading digit", doc: `{"1ST_KEY": "SECRETVALUE"}`, data: map[string]string{"1ST_KEY": "SECRETVALUE"},
			warnings: []string{`app secrets JSON: key "1ST_KEY": ` + warnNotPortable},
		},
		{name: "leading underscore", doc: `{"_K": "SECRETVALUE"}`, data: map[string]string{"_K": "SECRETVALUE"}},
		{name: "253-byte key", doc: `{"` + long253 + `": "SECRETVALUE"}`, data: map[string]string{long253: "SECRETVALUE"}},
		{
			name: "space key", doc: `{"HAS SPACE": "SECRETVALUE"}`,
			err: oneProblem(`key "HAS SPACE": is not a valid Kubernetes Secret key (it holds ' '); ` + refuseKeyFix),
		},
		{
			name: "slash key", doc: `{"a/b": "SECRETVALUE"}`,
			err: oneProblem(`key "a/b": is not a valid Kubernetes Secret key (it holds '/'); ` + refuseKeyFix),
		},
		{
			name: "equals key", doc: `{"A=B": "SECRETVALUE"}`,
			err: oneProblem(`key "A=B": is not a valid Kubernetes Secret key (it holds '='); ` + refuseKeyFix),
		},
		{
			name: "empty key", doc: `{"": "SECRETVALUE"}`,
			err: oneProblem(`key "": is empty, which Kubernetes does not allow as a Secret key; name the variable or remove it`),
		},
		{
			name: "dot", doc: `{".": "SECRETVALUE"}`,
			err: oneProblem(`key ".": is not a valid Kubernetes Secret key ('.', '..' and a leading '..' are reserved); ` + refuseKeyFix),
		},
		{
			name: "dot dot prefix", doc: `{"..K": "SECRETVALUE"}`,
			err: oneProblem(`key "..K": is not a valid Kubernetes Secret key ('.', '..' and a leading '..' are reserved); ` + refuseKeyFix),
		},
		{
			name: "254-byte key", doc: `{"` + long254 + `": "SECRETVALUE"}`,
			err: oneProblem(`key "` + long254[:80] + `"… (254 bytes): is not a valid Kubernetes Secret key (it is 254 bytes long, over the limit of 253); shorten it to 253 bytes or fewer`),
		},
		{
			name: "254-byte key with a space", doc: `{"` + long254[:253] + ` ": "SECRETVALUE"}`,
			err: oneProblem(`key "` + long254[:80] + `"… (254 bytes): is not a valid Kubernetes Secret key (it holds ' '; it is 254 bytes long, over the limit of 253); ` +
				refuseKeyFix + ` and shorten it to 253 bytes or fewer`),
		},
		{
			name: "unicode key", doc: `{"clé": "SECRETVALUE"}`,
			err: oneProblem(`key "clé": is not a valid Kubernetes Secret key (it holds 'é'); ` + refuseKeyFix),
		},
		{
			name: "key and value both refused", doc: `{"a b": null}`,
			err: "validate secrets: 2 problems:\n" +
				`app secrets JSON: key "a b": is not a valid Kubernetes Secret key (it holds ' '); ` + refuseKeyFix + "\n" +
				`app secrets JSON: key "a b": value is null; give a string ("" for empty) or remove the key`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Build([]byte(tc.doc), nil, DefaultNames(), "default")
			if tc.err != "" {
				assert.Assert(t, errors.Is(err, ErrInvalid))
				assertNoLeak(t, err.Error())
				assert.Equal(t, err.Error(), tc.err)
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, dataOf(b), tc.data)
			assert.DeepEqual(t, b.Warnings(), tc.warnings)
			warned := strings.Join(b.Warnings(), "\n")
			assertNoLeak(t, warned)
			for k, v := range tc.data {
				if len(v) > 1 && !strings.Contains(k, v) {
					assert.Assert(t, !strings.Contains(warned, v), "a warning holds the value of %q", k)
				}
			}
		})
	}
}

// dataOf returns the app Secret's data as strings.
func dataOf(b Bundle) map[string]string {
	out := map[string]string{}
	for _, s := range b.secrets {
		if s.kind != AppEnv {
			continue
		}
		for k, v := range s.data {
			out[k] = string(v)
		}
	}
	return out
}

// TestBuildAcceptsAppEnvDocuments pins, per document, the Secret's name, its
// exact data and the warnings.
func TestBuildAcceptsAppEnvDocuments(t *testing.T) {
	for _, file := range []string{
		"valid-number-as-text.json",
		"valid-boolean-as-text.json",
		"valid-duplicate-key-last-wins.json",
		"valid-empty-object.json",
		"valid-non-portable-key-names.json",
	} {
		name := strings.TrimSuffix(file, ".json")
		t.Run(name, func(t *testing.T) {
			b, err := Build(readTestdata(t, file), nil, DefaultNames(), "default")
			assert.NilError(t, err)
			data := dataOf(b)
			var sb strings.Builder
			fmt.Fprintf(&sb, "name: %s\ndata:\n", b.Names().AppEnv)
			keys := b.Summaries()[0].Keys
			for _, k := range keys {
				fmt.Fprintf(&sb, "  %s=%q\n", k, data[k])
			}
			sb.WriteString("warnings:\n")
			for _, w := range b.Warnings() {
				fmt.Fprintf(&sb, "  %s\n", w)
			}
			golden.Assert(t, sb.String(), filepath.Join("results", name+".txt"))
		})
	}
}

func TestNamesFollowResultingData(t *testing.T) {
	name := func(t *testing.T, doc string) string {
		t.Helper()
		b, err := Build([]byte(doc), nil, DefaultNames(), "default")
		assert.NilError(t, err)
		return b.Names().AppEnv
	}
	same := []struct{ name, a, b string }{
		{"a number and its quoted text", `{"PORT": 8765}`, `{"PORT": "8765"}`},
		{"a boolean and its quoted text", `{"DEBUG": true}`, `{"DEBUG": "true"}`},
		{"a duplicate and its last value", `{"K": "a", "K": "b"}`, `{"K": "b"}`},
		{"an empty object, however written", `{}`, "{ \n }"},
		{"two spellings jq 1.7 wrote alike", `{"N": 4.2e1}`, `{"N": 42}`},
	}
	for _, tc := range same {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, name(t, tc.a), name(t, tc.b))
		})
	}
	differ := []struct{ name, a, b string }{
		{"a trailing zero", `{"N": 1.5}`, `{"N": 1.50}`},
		{"an empty object and an empty value", `{}`, `{"K": ""}`},
	}
	for _, tc := range differ {
		t.Run(tc.name, func(t *testing.T) {
			assert.Assert(t, name(t, tc.a) != name(t, tc.b))
		})
	}
	t.Run("the same document always gives the same name", func(t *testing.T) {
		doc := `{"B": 2, "A": "x", "A": "y", "c-d": true}`
		first := name(t, doc)
		for range 20 {
			assert.Equal(t, name(t, doc), first)
		}
	})
}

// TestJQNumberText checks the emulation of jq 1.7 against what jq 1.7.1
// printed for `to_entries[] | "\(.value)"` on {"K": <literal>}.
func TestJQNumberText(t *testing.T) {
	jq171 := [][2]string{
		{"8765", "8765"}, {"-12", "-12"}, {"-0", "-0"}, {"10", "10"},
		{"0.7", "0.7"}, {"1.50", "1.50"}, {"12.0", "12.0"}, {"0.001", "0.001"},
		{"4.2e1", "42"}, {"1e3", "1E+3"}, {"1E+2", "1E+2"}, {"2E5", "2E+5"}, {"1.5e+3", "1.5E+3"},
		{"0e5", "0E+5"}, {"0.00", "0.00"}, {"-0.0", "-0.0"}, {"0E-3", "0.000"},
		{"1.0e0", "1.0"}, {"1e0", "1"}, {"1E+0", "1"}, {"0.1e1", "1"}, {"12e-1", "1.2"}, {"100e-2", "1.00"},
		{"123.456e2", "12345.6"}, {"0.0001e10", "1E+6"}, {"-12.5E-3", "-0.0125"},
		{"1e-6", "0.000001"}, {"0.000001", "0.000001"}, {"1e-7", "1E-7"}, {"0.0000001", "1E-7"},
		{"1.23e-7", "1.23E-7"}, {"5E-10", "5E-10"}, {"123456789e-20", "1.23456789E-12"},
		{"1e400", "1E+400"}, {"-1e-400", "-1E-400"},
		{"9007199254740993", "9007199254740993"}, {"100000000000000000001", "100000000000000000001"},
		{"3.14159265358979323846264338327950288", "3.14159265358979323846264338327950288"},
	}
	for _, c := range jq171 {
		t.Run(c[0], func(t *testing.T) {
			got, ok := jqNumberText(c[0])
			assert.Assert(t, ok)
			assert.Equal(t, got, c[1])
		})
	}
	t.Run("beyond decNumber's exponents", func(t *testing.T) {
		for _, lit := range []string{"1e1000000000", "1e-1000000001", "1e99999999999999999999"} {
			_, ok := jqNumberText(lit)
			assert.Assert(t, !ok, lit)
		}
	})
	t.Run("zero", func(t *testing.T) {
		for _, lit := range []string{"0", "0e0", "0E-0", "0.0e+0"} {
			got, ok := jqNumberText(lit)
			assert.Assert(t, ok, lit)
			assert.Assert(t, strings.HasPrefix(got, "0"), "%s gave %s", lit, got)
		}
	})
}
