package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"
)

// marker is in every secret value of the test data; no output may contain it.
const marker = "SECRETVALUE"

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	assert.NilError(t, err)
	return b
}

// assertNoLeak fails if text holds the marker or any of the extra values.
func assertNoLeak(t *testing.T, text string, values ...string) {
	t.Helper()
	for _, v := range append(values, marker) {
		if strings.Contains(text, v) {
			t.Fatalf("output leaks a secret value (%d bytes of output); it must name keys and positions only", len(text))
		}
	}
}

func TestBuildRejectsInvalidAppEnv(t *testing.T) {
	tests := []struct {
		file string
		// named must each appear in the error: keys and positions.
		named []string
		// hidden must not appear, besides the marker.
		hidden []string
	}{
		{file: "invalid-nested-object.json", named: []string{`key "DB"`, "nested object"}, hidden: []string{"password"}},
		{file: "invalid-array.json", named: []string{`key "ALLOWED_HOSTS"`, "array"}},
		{file: "invalid-null.json", named: []string{`key "OPENAI_API_KEY"`, "null"}},
		{file: "invalid-key-with-space.json", named: []string{`key "HAS SPACE": is not a valid Kubernetes Secret key (it holds ' ')`}},
		{file: "invalid-key-with-slash.json", named: []string{`key "config/path"`, `it holds '/'`}},
		{file: "invalid-key-with-equals.json", named: []string{`key "A=B"`, `it holds '='`}},
		{file: "invalid-key-empty.json", named: []string{`key "": is empty`}},
		{file: "invalid-key-dot.json", named: []string{`key "."`, `key ".."`, `key "..hidden"`, "3 problems:"}},
		{file: "invalid-key-too-long.json", named: []string{"it is 254 bytes long, over the limit of 253"}},
		{file: "invalid-key-unicode.json", named: []string{`key "ключ"`, `it holds 'к'`}},
		{file: "invalid-not-object.json", named: []string{"got an array"}, hidden: []string{"array-item"}},
		{file: "invalid-string-document.json", named: []string{"got a string"}},
		{file: "invalid-syntax-unquoted-value.json", named: []string{"line 3, column 21"}, hidden: []string{"'Z'", "Zsk"}},
		{file: "invalid-syntax-single-quotes.json", named: []string{"line 1, column 20"}, hidden: []string{`'''`, `'\''`}},
		{file: "invalid-truncated.json", named: []string{"ends early", "line 1, column 42"}},
		{file: "invalid-raw-newline-in-value.json", named: []string{"line 1, column 37", "must be escaped"}, hidden: []string{"break"}},
		{file: "invalid-trailing-data.json", named: []string{"unexpected data after the JSON value at line 1, column 38"}},
		// The value of OPENAI_API_KEY holds `", "`: what the parser reads as the
		// next key is a piece of that value, and must not be named.
		{file: "invalid-unescaped-quote-in-value.json", named: []string{"line 1, column 59", `must be written \"`}, hidden: []string{"sk-1", "after-stray-quote"}},
		{file: "invalid-many-problems.json", named: []string{
			`"bad name"`, `"NESTED"`, `"LIST"`, `"NOTHING"`, "4 problems:",
		}, hidden: []string{"8765", "bad-name", `"GOOD"`, `"FLAG"`}},
	}
	for _, tc := range tests {
		t.Run(strings.TrimSuffix(tc.file, ".json"), func(t *testing.T) {
			_, err := Build(readTestdata(t, tc.file), nil, DefaultNames(), "default")
			assert.Assert(t, err != nil, "want an error")
			assert.Assert(t, errors.Is(err, ErrInvalid))
			msg := err.Error()
			assertNoLeak(t, msg, tc.hidden...)
			for _, n := range tc.named {
				assert.Assert(t, is.Contains(msg, n))
			}
			golden.Assert(t, msg, filepath.Join("errors", strings.TrimSuffix(tc.file, ".json")+".txt"))
		})
	}
}

