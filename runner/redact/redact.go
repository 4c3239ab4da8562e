// Package redact hides, in what the runner prints of a pod (its logs, its
// health answers, a failed rollout's explanation), the values of the Secrets
// the pod loads, chosen as the module's face chooses what to scrub
// (ci/scrub): an app that prints a secret must not have it printed again by
// ringg-ci, whether it runs inside Dagger or not.
package redact

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ringg/ringg-ci/ci/scrub"
)

// Hidden is what replaces a secret value.
const Hidden = "***"

// Redactor replaces secret values in text; the zero Redactor hides nothing.
type Redactor struct{ r *strings.Replacer }

// Text returns s with every secret value replaced by Hidden.
func (r Redactor) Text(s string) string {
	if r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// Loaded is a Secret's data as a pod loads it: as environment variables
// (envFrom, env from a key) or as files of a volume.
type Loaded struct {
	Data map[string]string
	Env  bool
}

// For reads the Secrets the pod specs load and returns their Redactor. A
// Secret that is gone hides nothing; one that cannot be read is an error:
// what is printed could not be checked.
func For(ctx context.Context, c kubernetes.Interface, namespace string, specs ...*corev1.PodSpec) (Redactor, error) {
	refs := map[string]bool{} // name → loaded as environment
	for _, s := range specs {
		for name, env := range references(s) {
			refs[name] = refs[name] || env
		}
	}
	var loaded []Loaded
	for _, name := range slices.Sorted(maps.Keys(refs)) {
		s, err := c.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return Redactor{}, fmt.Errorf("read secret %s, which the pods load, to hide its values from the output: %w; grant get on secrets in %s", name, err, namespace)
		}
		data := map[string]string{}
		for k, v := range s.Data {
			data[k] = string(v)
		}
		for k, v := range s.StringData {
			data[k] = v
		}
		loaded = append(loaded, Loaded{Data: data, Env: refs[name]})
	}
	return Of(loaded...), nil
}

// Of returns the Redactor of Secrets' data: what ci/scrub calls secret in
// an app's environment, and the credential fields of a mounted document.
func Of(loaded ...Loaded) Redactor {
	var vals []string
	for _, l := range loaded {
		if l.Env {
			vals = append(vals, scrub.Values(l.Data)...)
			continue
		}
		for _, v := range l.Data {
			vals = append(vals, scrub.CredentialValues(v)...)
		}
	}
	slices.SortFunc(vals, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	vals = slices.Compact(vals)
	if len(vals) == 0 {
		return Redactor{}
	}
	pairs := make([]string, 0, 2*len(vals))
	for _, v := range vals {
		pairs = append(pairs, v, Hidden)
	}
	return Redactor{strings.NewReplacer(pairs...)}
}

// references lists the Secrets a pod spec loads, each with whether it is
// loaded as environment variables.
func references(spec *corev1.PodSpec) map[string]bool {
	out := map[string]bool{}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		for _, ef := range c.EnvFrom {
			if ef.SecretRef != nil {
				out[ef.SecretRef.Name] = true
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				out[e.ValueFrom.SecretKeyRef.Name] = true
			}
		}
	}
	for _, v := range spec.Volumes {
		if v.Secret != nil && !out[v.Secret.SecretName] {
			out[v.Secret.SecretName] = false
		}
	}
	return out
}
