package secrets

import (
	"context"
	"errors"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Adopt copies Secrets a release reads under fixed names (the old
// pipeline's dv-pipecat-app-secrets and dv-pipecat-gcp-creds, written with
// kubectl) into a Bundle of content-named Secrets with the same data, named
// from base as Build names them: a release that takes over reads an
// immutable copy of what the live pods read, which nothing changes behind
// its back. The app Secret is copied whole (kubectl's --from-literal gave
// the same bytes Build gives, so equal content gets an equal name); the
// credentials Secret must hold creds.json, the only key the chart mounts.
// A field of from left empty is not adopted. The data is read from the
// cluster and never leaves the Bundle except towards the API server.
func Adopt(ctx context.Context, c kubernetes.Interface, namespace string, from, base Names) (Bundle, error) {
	b := Bundle{namespace: namespace}
	var errs []error
	for _, s := range []struct {
		kind             Kind
		what, name, base string
	}{{AppEnv, "app secrets", from.AppEnv, base.AppEnv}, {GCPCreds, "GCP credentials", from.GCPCreds, base.GCPCreds}} {
		if s.name == "" {
			continue
		}
		if err := checkBase(s.what, s.base); err != nil {
			errs = append(errs, err...)
			continue
		}
		live, err := c.CoreV1().Secrets(namespace).Get(ctx, s.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("secret %s is not in %s: the live release reads it, so its pods cannot restart either; "+
				"deploy with --secrets-json and --creds-json to give the release new Secrets", s.name, namespace))
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read secret %s in %s: %w; check that the CI identity may get Secrets there", s.name, namespace, err))
			continue
		}
		if live.Type != corev1.SecretTypeOpaque && live.Type != "" {
			errs = append(errs, fmt.Errorf("secret %s in %s is of type %s, not Opaque: copy it by hand or deploy with new secrets", s.name, namespace, live.Type))
			continue
		}
		data := maps.Clone(live.Data)
		if s.kind == GCPCreds {
			creds, ok := live.Data[credsKey]
			if !ok {
				errs = append(errs, fmt.Errorf("secret %s in %s has no key %s, which the chart mounts at /app/creds.json: deploy with --creds-json", s.name, namespace, credsKey))
				continue
			}
			data = map[string][]byte{credsKey: creds}
		}
		if data == nil {
			data = map[string][]byte{}
		}
		b.secrets = append(b.secrets, newSecret(s.kind, s.base, data))
	}
	if err := errors.Join(errs...); err != nil {
		return Bundle{}, fmt.Errorf("copy the live Secrets into content-named ones: %w", err)
	}
	return b, nil
}