func TestBuildRejectsInvalidCreds(t *testing.T) {
	tests := []struct {
		file  string
		named []string
	}{
		{file: "invalid-creds-no-type.json", named: []string{`field "type": is missing`}},
		{file: "invalid-creds-unknown-type.json", named: []string{`field "type": is not a recognised credentials type`, "service_account"}},
		{file: "invalid-creds-type-not-string.json", named: []string{`field "type": is not a string`}},
		{file: "invalid-creds-missing-private-key.json", named: []string{`field "private_key": is missing`, `field "client_email": is empty`}},
		{file: "invalid-creds-not-object.json", named: []string{"got array"}},
		{file: "invalid-creds-null.json", named: []string{"got null"}},
		{file: "invalid-creds-syntax.json", named: []string{"line 1, column 44"}},
	}
	for _, tc := range tests {
		t.Run(strings.TrimSuffix(tc.file, ".json"), func(t *testing.T) {
			_, err := Build(nil, readTestdata(t, tc.file), DefaultNames(), "default")
			assert.Assert(t, err != nil, "want an error")
			assert.Assert(t, errors.Is(err, ErrInvalid))
			msg := err.Error()
			assertNoLeak(t, msg, "'S'")
			for _, n := range tc.named {
				assert.Assert(t, is.Contains(msg, n))
			}
			golden.Assert(t, msg, filepath.Join("errors", strings.TrimSuffix(tc.file, ".json")+".txt"))
		})
	}
}

func TestBuildRejectsGeneratedInputs(t *testing.T) {
	big := `{"BIG": "` + marker + strings.Repeat("x", 1<<20) + `"}`
	tests := []struct {
		name        string
		app, creds  []byte
		base        Names
		namespace   string
		named       []string
		wantProblem int
	}{
		{name: "empty app input", app: []byte{}, named: []string{"app secrets JSON: is empty"}},
		{name: "whitespace creds input", creds: []byte(" \n\t"), named: []string{"GCP credentials JSON: is empty"}},
		{name: "invalid utf-8", app: []byte("{\"K\": \"" + marker + "\xff\"}"), named: []string{"not valid UTF-8 at line 1, column 19"}},
		{name: "over the secret size limit", app: []byte(big), named: []string{"over the Kubernetes Secret limit of 1048576 bytes"}},
		{name: "creds over the size limit", creds: []byte(big), named: []string{"GCP credentials JSON: is 1048598 bytes"}},
		{name: "bad namespace", app: readTestdata(t, "valid-app-env.json"), namespace: "Not_A_Namespace", named: []string{`namespace "Not_A_Namespace"`}},
		{name: "missing base name", app: readTestdata(t, "valid-app-env.json"), base: Names{GCPCreds: DefaultGCPCreds}, named: []string{`base Secret name is empty; set it (default "dv-pipecat-app-secrets")`}},
		{name: "bad base name", creds: readTestdata(t, "valid-creds-service-account.json"), base: Names{AppEnv: DefaultAppEnv, GCPCreds: "Creds_Upper"}, named: []string{`base Secret name "Creds_Upper" for GCP credentials`}},
		{
			name:  "problems of both inputs at once",
			app:   readTestdata(t, "invalid-many-problems.json"),
			creds: readTestdata(t, "invalid-creds-no-type.json"),
			named: []string{`app secrets JSON: key "bad name"`, `app secrets JSON: key "NOTHING"`, `GCP credentials JSON: field "type"`, "5 problems:"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.base == (Names{}) {
				tc.base = DefaultNames()
			}
			if tc.namespace == "" {
				tc.namespace = "default"
			}
			_, err := Build(tc.app, tc.creds, tc.base, tc.namespace)
			assert.Assert(t, err != nil, "want an error")
			assert.Assert(t, errors.Is(err, ErrInvalid))
			msg := err.Error()
			assertNoLeak(t, msg)
			assert.Assert(t, len(msg) < 2000, "message is %d bytes", len(msg))
			for _, n := range tc.named {
				assert.Assert(t, is.Contains(msg, n))
			}
		})
	}
}

