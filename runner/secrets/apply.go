package secrets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1apply "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
)

// ErrConflict means a Secret with a bundle's name exists with other content.
// Names are content hashes, so this only happens when someone edited or
// replaced the Secret by hand.
var ErrConflict = errors.New("secret exists with different content")

// State is what a Secret of a bundle looks like in the cluster, or what Apply
// did with it.
type State string

// States reported by Describe and Apply.
const (
	StateNew       State = "new"       // Describe: not in the cluster yet
	StateCreated   State = "created"   // Apply: created by this run
	StateUnchanged State = "unchanged" // present with the same content
	StateConflict  State = "conflict"  // Describe: present with other content; Apply fails on it
)

// Status is one Secret of a bundle and its State, without data.
type Status struct {
	Summary
	State State `json:"state"`
}

// Result is what Apply did, in bundle order.
type Result struct {
	Namespace string   `json:"namespace"`
	Secrets   []Status `json:"secrets"`
}

// Created reports whether Apply created any Secret.
func (r Result) Created() bool {
	return slices.ContainsFunc(r.Secrets, func(s Status) bool { return s.State == StateCreated })
}

// Describe compares a bundle with the cluster without changing anything, for
// plans and status output.
func Describe(ctx context.Context, c kubernetes.Interface, b Bundle) ([]Status, error) {
	out := make([]Status, 0, len(b.secrets))
	for _, s := range b.secrets {
		st := Status{Summary: Summary{Kind: s.kind, Name: s.name, Keys: s.keys()}}
		live, err := c.CoreV1().Secrets(b.namespace).Get(ctx, s.name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			st.State = StateNew
		case err != nil:
			return nil, fmt.Errorf("get secret %s in %s: %w; check access to the cluster", s.name, b.namespace, err)
		case sameContent(live, s):
			st.State = StateUnchanged
		default:
			st.State = StateConflict
		}
		out = append(out, st)
	}
	return out, nil
}

// Apply creates the bundle's Secrets with server-side apply (field manager
// "ringg-ci"), stamped with the time now (AnnotationAppliedAt). A Secret that
// already exists with the same content and labels, applied less than
// RefreshAfter ago, is not written at all, so a second identical run leaves
// every resourceVersion as it was; one applied longer ago is stamped again,
// so that a concurrent prune of another track spares it (PruneWith). A
// Secret of the same name with other content is an error wrapping
// ErrConflict.
func Apply(ctx context.Context, c kubernetes.Interface, b Bundle, now time.Time) (Result, error) {
	res := Result{Namespace: b.namespace}
	api := c.CoreV1().Secrets(b.namespace)
	for _, s := range b.secrets {
		st := Status{Summary: Summary{Kind: s.kind, Name: s.name, Keys: s.keys()}, State: StateCreated}
		live, err := api.Get(ctx, s.name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return res, fmt.Errorf("get secret %s in %s: %w; check access to the cluster", s.name, b.namespace, err)
		case !sameContent(live, s):
			return res, conflictError(b.namespace, s)
		default:
			st.State = StateUnchanged
			if upToDate(live, s) && now.Sub(appliedAt(live)) < RefreshAfter {
				res.Secrets = append(res.Secrets, st)
				continue
			}
		}
		// Force: these names belong to ringg-ci; take over labels someone else
		// may have set. Data cannot change: the Secret is immutable and the
		// content was checked above.
		// An apply, unlike an update, also creates a Secret a prune deleted
		// since the Get above.
		if _, err := api.Apply(ctx, applyConfig(b.namespace, s, now), metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
			if apierrors.IsInvalid(err) && st.State == StateCreated {
				// Created by someone else between Get and Apply, with other content.
				return res, conflictError(b.namespace, s)
			}
			return res, fmt.Errorf("apply secret %s in %s: %w; check that the CI identity may create and patch Secrets there", s.name, b.namespace, err)
		}
		res.Secrets = append(res.Secrets, st)
	}
	return res, nil
}

func conflictError(namespace string, s *secret) error {
	return fmt.Errorf("apply secret %s in %s: %w: its name promises content hash %s…, so it was changed outside ringg-ci; "+
		"delete it (kubectl -n %s delete secret %s) and run again", s.name, namespace, ErrConflict, s.hash[:hashChars], namespace, s.name)
}

