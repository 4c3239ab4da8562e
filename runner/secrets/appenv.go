package secrets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// parseAppEnv validates an app secrets document and returns the Secret data
// and the warnings. The data is what the pipeline this one replaces gave
// kubectl: it ran `jq -r 'to_entries[] | "\(.key)=\(.value)"'` and passed
// each line as --from-literal, so strings stay as they are, numbers and
// booleans become their JSON text and the last of duplicate keys wins. It
// walks the token stream itself because encoding/json hides duplicates.
func parseAppEnv(doc []byte) (map[string][]byte, []string, []error) {
	ps := &problems{input: appEnvInput}
	if !checkDocument(ps, doc) || !checkSyntax(ps, doc) {
		return nil, nil, ps.errs()
	}
	// The document is valid JSON from here on, so the decoder cannot fail;
	// errors are still handled, without detail.
	dec := json.NewDecoder(bytes.NewReader(doc))
	tok, err := dec.Token()
	if err != nil {
		ps.doc("could not be read as JSON; check quotes and commas")
		return nil, nil, ps.errs()
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		ps.doc("must be a JSON object of environment variables such as {\"REDIS_URL\": \"redis://…\"}, got %s", tokenKind(tok))
		return nil, nil, ps.errs()
	}

	type member struct {
		raw   json.RawMessage // the last value given
		count int
	}
	members := map[string]*member{}
	var order []string // keys by first appearance, so reports follow the document
	for dec.More() {
		key, raw, err := nextMember(dec)
		if err != nil {
			ps.doc("could not be read as JSON; check quotes and commas")
			return nil, nil, ps.errs()
		}
		m, ok := members[key]
		if !ok {
			m = &member{}
			members[key] = m
			order = append(order, key)
		}
		m.raw, m.count = raw, m.count+1
	}

	env := make(map[string][]byte, len(order))
	size := 0
	for _, key := range order {
		m := members[key]
		checkKey(ps, key)
		if m.count > 1 {
			ps.warnKey(key, "appears %d times; the last value is used, as the old jq-based pipeline did; remove the others", m.count)
		}
		if v, ok := envValue(ps, key, m.raw); ok {
			env[key] = v
			size += len(key) + len(v)
		}
	}
	if len(order) == 0 {
		ps.warnDoc("is an empty object, so the app Secret holds no variables (as the old pipeline's empty Secret did); leave the input unset instead to keep the deployed Secret")
	}
	if size > corev1.MaxSecretSize {
		ps.doc("holds %d bytes of keys and values, over the Kubernetes Secret limit of %d bytes; move large values elsewhere", size, corev1.MaxSecretSize)
	}
	if len(ps.list) > 0 {
		return nil, nil, ps.errs()
	}
	return env, ps.warnings(), nil
}

// checkKey refuses a key that Kubernetes refuses in a Secret (kubectl
// create secret refused it too) and warns about one that is not a portable
// environment variable name. Since Kubernetes 1.34 the kubelet passes any
// valid Secret key through envFrom, so such a key does reach the app.
func checkKey(ps *problems, key string) {
	msgs := validation.IsConfigMapKey(key)
	if len(msgs) == 0 {
		if !envName.MatchString(key) {
			ps.warnKey(key, "is not a portable environment variable name (letters, digits and '_', not starting with a digit): "+
				"Kubernetes 1.34 and later pass it to the app through envFrom (older clusters may skip it), "+
				"but shells and some libraries cannot read it; rename it if the app does not see it")
		}
		return
	}
	if key == "" {
		ps.key(key, "is empty, which Kubernetes does not allow as a Secret key; name the variable or remove it")
		return
	}
	// IsConfigMapKey decides; the reasons are spelled out here so that a
	// person sees which character or rule is at fault.
	var why, fix []string
	if i := strings.IndexFunc(key, func(r rune) bool { return !isKeyChar(r) }); i >= 0 {
		r, _ := utf8.DecodeRuneInString(key[i:])
		why = append(why, fmt.Sprintf("it holds %q", r))
	}
	if key == "." || key == ".." || strings.HasPrefix(key, "..") {
		why = append(why, "'.', '..' and a leading '..' are reserved")
	}
	if len(why) > 0 {
		fix = append(fix, "rename it with letters, digits and '_' only (Kubernetes also allows '-' and '.')")
	}
	if n := len(key); n > validation.DNS1123SubdomainMaxLength {
		why = append(why, fmt.Sprintf("it is %d bytes long, over the limit of %d", n, validation.DNS1123SubdomainMaxLength))
		fix = append(fix, fmt.Sprintf("shorten it to %d bytes or fewer", validation.DNS1123SubdomainMaxLength))
	}
	if len(why) == 0 { // a rule added to IsConfigMapKey after this was written
		why, fix = msgs, []string{"rename it with letters, digits and '_' only"}
	}
	ps.key(key, "is not a valid Kubernetes Secret key (%s); %s", strings.Join(why, "; "), strings.Join(fix, " and "))
}

