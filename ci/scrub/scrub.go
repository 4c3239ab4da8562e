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
	"regexp"
	"slices"
	"strings"
)

// MinLength is the shortest value registered. Shorter values are not worth
// hiding (ports, flags, "on") and scrubbing them would mangle every log line
// that happens to contain them.
const MinLength = 4

// The values of a secret document that are registered for scrubbing
// depend on the document (docs/security.md, "What is scrubbed where"):
//
//   - the application's environment (AppEnvValues): every value, except one
//     that cannot be a secret and would mangle every line it appears in: a
//     number (a port, 8765), a boolean, or a plain word of lower-case letters
//     (production) under a key that does not name a secret;
//   - Google credentials (CredentialValues): the secret fields only
//     (private_key, client_secret, refresh_token, tokens, passwords, a PEM
//     block anywhere), never project_id, client_email or the token URI;
//   - a kubeconfig (KubeconfigValues): its credential fields.
//
// Each value is registered as written and, when JSON escapes it (\n in a
// private key), as escaped, since some tools print it that way.

// secretKey matches a key that names a secret, whatever its value looks like.
var secretKey = regexp.MustCompile(`(?i)(key|token|secret|passw|pwd|credential|auth|dsn|private|cookie|session|signature)`)

// plainWord is a value that cannot be a secret on its own: lower-case
// letters, in words joined by - or _ (production, staging, info). A digit
// makes a value a candidate (an id, a region such as asia-south1 is then
// hidden too, a price paid for not telling a random string from a name).
var plainWord = regexp.MustCompile(`^[a-z]+([-_][a-z]+)*$`)

// number is a value that is a number (a port, a count, a timeout).
var number = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// AppEnvValues returns the values of an application environment JSON
// document (variable name → value) to register, longest first. A document
// that is not JSON yields the document itself, so it is still scrubbed
// whole.
func AppEnvValues(doc string) []string {
	var out []string
	ok := walkJSON(doc, func(key, value string, _ bool) {
		if secretKey.MatchString(key) || (!number.MatchString(value) && !plainWord.MatchString(value) && value != "true" && value != "false") {
			out = append(out, spellings(value)...)
		}
	})
	if !ok {
		return values(doc)
	}
	return values(out...)
}

// credentialKey matches the fields of a Google credentials document that
// hold a secret; the token endpoints (token_uri, token_url) do not.
var credentialKey = regexp.MustCompile(`(?i)^(private_key|client_secret|refresh_token|.*token|.*secret.*|.*password.*)$`)

// CredentialValues returns the secret fields of a Google credentials JSON
// document (service account key, authorized_user, external_account) to
// register, longest first: a key naming a secret, or a PEM block under any
// key. A document that is not JSON yields the document itself.
func CredentialValues(doc string) []string {
	var out []string
	ok := walkJSON(doc, func(key, value string, _ bool) {
		if credentialKey.MatchString(key) || strings.Contains(value, "-----BEGIN") {
			out = append(out, spellings(value)...)
		}
	})
	if !ok {
		return values(doc)
	}
	return values(out...)
}

// walkJSON calls f for every string or number of a JSON document, at any
// depth, with the key it sits under (that of the enclosing object for an
// array element) and whether it is a number; false when the document is not
// JSON.
func walkJSON(doc string, f func(key, value string, num bool)) bool {
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return false
	}
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, e := range t {
				walk(k, e)
			}
		case []any:
			for _, e := range t {
				walk(key, e)
			}
		case string:
			f(key, t, false)
		case json.Number:
			f(key, t.String(), true)
		}
	}
	walk("", v)
	return true
}

// spellings are a value as written and as JSON escapes it.
func spellings(v string) []string {
	out := []string{v}
	if b, err := json.Marshal(v); err == nil {
		if esc := string(b[1 : len(b)-1]); esc != v {
			out = append(out, esc)
		}
	}
	return out
}

// Values returns, for a map of variable names to values (a Secret's data as
// the pods see it), what AppEnvValues returns for the same document.
func Values(env map[string]string) []string {
	var out []string
	for k, v := range env {
		if secretKey.MatchString(k) || (!number.MatchString(v) && !plainWord.MatchString(v) && v != "true" && v != "false") {
			out = append(out, spellings(v)...)
		}
	}
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