// RefreshAfter is how old an apply stamp may get before Apply writes a new
// one on an unchanged Secret: well inside DefaultPruneMinAge, so that a
// Secret a deploy is about to use always looks recent to a prune.
const RefreshAfter = DefaultPruneMinAge / 2

// appliedAt is when a Secret was last applied: its stamp, else its creation.
func appliedAt(s *corev1.Secret) time.Time {
	t := s.CreationTimestamp.Time
	if at, err := time.Parse(time.RFC3339, s.Annotations[AnnotationAppliedAt]); err == nil && at.After(t) {
		t = at
	}
	return t
}

// applyConfig is the desired Secret.
func applyConfig(namespace string, s *secret, now time.Time) *corev1apply.SecretApplyConfiguration {
	return corev1apply.Secret(s.name, namespace).
		WithLabels(labels(s.kind)).
		WithAnnotations(map[string]string{AnnotationHash: s.hash, AnnotationAppliedAt: now.UTC().Format(time.RFC3339)}).
		WithType(corev1.SecretTypeOpaque).
		WithImmutable(true).
		WithData(s.data)
}

func labels(kind Kind) map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelName: AppName, LabelKind: string(kind)}
}

// sameContent compares type and data: what the name's hash stands for.
func sameContent(live *corev1.Secret, s *secret) bool {
	if live.Type != corev1.SecretTypeOpaque || len(live.Data) != len(s.data) {
		return false
	}
	for k, v := range s.data {
		lv, ok := live.Data[k]
		if !ok || !bytes.Equal(lv, v) {
			return false
		}
	}
	return true
}

// upToDate reports whether a Secret with the right content also has the
// labels, annotation and immutability Apply would set.
func upToDate(live *corev1.Secret, s *secret) bool {
	if live.Immutable == nil || !*live.Immutable || live.Annotations[AnnotationHash] != s.hash {
		return false
	}
	for k, v := range labels(s.kind) {
		if live.Labels[k] != v {
			return false
		}
	}
	return true
}

// managedSelector selects the Secrets this package creates.
func managedSelector() string {
	return fmt.Sprintf("%s=%s,%s=%s,%s in (%s,%s)", LabelManagedBy, ManagedBy, LabelName, AppName, LabelKind, AppEnv, GCPCreds)
}

// DefaultPruneMinAge is the grace period a deploy should give PruneWith:
// longer than any deploy, so a Secret that the other track's deploy has just
// created, but not yet pointed a Helm revision at, is not deleted under it.
// (Canary and stable share a namespace but not a lock.)
const DefaultPruneMinAge = time.Hour

// PruneOptions say what PruneWith may delete.
type PruneOptions struct {
	Namespace string
	// Keep holds the names every release in the namespace uses (canary and
	// stable share one), plus those of any revision that should stay
	// rollback-able. It must not be empty.
	Keep map[string]bool
	// MinAge spares Secrets created or applied (AnnotationAppliedAt) less
	// than this long ago; zero spares none. Deploys should pass
	// DefaultPruneMinAge.
	MinAge time.Duration
	// Clock tells the time; nil means time.Now.
	Clock func() time.Time
}

// Prune is PruneWith without a grace period: it deletes the Secrets this
// package created in namespace that are not in keep and that no Pod or
// Deployment there references, and returns their names.
func Prune(ctx context.Context, c kubernetes.Interface, namespace string, keep map[string]bool) ([]string, error) {
	return PruneWith(ctx, c, PruneOptions{Namespace: namespace, Keep: keep})
}

// PruneWith deletes the Secrets this package created in opts.Namespace (found
// by label) whose names are not in opts.Keep, and returns the deleted names,
// sorted: PlanPrune, then Delete.
func PruneWith(ctx context.Context, c kubernetes.Interface, opts PruneOptions) ([]string, error) {
	p, err := PlanPrune(ctx, c, opts)
	if err != nil {
		return nil, err
	}
	return p.Delete(ctx, c)
}

// PrunePlan is what a prune found to delete: each Secret as it was listed.
type PrunePlan struct {
	Namespace string
	Secrets   []corev1.Secret
}