func TestBuildBoundsTheReport(t *testing.T) {
	doc := func(key string) []byte {
		var sb strings.Builder
		sb.WriteString("{")
		for i := range 200 {
			fmt.Fprintf(&sb, `"%s%d": %d,`, key, i, 1000000+i)
		}
		sb.WriteString(`"LAST": "x"}`)
		return []byte(sb.String())
	}

	t.Run("problems", func(t *testing.T) {
		_, err := Build(doc("bad/"), nil, DefaultNames(), "default")
		assert.ErrorContains(t, err, "150 more problems not shown")
		assert.Assert(t, !strings.Contains(err.Error(), "1000000"))
	})
	t.Run("warnings", func(t *testing.T) {
		b, err := Build(doc("not-portable-"), nil, DefaultNames(), "default")
		assert.NilError(t, err)
		w := b.Warnings()
		assert.Equal(t, len(w), maxProblems+1)
		assert.Equal(t, w[maxProblems], "app secrets JSON: 150 more warnings not shown; resolve the ones above to see them")
		assert.Assert(t, !strings.Contains(strings.Join(w, "\n"), "1000000"))
		assert.Equal(t, b.Summaries()[0].Keys[0], "LAST", "every key is kept, warned or not")
		assert.Equal(t, len(b.Summaries()[0].Keys), 201)
	})
}

func TestBuildAcceptsValidInputs(t *testing.T) {
	creds := []string{
		"valid-creds-service-account.json",
		"valid-creds-external-account.json",
		"valid-creds-authorized-user.json",
		"valid-creds-impersonated.json",
	}
	for _, file := range creds {
		t.Run(strings.TrimSuffix(file, ".json"), func(t *testing.T) {
			doc := readTestdata(t, file)
			b, err := Build(readTestdata(t, "valid-app-env.json"), doc, DefaultNames(), "default")
			assert.NilError(t, err)
			assert.Equal(t, len(b.secrets), 2)
			got := b.secrets[1]
			assert.Equal(t, got.kind, GCPCreds)
			assert.Assert(t, bytes.Equal(got.data["creds.json"], doc), "creds must be stored byte for byte")
		})
	}

	t.Run("app env values are the decoded strings", func(t *testing.T) {
		b, err := Build(readTestdata(t, "valid-app-env.json"), nil, DefaultNames(), "default")
		assert.NilError(t, err)
		assert.Equal(t, len(b.secrets), 1)
		data := b.secrets[0].data
		assert.Equal(t, len(data), 8)
		assert.Equal(t, string(data["UNICODE"]), "नमस्ते é \"quoted\"")
		assert.Equal(t, string(data["EMPTY_IS_FINE"]), "")
		assert.DeepEqual(t, b.Summaries()[0].Keys, []string{
			"ADMIN_API_KEY", "CALLING_BACKEND_URL", "EMPTY_IS_FINE", "ENVIRONMENT", "OPENAI_API_KEY", "REDIS_URL", "UNICODE", "_LEADING_UNDERSCORE",
		})
	})

	t.Run("absent inputs make no secrets", func(t *testing.T) {
		b, err := Build(nil, nil, Names{}, "default")
		assert.NilError(t, err)
		assert.Assert(t, b.Empty())
		assert.Equal(t, b.Names(), Names{})
		assert.DeepEqual(t, b.Values(), map[string]any{})
	})

	t.Run("only creds", func(t *testing.T) {
		b, err := Build(nil, readTestdata(t, "valid-creds-service-account.json"), Names{GCPCreds: "creds"}, "prod")
		assert.NilError(t, err)
		assert.Equal(t, b.Names().AppEnv, "")
		assert.Assert(t, is.Regexp(`^creds-[0-9a-f]{10}$`, b.Names().GCPCreds))
		assert.DeepEqual(t, b.Values(), map[string]any{"secrets": map[string]any{"gcpCreds": b.Names().GCPCreds}})
		assert.Equal(t, b.Namespace(), "prod")
	})
}