// isKeyChar reports whether r may appear in a Secret key: [-._a-zA-Z0-9].
func isKeyChar(r rune) bool {
	return r == '-' || r == '.' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
}

// envValue returns the text a value becomes in the Secret, or false when the
// value cannot be an environment variable (the problem is recorded).
func envValue(ps *problems, key string, raw json.RawMessage) ([]byte, bool) {
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			ps.key(key, "value is not a valid JSON string; fix its escaping")
			return nil, false
		}
		return []byte(s), true
	case 't', 'f': // true or false, as jq wrote them
		return []byte(string(raw)), true
	case '{':
		ps.key(key, "value is a nested object; environment variables are flat strings, so flatten it or encode it as a JSON string")
	case '[':
		ps.key(key, "value is an array; environment variables are strings, so encode it as one string")
	case 'n':
		ps.key(key, "value is null; give a string (\"\" for empty) or remove the key")
	default: // a number: as the old pipeline's jq 1.7 wrote it, so the app reads what it read before
		jq, ok := jqNumberText(string(raw))
		switch {
		case !ok:
			ps.warnKey(key, "is a number jq 1.7 cannot represent; stored exactly as written; quote it to say so")
			return []byte(string(raw)), true
		case jq != string(raw):
			ps.warnKey(key, "is a number that the old pipeline's jq 1.7 rewrote (12e-1 became 1.2, 1e3 became 1E+3); "+
				"stored as jq wrote it, as before; quote it to store it as written")
		}
		return []byte(jq), true
	}
	return nil, false
}

// decNumber's exponent limits, which jq 1.7 parses number literals with.
const decMaxExponent = 999_999_999

// jqNumberText is how jq 1.7 writes a JSON number literal in string
// interpolation ("\(.value)"): decNumber's to-scientific-string of the
// literal as parsed. It keeps trailing zeros (1.50) but moves the exponent
// (4.2e1 becomes 42, 1e3 becomes 1E+3, 1e-7 becomes 1E-7). ok is false for
// exponents beyond decNumber's range, which jq turns into doubles. lit must
// be a valid JSON number.
func jqNumberText(lit string) (string, bool) {
	neg := strings.HasPrefix(lit, "-")
	lit = strings.TrimPrefix(lit, "-")
	exp := 0
	if i := strings.IndexAny(lit, "eE"); i >= 0 {
		e, err := strconv.Atoi(lit[i+1:])
		if err != nil || e > 2*decMaxExponent || e < -2*decMaxExponent {
			return "", false
		}
		exp, lit = e, lit[:i]
	}
	whole, frac, _ := strings.Cut(lit, ".")
	digits := strings.TrimLeft(whole+frac, "0")
	if digits == "" {
		digits = "0"
	}
	exp -= len(frac)
	adjusted := exp + len(digits) - 1
	if adjusted > decMaxExponent || adjusted < -decMaxExponent {
		return "", false
	}

	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	switch point := len(digits) + exp; {
	case exp > 0 || adjusted < -6: // scientific: d.dddE±n
		b.WriteString(digits[:1])
		if len(digits) > 1 {
			b.WriteString("." + digits[1:])
		}
		b.WriteString("E")
		if adjusted >= 0 {
			b.WriteString("+")
		}
		b.WriteString(strconv.Itoa(adjusted))
	case exp == 0:
		b.WriteString(digits)
	case point > 0:
		b.WriteString(digits[:point] + "." + digits[point:])
	default:
		b.WriteString("0." + strings.Repeat("0", -point) + digits)
	}
	return b.String(), true
}
