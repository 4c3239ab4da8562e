package codegen

import "strings"

// Camel converts a module or type name to the CamelCase Dagger's Go codegen
// compares object names in: "ringg-ci" → "RinggCi".
func Camel(s string) string { return camel(s, true) }

// LowerCamel converts a Go parameter name to the name of the local variable
// the generated dispatcher declares for it: "dry_run" → "dryRun",
// "credsJSON" → "credsJson", "JSON" → "json".
//
// The rules are those of github.com/iancoleman/strcase v0.3.0, which the
// codegen uses, with no acronyms configured: ASCII letters and digits are
// kept, '_', ' ', '-' and '.' start a new word, a digit also does, a capital
// right after a capital is lowered, and every other byte is dropped.
func LowerCamel(s string) string { return camel(s, false) }

func camel(s string, upperFirst bool) string {
	s = strings.TrimSpace(s)
	var b strings.Builder
	upperNext := upperFirst
	prevUpper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		upper, lower := isUpper(c), isLower(c)
		switch {
		case upperNext:
			c = toUpper(c)
		case i == 0:
			c = toLower(c)
		case prevUpper && upper:
			c = toLower(c)
		}
		prevUpper = upper
		switch {
		case upper || lower:
			b.WriteByte(c)
			upperNext = false
		case c >= '0' && c <= '9':
			b.WriteByte(c)
			upperNext = true
		default:
			upperNext = c == '_' || c == ' ' || c == '-' || c == '.'
		}
	}
	return b.String()
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }

func toUpper(c byte) byte {
	if isLower(c) {
		return c - 'a' + 'A'
	}
	return c
}

func toLower(c byte) byte {
	if isUpper(c) {
		return c - 'A' + 'a'
	}
	return c
}
