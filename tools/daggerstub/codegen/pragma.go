package codegen

import (
	"encoding/json"
	"strings"
)

// Pragmas splits a comment into its pragmas ("+optional", "+default=...",
// "+cache=\"never\"", …) and the remaining text, the help Dagger shows.
//
// Like the codegen (parsePragmaComment in modules.go), a value is JSON when
// it parses as JSON, possibly over several lines, and otherwise the rest of
// the line; a pragma without "=" has the value nil. Unlike the codegen, which
// finds a "+word" followed by "=" or a line end anywhere in the text, only a
// line that starts with "+" holds a pragma here.
func Pragmas(comment string) (map[string]any, string) {
	pragmas := map[string]any{}
	var rest []string
	lines := strings.SplitAfter(comment, "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(line, "+") {
			rest = append(rest, lines[i])
			continue
		}
		key, value, hasValue := strings.Cut(strings.TrimSpace(line[1:]), "=")
		key = strings.TrimSpace(key)
		if !hasValue {
			pragmas[key] = nil
			continue
		}
		v, consumed := pragmaValue(strings.TrimLeft(value, " \t"), lines[i+1:])
		pragmas[key] = v
		i += consumed
	}
	return pragmas, strings.Join(rest, "")
}

// pragmaValue decodes the value that starts the line and reports how many of
// the following lines it used.
func pragmaValue(first string, more []string) (any, int) {
	text := first + "\n" + strings.Join(more, "")
	dec := json.NewDecoder(strings.NewReader(text))
	var v any
	if err := dec.Decode(&v); err == nil {
		return v, strings.Count(text[:dec.InputOffset()], "\n")
	}
	if first == "" {
		return nil, 0
	}
	return first, 0
}