func TestNamesFollowContent(t *testing.T) {
	build := func(t *testing.T, app, creds string) Names {
		t.Helper()
		var a, c []byte
		if app != "" {
			a = readTestdata(t, app)
		}
		if creds != "" {
			c = readTestdata(t, creds)
		}
		b, err := Build(a, c, DefaultNames(), "default")
		assert.NilError(t, err)
		return b.Names()
	}
	base := build(t, "valid-app-env.json", "valid-creds-service-account.json")

	// Pinned: changing the canonical form renames every Secret on the next
	// deploy. Update only on purpose.
	assert.Equal(t, base, Names{AppEnv: "dv-pipecat-app-secrets-b689c82eb5", GCPCreds: "dv-pipecat-gcp-creds-11bb8dc615"})

	t.Run("order and whitespace do not matter", func(t *testing.T) {
		assert.Equal(t, build(t, "valid-app-env-reordered.json", "").AppEnv, base.AppEnv)
	})
	t.Run("a changed value changes the name", func(t *testing.T) {
		assert.Assert(t, build(t, "valid-app-env-one-value-changed.json", "").AppEnv != base.AppEnv)
	})
	t.Run("the kind is part of the hash", func(t *testing.T) {
		data := map[string][]byte{"creds.json": []byte("{}")}
		assert.Assert(t, contentHash(AppEnv, data) != contentHash(GCPCreds, data))
	})
	t.Run("key and value boundaries are unambiguous", func(t *testing.T) {
		a := contentHash(AppEnv, map[string][]byte{"AB": []byte("C")})
		b := contentHash(AppEnv, map[string][]byte{"A": []byte("BC")})
		assert.Assert(t, a != b)
	})
	t.Run("creds bytes are hashed as given", func(t *testing.T) {
		assert.Assert(t, contentHash(GCPCreds, map[string][]byte{"creds.json": []byte(`{"a":1}`)}) !=
			contentHash(GCPCreds, map[string][]byte{"creds.json": []byte(`{"a": 1}`)}))
	})
}

func TestBundlePrintingHidesData(t *testing.T) {
	b, err := Build(readTestdata(t, "valid-app-env.json"), readTestdata(t, "valid-creds-authorized-user.json"), DefaultNames(), "default")
	assert.NilError(t, err)

	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("bundle", "b", b, "ptr", &b)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("bundle", "b", b)
	js, err := json.Marshal(b)
	assert.NilError(t, err)
	printed := map[string]string{
		"%v":    fmt.Sprintf("%v", b),
		"%+v":   fmt.Sprintf("%+v", b),
		"%#v":   fmt.Sprintf("%#v", b),
		"%s":    fmt.Sprintf("%s", b),
		"%q":    fmt.Sprintf("%q", b),
		"%x":    fmt.Sprintf("%x", b),
		"ptr":   fmt.Sprintf("%+v", &b),
		"slice": fmt.Sprintf("%+v", []Bundle{b}),
		"inner": fmt.Sprintf("%+v %#v", b.secrets, b.secrets[0]),
		"slog":  logs.String(),
		"json":  string(js),
	}
	for verb, out := range printed {
		t.Run(verb, func(t *testing.T) {
			assertNoLeak(t, out, "redis://", "sk-")
			assert.Assert(t, is.Contains(out, "dv-pipecat-app-secrets-"))
		})
	}
	assert.Equal(t, b.String(), "secrets.Bundle{namespace=default app-env=dv-pipecat-app-secrets-b689c82eb5 (8 keys) gcp-creds=dv-pipecat-gcp-creds-"+
		regexp.MustCompile(`gcp-creds-([0-9a-f]{10})`).FindStringSubmatch(b.String())[1]+" (1 key)}")
}

func TestRedactSyntax(t *testing.T) {
	tests := []struct{ in, want string }{
		{"invalid character 'Z' looking for beginning of value", "unexpected character looking for beginning of value"},
		{"invalid character ' ' in literal true (expecting 'e')", "unexpected character in literal true (expecting 'e')"},
		{`invalid character '\'' looking for beginning of value`, "unexpected character looking for beginning of value"},
		{`invalid character 'é' after object key`, "unexpected character after object key"},
		{"unexpected end of JSON input", "unexpected end of JSON input"},
		{`something quoting "a value"`, "syntax error"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			assert.Equal(t, redactSyntax(tc.in), tc.want)
		})
	}
}
