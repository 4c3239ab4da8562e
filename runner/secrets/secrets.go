// Package secrets turns the chatbot's two secret inputs, its environment as
// JSON and its Google credentials, into content-named, immutable Kubernetes
// Secrets, and prunes the versions no release uses (docs/secret-inputs.md).
// Nothing here prints, logs or returns a secret value.
package secrets

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Kind tells the two Secrets apart; it is also the value of the
// ringg-ci/secret label.
type Kind string

// The kinds of Secret a Bundle holds.
const (
	AppEnv   Kind = "app-env"
	GCPCreds Kind = "gcp-creds"
)

// Labels and annotations set on every Secret this package creates.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelName      = "app.kubernetes.io/name"
	LabelKind      = "ringg-ci/secret"
	AnnotationHash = "ringg-ci/content-sha256"
	// AnnotationAppliedAt is when a deploy last applied the Secret (RFC
	// 3339): a prune spares what was applied recently, and a prune that
	// listed the Secret before that apply fails its delete's precondition.
	AnnotationAppliedAt = "ringg-ci/applied-at"
	ManagedBy           = "ringg-ci"
	AppName             = "dv-pipecat"
	FieldManager        = "ringg-ci"
	DefaultAppEnv       = "dv-pipecat-app-secrets"
	DefaultGCPCreds     = "dv-pipecat-gcp-creds"
)

// credsKey is the data key of the credentials Secret; the chart mounts it at
// /app/creds.json with subPath.
const credsKey = "creds.json"

// hashChars is how much of the content hash goes into a name.
const hashChars = 10

// Names are Secret object names: the chart's secrets.appEnv and
// secrets.gcpCreds. An empty field means "not set".
type Names struct{ AppEnv, GCPCreds string }

// DefaultNames are the base names of the production setup.
func DefaultNames() Names { return Names{AppEnv: DefaultAppEnv, GCPCreds: DefaultGCPCreds} }

// secret is one validated Secret ready to apply. Its data never leaves the
// package except towards the API server.
type secret struct {
	kind Kind
	name string
	hash string // full hex SHA-256 of the canonical content
	data map[string][]byte
}

// keys returns the sorted data keys (variable names, or creds.json).
func (s *secret) keys() []string {
	ks := make([]string, 0, len(s.data))
	for k := range s.data {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Format prints kind and name only, in case a secret is ever formatted.
func (s *secret) Format(f fmt.State, _ rune) { _, _ = fmt.Fprintf(f, "%s=%s", s.kind, s.name) }

// Bundle holds the validated Secrets of one deploy. Printing it in any way
// (%v, %+v, %#v, %s, slog) shows names and key counts, never data.
type Bundle struct {
	namespace string
	secrets   []*secret // AppEnv first, then GCPCreds; absent inputs are left out
	warnings  []string
}

// Build validates both inputs and prepares their Secrets for namespace.
// A nil input is "not provided" and yields no Secret. base gives the name
// prefixes (DefaultNames() in production); a field of base may be empty only
// when its input is nil. Every problem of both inputs is reported at once,
// joined; each wraps ErrInvalid. What is accepted but deserves a look is in
// the Bundle's Warnings.
func Build(appEnvJSON, credsJSON []byte, base Names, namespace string) (Bundle, error) {
	var errs []error
	if msgs := validation.IsDNS1123Label(namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("%w: namespace %q: %s; give the release namespace", ErrInvalid, namespace, strings.Join(msgs, "; ")))
	}
	b := Bundle{namespace: namespace}
	if appEnvJSON != nil {
		errs = append(errs, checkBase("app secrets", base.AppEnv)...)
		env, warns, perrs := parseAppEnv(appEnvJSON)
		errs = append(errs, perrs...)
		if len(perrs) == 0 {
			b.secrets = append(b.secrets, newSecret(AppEnv, base.AppEnv, env))
			b.warnings = append(b.warnings, warns...)
		}
	}
	if credsJSON != nil {
		errs = append(errs, checkBase("GCP credentials", base.GCPCreds)...)
		perrs := parseCreds(credsJSON)
		errs = append(errs, perrs...)
		if len(perrs) == 0 {
			data := map[string][]byte{credsKey: slices.Clone(credsJSON)}
			b.secrets = append(b.secrets, newSecret(GCPCreds, base.GCPCreds, data))
		}
	}
	if len(errs) > 0 {
		return Bundle{}, fmt.Errorf("validate secrets: %s:\n%w", count(len(errs), "problem"), errors.Join(errs...))
	}
	return b, nil
}

// checkBase checks that a base name leaves a valid Secret name once the hash
// suffix is added.
func checkBase(what, base string) []error {
	if base == "" {
		return []error{fmt.Errorf("%w: %s were given but their base Secret name is empty; set it (default %q)", ErrInvalid, what, map[string]string{"app secrets": DefaultAppEnv, "GCP credentials": DefaultGCPCreds}[what])}
	}
	full := base + "-" + strings.Repeat("0", hashChars)
	if msgs := validation.IsDNS1123Subdomain(full); len(msgs) > 0 {
		return []error{fmt.Errorf("%w: base Secret name %q for %s: %s; use lowercase letters, digits and '-'", ErrInvalid, base, what, strings.Join(msgs, "; "))}
	}
	return nil
}

// newSecret names a Secret after its content.
func newSecret(kind Kind, base string, data map[string][]byte) *secret {
	h := contentHash(kind, data)
	return &secret{kind: kind, name: base + "-" + h[:hashChars], hash: h, data: data}
}

// contentHash is the hex SHA-256 of the kind and data. encoding/json sorts map
// keys and base64-encodes []byte, so the encoding is canonical and
// unambiguous; the kind keeps an app Secret and a credentials Secret with
// equal data apart.
func contentHash(kind Kind, data map[string][]byte) string {
	canon, err := json.Marshal(struct {
		Kind Kind              `json:"kind"`
		Data map[string][]byte `json:"data"`
	}{kind, data})
	if err != nil { // a string-keyed map of byte slices always encodes
		panic("secrets: encode canonical content: " + err.Error())
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:])
}

