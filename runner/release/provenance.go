package release

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	hrelease "helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/runner/secrets"
)

// A takeover record keeps what the old pipeline's revision of a release ran
// when ringg-ci first upgraded it: the digest its pods ran and content-named
// copies of the fixed-name Secrets they read. Rolling stable back right
// after the first promote returns to exactly that, by digest, without
// copying anything from the old record's values (which held the old
// workflow's --set secrets). It holds no secret itself, only names.

// takeoverSecretType marks a takeover record; prune never selects it.
const takeoverSecretType corev1.SecretType = "ringg-ci/takeover.v1"

// labelTakeoverRelease names the release a takeover record belongs to.
const labelTakeoverRelease = "ringg-ci/takeover-of"

// TakeoverRecord is what an old pipeline's revision ran.
type TakeoverRecord struct {
	Release     string               `json:"release"`
	Revision    int                  `json:"revision"`
	Digest      string               `json:"digest,omitempty"`
	SecretNames pipeline.SecretNames `json:"secretNames"`
	// Missing says what could not be recorded (pods on mixed digests, a
	// Secret gone); a rollback to the revision is refused then.
	Missing  string    `json:"missing,omitempty"`
	Recorded time.Time `json:"recorded"`
	Holder   string    `json:"holder"`
}

// usable says whether a rollback can return to the record's revision.
func (r *TakeoverRecord) usable() bool {
	return r != nil && r.Digest != "" && r.Missing == ""
}

func takeoverName(release string) string { return "ringg-ci-takeover-" + release }

// readTakeover reads a release's takeover record; nil when it has none.
func readTakeover(ctx context.Context, k kubernetes.Interface, namespace, release string) (*TakeoverRecord, error) {
	s, err := k.CoreV1().Secrets(namespace).Get(ctx, takeoverName(release), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the takeover record of release %s: %w; check access to the cluster", release, err)
	}
	return decodeTakeover(s)
}

func decodeTakeover(s *corev1.Secret) (*TakeoverRecord, error) {
	var r TakeoverRecord
	if err := json.Unmarshal(s.Data["record"], &r); err != nil {
		return nil, fmt.Errorf("read takeover record %s: %w; delete it (it only serves rollbacks to the old pipeline's revision)", s.Name, err)
	}
	return &r, nil
}

// takeoverRecords lists the takeover records of a namespace.
func takeoverRecords(ctx context.Context, k kubernetes.Interface, namespace string) ([]*TakeoverRecord, error) {
	list, err := k.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{LabelSelector: labelTakeoverRelease})
	if err != nil {
		return nil, fmt.Errorf("list takeover records in %s: %w", namespace, err)
	}
	var out []*TakeoverRecord
	for i := range list.Items {
		if list.Items[i].Type != takeoverSecretType {
			continue
		}
		r, err := decodeTakeover(&list.Items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// writeTakeover stores a takeover record, replacing an earlier one.
func writeTakeover(ctx context.Context, k kubernetes.Interface, namespace string, r TakeoverRecord) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: takeoverName(r.Release), Namespace: namespace,
			Labels: map[string]string{labelTakeoverRelease: r.Release, secrets.LabelManagedBy: secrets.ManagedBy, "ringg-ci/revision": strconv.Itoa(r.Revision)},
		},
		Type: takeoverSecretType,
		Data: map[string][]byte{"record": raw},
	}
	api := k.CoreV1().Secrets(namespace)
	_, err = api.Create(ctx, s, metav1.CreateOptions{FieldManager: secrets.FieldManager})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur, err := api.Get(ctx, s.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	s.ResourceVersion = cur.ResourceVersion
	_, err = api.Update(ctx, s, metav1.UpdateOptions{FieldManager: secrets.FieldManager})
	return err
}

// recordTakeover records, before the first ringg-ci upgrade of a release
// whose last good revision old is the old pipeline's, what old runs: the
// one digest of its pods and copies of the Secrets they read. A release
// already recorded for that revision is left as it is. Failing to record is
// not failing the takeover: the record only serves a later rollback, which
// then says what is missing.
func (u under) recordTakeover(ctx context.Context, old *hrelease.Release) {
	log := u.c.Logger.With("release", old.Name, "revision", old.Version)
	if cur, err := readTakeover(ctx, u.c.Kube, old.Namespace, old.Name); err == nil && cur != nil && cur.Revision == old.Version {
		return
	}
	rec := TakeoverRecord{Release: old.Name, Revision: old.Version, Recorded: u.c.Now().UTC(), Holder: u.holder}
	w, err := observe(ctx, u.c.Kube, old)
	switch {
	case err != nil:
		rec.Missing = fmt.Sprintf("its pods could not be read: %v", err)
	case w.deployment == nil:
		rec.Missing = "it had no Deployment"
	default:
		if d, ok := oneDigest(digests(w.pods)); ok {
			rec.Digest = d
		} else {
			rec.Missing = fmt.Sprintf("its pods did not run one known digest (%s)", shortList(digests(w.pods)))
		}
		b, err := secrets.Adopt(ctx, u.c.Kube, old.Namespace, liveSecretNames(&w.deployment.Spec.Template.Spec), secrets.DefaultNames())
		if err == nil && !b.Empty() {
			if u.held.Check() == nil {
				_, err = secrets.Apply(ctx, u.c.Kube, b, u.c.Now())
			}
		}
		if err != nil {
			rec.Missing = joinWhy(rec.Missing, fmt.Sprintf("its Secrets could not be copied: %v", err))
		} else {
			n := b.Names()
			rec.SecretNames = pipeline.SecretNames{AppEnv: n.AppEnv, GCPCreds: n.GCPCreds}
		}
	}
	if err := u.held.Check(); err != nil {
		return
	}
	if err := writeTakeover(ctx, u.c.Kube, old.Namespace, rec); err != nil {
		log.Warn("could not record what the old pipeline's revision runs; a rollback to it will be refused", "error", err)
		return
	}
	if rec.Missing != "" {
		log.Warn("recorded the old pipeline's revision without what a rollback to it needs", "missing", rec.Missing)
		return
	}
	log.Info("recorded what the old pipeline's revision runs, for a rollback to it", "digest", rec.Digest)
}

func joinWhy(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
