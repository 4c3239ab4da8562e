package ops

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ringg/ringg-ci/ci/scrub"
)

// redactor hides, in what logs and health print, the values of the Secrets
// the pods read, chosen as the module's face chooses what to scrub
// (ci/scrub): an app that logs a secret must not have it printed again by
// ringg-ci, whether it runs inside Dagger or not.
type redactor struct{ r *strings.Replacer }

// Redacted is what replaces a secret value.
const Redacted = "***"

// redactorFor reads the Secrets the pods reference (as environment or as a
// mounted file) and returns their redactor. A Secret that is gone hides
// nothing; one that cannot be read is an error: the output would not be
// checked.
func redactorFor(ctx context.Context, c kubernetes.Interface, namespace string, pods []corev1.Pod) (redactor, error) {
	type ref struct {
		name string
		env  bool
	}
	var refs []ref
	for _, p := range pods {
		for _, ctr := range p.Spec.Containers {
			for _, ef := range ctr.EnvFrom {
				if ef.SecretRef != nil {
					refs = append(refs, ref{ef.SecretRef.Name, true})
				}
			}
		}
		for _, v := range p.Spec.Volumes {
			if v.Secret != nil {
				refs = append(refs, ref{v.Secret.SecretName, false})
			}
		}
	}
	slices.SortFunc(refs, func(a, b ref) int { return strings.Compare(a.name, b.name) })
	refs = slices.Compact(refs)
	var vals []string
	for _, rf := range refs {
		s, err := c.CoreV1().Secrets(namespace).Get(ctx, rf.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return redactor{}, fmt.Errorf("read secret %s, which the pods read, to hide its values from the output: %w; grant get on secrets in %s", rf.name, err, namespace)
		}
		data := map[string]string{}
		for k, v := range s.Data {
			data[k] = string(v)
		}
		if rf.env {
			vals = append(vals, scrub.Values(data)...)
			continue
		}
		for _, v := range data {
			vals = append(vals, scrub.CredentialValues(v)...)
		}
	}
	slices.SortFunc(vals, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(vals))
	for _, v := range vals {
		pairs = append(pairs, v, Redacted)
	}
	return redactor{strings.NewReplacer(pairs...)}, nil
}

// text hides every secret value in s.
func (r redactor) text(s string) string {
	if r.r == nil {
		return s
	}
	return r.r.Replace(s)
}