// PlanPrune lists what PruneWith deletes: the Secrets this package created
// whose names are not in opts.Keep. Secrets without the labels, such as the
// old fixed-name dv-pipecat-app-secrets, are never chosen, nor are Secrets
// created or applied less than opts.MinAge ago, nor any Secret that a Pod
// or Deployment in the namespace references. An empty keep set is refused,
// since it would delete everything.
func PlanPrune(ctx context.Context, c kubernetes.Interface, opts PruneOptions) (PrunePlan, error) {
	namespace, keep, minAge := opts.Namespace, opts.Keep, opts.MinAge
	plan := PrunePlan{Namespace: namespace}
	if len(keep) == 0 {
		return plan, fmt.Errorf("prune secrets in %s: refusing to prune with nothing to keep; pass the Secret names every release in the namespace uses", namespace)
	}
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	now := clock()
	list, err := c.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{LabelSelector: managedSelector()})
	if err != nil {
		return plan, fmt.Errorf("prune secrets in %s: list managed secrets: %w; check that the CI identity may list Secrets there", namespace, err)
	}
	var candidates []corev1.Secret
	for _, s := range list.Items {
		if !keep[s.Name] && now.Sub(appliedAt(&s)) >= minAge {
			candidates = append(candidates, s)
		}
	}
	if len(candidates) == 0 {
		return plan, nil
	}
	inUse, err := referenced(ctx, c, namespace)
	if err != nil {
		return plan, fmt.Errorf("prune secrets in %s: %w", namespace, err)
	}
	slices.SortFunc(candidates, func(a, b corev1.Secret) int { return strings.Compare(a.Name, b.Name) })
	for _, s := range candidates {
		if !inUse[s.Name] {
			plan.Secrets = append(plan.Secrets, s)
		}
	}
	return plan, nil
}

// Delete deletes the planned Secrets, each only if it is still as it was
// listed: one a deploy applied again since (to use it) is left alone.
func (p PrunePlan) Delete(ctx context.Context, c kubernetes.Interface) ([]string, error) {
	var deleted []string
	var errs []error
	for _, s := range p.Secrets {
		uid, rv := s.UID, s.ResourceVersion
		err := c.CoreV1().Secrets(p.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv},
		})
		switch {
		case err == nil:
			deleted = append(deleted, s.Name)
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
			// Gone already, or changed since the list (a deploy applied it
			// again to use it): leave it to the next run.
		default:
			errs = append(errs, fmt.Errorf("delete secret %s: %w", s.Name, err))
		}
	}
	if len(errs) > 0 {
		return deleted, fmt.Errorf("prune secrets in %s: %w; check that the CI identity may delete Secrets there", p.Namespace, errors.Join(errs...))
	}
	return deleted, nil
}

// referenced returns the Secret names used by Pods and Deployment templates
// in namespace.
func referenced(ctx context.Context, c kubernetes.Interface, namespace string) (map[string]bool, error) {
	refs := map[string]bool{}
	pods, err := c.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list pods to find secrets in use: %w; check that the CI identity may list Pods there", err)
	}
	for i := range pods.Items {
		specRefs(&pods.Items[i].Spec, refs)
	}
	deps, err := c.AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list deployments to find secrets in use: %w; check that the CI identity may list Deployments there", err)
	}
	for i := range deps.Items {
		specRefs(&deps.Items[i].Spec.Template.Spec, refs)
	}
	return refs, nil
}

// specRefs adds the Secrets a pod spec mounts or reads env from.
func specRefs(spec *corev1.PodSpec, refs map[string]bool) {
	for _, v := range spec.Volumes {
		if v.Secret != nil {
			refs[v.Secret.SecretName] = true
		}
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.Secret != nil {
					refs[src.Secret.Name] = true
				}
			}
		}
	}
	containers := slices.Concat(spec.InitContainers, spec.Containers)
	for _, ec := range spec.EphemeralContainers {
		containers = append(containers, corev1.Container{Env: ec.Env, EnvFrom: ec.EnvFrom})
	}
	for _, ctr := range containers {
		for _, ef := range ctr.EnvFrom {
			if ef.SecretRef != nil {
				refs[ef.SecretRef.Name] = true
			}
		}
		for _, e := range ctr.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				refs[e.ValueFrom.SecretKeyRef.Name] = true
			}
		}
	}
	for _, ps := range spec.ImagePullSecrets {
		refs[ps.Name] = true
	}
}
