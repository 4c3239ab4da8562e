// Package scrub finds the values inside a secret document that must be
// registered with the Dagger engine for scrubbing. The engine replaces a
// secret's value with *** wherever an exec prints it, but only the whole
// value: a field of a JSON document (an API key inside the app's environment
// JSON) is hidden only if it is registered as a secret of its own.
package scrub

import (
	"bufio"
	"cmp"
	"encoding/json"
	"slices"
	"strings"
)

// MinLength is the shortest value registered. Shorter values are not worth
// hiding (ports, flags, "on") and scrubbing them would mangle every log line
// that happens to contain them.
const MinLength = 4

// JSONValues returns every string and number of a JSON document, at any
// depth, as the text the application sees (a number as its JSON text), that
// is at least MinLength long, longest first, without repeats. Booleans and
// null are no secrets. A document that is not JSON yields the document
// itself, so it is still scrubbed whole.
func JSONValues(doc string) []string {
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return values(doc)
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch t := v.(type) {
		case map[string]any:
			for _, e := range t {
				walk(e)
			}
		case []any:
			for _, e := range t {
				walk(e)
			}
		case string:
			out = append(out, t)
			// A value written with escapes (\n in a private key) is printed
			// by some tools as written: register that spelling too.
			if b, err := json.Marshal(t); err == nil {
				out = append(out, string(b[1:len(b)-1]))
			}
		case json.Number:
			out = append(out, t.String())
		}
	}
	walk(v)
	return values(out...)
}

// kubeconfigKeys are the kubeconfig fields that hold credentials.
var kubeconfigKeys = []string{"client-key-data", "client-certificate-data", "token", "password", "username", "client-key", "id-token", "refresh-token"}

// KubeconfigValues returns the credential fields of a kubeconfig (keys,
// tokens, passwords), read line by line so no YAML parser is needed.
func KubeconfigValues(doc string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(doc))
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		key, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok || !slices.Contains(kubeconfigKeys, strings.TrimSpace(strings.TrimPrefix(key, "- "))) {
			continue
		}
		value = strings.Trim(strings.TrimSpace(value), `"'`)
		out = append(out, value)
	}
	return values(out...)
}

// values keeps the candidates worth registering, longest first (so the
// engine replaces a whole value before any part of it), values of one
// length in byte order (the same input gives the same list), without repeats.
func values(candidates ...string) []string {
	var out []string
	for _, c := range candidates {
		c = strings.TrimSpace(c)
		if len(c) >= MinLength && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	return out
}