// Namespace is where the Secrets go.
func (b Bundle) Namespace() string { return b.namespace }

// Warnings are what Build accepted but a person should look at (a key that
// is not a portable variable name, a duplicate key, an empty object, a
// number whose text differs from the old pipeline's), one message each, in
// document order. They name keys, never values; log them.
func (b Bundle) Warnings() []string { return slices.Clone(b.warnings) }

// Empty reports whether the bundle holds no Secret (both inputs absent).
func (b Bundle) Empty() bool { return len(b.secrets) == 0 }

// Names returns the Secret names; a field is empty when its input was absent.
func (b Bundle) Names() Names {
	var n Names
	for _, s := range b.secrets {
		switch s.kind {
		case AppEnv:
			n.AppEnv = s.name
		case GCPCreds:
			n.GCPCreds = s.name
		}
	}
	return n
}

// Values returns the chart values that point the release at these Secrets:
// {"secrets": {"appEnv": name, "gcpCreds": name}}, names only, absent inputs
// left out. It is empty when the bundle is.
func (b Bundle) Values() map[string]any {
	if b.Empty() {
		return map[string]any{}
	}
	names := b.Names()
	v := map[string]any{}
	if names.AppEnv != "" {
		v["appEnv"] = names.AppEnv
	}
	if names.GCPCreds != "" {
		v["gcpCreds"] = names.GCPCreds
	}
	return map[string]any{"secrets": v}
}

// Summary describes one Secret of a bundle without its data.
type Summary struct {
	Kind Kind   `json:"kind"`
	Name string `json:"name"`
	// Keys are the data keys: variable names, or creds.json.
	Keys []string `json:"keys"`
}

// Summaries describe the bundle's Secrets for plans, without data.
func (b Bundle) Summaries() []Summary {
	out := make([]Summary, 0, len(b.secrets))
	for _, s := range b.secrets {
		out = append(out, Summary{Kind: s.kind, Name: s.name, Keys: s.keys()})
	}
	return out
}

// String shows namespace, names and key counts.
func (b Bundle) String() string {
	var sb strings.Builder
	sb.WriteString("secrets.Bundle{namespace=")
	sb.WriteString(b.namespace)
	for _, s := range b.secrets {
		fmt.Fprintf(&sb, " %s=%s (%s)", s.kind, s.name, count(len(s.data), "key"))
	}
	sb.WriteString("}")
	return sb.String()
}

// GoString is String, so %#v hides data too.
func (b Bundle) GoString() string { return b.String() }

// Format makes every fmt verb print String, so no verb reaches the data.
func (b Bundle) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, b.String()) }

// LogValue makes slog print names only.
func (b Bundle) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("namespace", b.namespace)}
	for _, s := range b.secrets {
		attrs = append(attrs, slog.String(string(s.kind), s.name))
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON writes the summaries, so encoding a plan never writes data.
func (b Bundle) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Namespace string    `json:"namespace"`
		Secrets   []Summary `json:"secrets"`
	}{b.namespace, b.Summaries()})
}

// count writes "1 key", "2 keys".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
