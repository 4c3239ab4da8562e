// Package pipeline turns targets and a run's inputs into plans, plain data
// for each verb (deploy and plan, promote, rollback, status, takeover), and
// the rollout deadlines. Building a plan does no I/O and reports every
// problem at once; runner/release runs plans.
package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ringg/ringg-ci/ci/targets"
)

// MaxHistory is how many revisions of a release Helm keeps: each revision is
// a Secret holding the whole manifest, and the SDK's default keeps them all.
const MaxHistory = 10

// DefaultHolder names the lock holder when a run does not name itself.
const DefaultHolder = "ringg-ci"

// Image is a container image pinned by digest: what a release runs never
// depends on a tag that can be pushed again.
type Image struct {
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
}

// String returns the image reference repository@digest.
func (i Image) String() string { return i.Repository + "@" + i.Digest }

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// resolve applies the overrides to a target a lookup found and validates it,
// adding every problem to errs; found is false when the lookup failed.
func resolve(t targets.Target, lookup error, o targets.Overrides, errs *[]error) (_ targets.Target, found bool) {
	if lookup != nil {
		*errs = append(*errs, lookup)
		return t, false
	}
	t = t.With(o)
	if err := t.Validate(); err != nil {
		*errs = append(*errs, err)
	}
	return t, true
}

// PlaceholderDigest stands for an image not built yet, so a plan or render
// can be checked before the slow build and push.
const PlaceholderDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// ValidateDigest checks that d is a sha256 digest as registries print it.
func ValidateDigest(d string) error {
	if !digestRE.MatchString(d) {
		return fmt.Errorf("digest %q is not sha256: followed by 64 lowercase hex digits: pass the digest the registry printed on push", d)
	}
	return nil
}

// ParseImage parses repository@sha256:… or a bare sha256:… digest, in which
// case the repository is repo. A reference with a tag only is refused: a tag
// can be pushed again, a digest cannot.
func ParseImage(ref, repo string) (Image, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return Image{}, errors.New("image is empty: pass repository@sha256:<digest> as printed by publish")
	}
	if strings.HasPrefix(ref, "sha256:") {
		if err := ValidateDigest(ref); err != nil {
			return Image{}, fmt.Errorf("image %q: %w", ref, err)
		}
		return Image{Repository: repo, Digest: ref}, nil
	}
	at := strings.LastIndex(ref, "@")
	if at < 0 {
		return Image{}, fmt.Errorf("image %q has no digest: pass repository@sha256:<digest>, never a tag", ref)
	}
	name, digest := ref[:at], ref[at+1:]
	// A reference may carry both a tag and a digest; the digest wins, the tag is
	// dropped so nothing downstream reads it.
	if last := name[strings.LastIndex(name, "/")+1:]; strings.Contains(last, ":") {
		name = name[:len(name)-len(last)+strings.Index(last, ":")]
	}
	if err := ValidateDigest(digest); err != nil {
		return Image{}, fmt.Errorf("image %q: %w", ref, err)
	}
	if name == "" {
		return Image{}, fmt.Errorf("image %q has no repository: pass repository@sha256:<digest>", ref)
	}
	return Image{Repository: name, Digest: digest}, nil
}

// SecretNames are the names of the content-named Secrets a release reads:
// the app's environment and the GCP credentials file.
type SecretNames struct {
	AppEnv   string `json:"appEnv"`
	GCPCreds string `json:"gcpCreds"`
}

// IsZero reports whether no name is set.
func (n SecretNames) IsZero() bool { return n == SecretNames{} }

var dnsSubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

// Validate checks the names that are set are valid Secret names; at least
// one must be set.
func (n SecretNames) Validate() error {
	if n.IsZero() {
		return errors.New("no secret name given: give the names of the applied bundle")
	}
	var errs []error
	for _, f := range []struct{ key, v string }{{"secrets.appEnv", n.AppEnv}, {"secrets.gcpCreds", n.GCPCreds}} {
		if f.v != "" && (len(f.v) > 253 || !dnsSubdomainRE.MatchString(f.v)) {
			errs = append(errs, fmt.Errorf("%s %q is not a valid Secret name (lowercase letters, digits, '-', '.')", f.key, f.v))
		}
	}
	return errors.Join(errs...)
}

// Over returns n with base's names where n has none: a bundle may renew one
// Secret and keep the other.
func (n SecretNames) Over(base SecretNames) SecretNames {
	if n.AppEnv == "" {
		n.AppEnv = base.AppEnv
	}
	if n.GCPCreds == "" {
		n.GCPCreds = base.GCPCreds
	}
	return n
}

// SecretsSource says where a release's Secret names come from.
type SecretsSource string

// The sources of Secret names.
const (
	// SecretsNew: the deploy applies a new bundle and uses its names (a name
	// the bundle lacks stays as the release has it).
	SecretsNew SecretsSource = "new"
	// SecretsCurrent: the deploy keeps the names the release has now, or the
	// chart's defaults for a first install.
	SecretsCurrent SecretsSource = "current"
)

// ComputedValues are the values the pipeline adds on top of the chart's
// values.yaml and the target's values files: the image digest and the Secret
// names. Nothing else is ever set outside the files, so no verb can drop a
// value another one set. An empty name leaves the chart's default.
func ComputedValues(img Image, names SecretNames) map[string]any {
	vals := map[string]any{
		"image": map[string]any{"repository": img.Repository, "digest": img.Digest},
	}
	sec := map[string]any{}
	if names.AppEnv != "" {
		sec["appEnv"] = names.AppEnv
	}
	if names.GCPCreds != "" {
		sec["gcpCreds"] = names.GCPCreds
	}
	if len(sec) > 0 {
		vals["secrets"] = sec
	}
	return vals
}

func durationText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// MarshalWithDurations encodes v as JSON with the named top-level durations
// written as text ("9m30s") rather than nanoseconds; zero ones are left out.
func MarshalWithDurations(v any, durations map[string]time.Duration) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, d := range durations {
		if t := durationText(d); t != "" {
			m[k] = t
		} else {
			delete(m, k)
		}
	}
	return json.Marshal(m)
}

// MaxHolder is the longest lock holder kept, in bytes.
const MaxHolder = 128

// shortHolder makes the lock holder one short line. The holder only tells a
// concurrent run who holds the lock, so it is shortened, never refused: a
// long branch or actor name must not block a deploy. The middle goes, so
// both the run id at the start and the actor at the end survive.
func shortHolder(h string) string {
	h = strings.Join(strings.Fields(h), " ")
	if h == "" {
		return DefaultHolder
	}
	if len(h) <= MaxHolder {
		return h
	}
	const ellipsis = "…"
	head := (MaxHolder - len(ellipsis)) * 2 / 3
	tail := MaxHolder - len(ellipsis) - head
	for !utf8.RuneStart(h[head]) {
		head--
	}
	start := len(h) - tail
	for !utf8.RuneStart(h[start]) {
		start++
	}
	return h[:head] + ellipsis + h[start:]
}

func checkChartDir(dir string) error {
	if strings.TrimSpace(dir) == "" {
		return errors.New("chart directory is empty: pass the path of deploy/chart")
	}
	return nil
}

func checkTimeout(name string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%s %s is negative: pass 0 for the default or a positive duration", name, d)
	}
	return nil
}
