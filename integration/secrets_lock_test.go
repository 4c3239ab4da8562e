package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
	appsv1 "k8s.io/api/apps/v1"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/ringg/ringg-ci/runner/lock"
	"github.com/ringg/ringg-ci/runner/secrets"
)

// kube gives a test the shared test cluster's admin client and a namespace
// of its own, deleted when the test ends.
func kube(t *testing.T) (kubernetes.Interface, string) {
	t.Helper()
	ns := cluster.Namespace(t)
	return cluster.Client(), ns
}

// secretMarker is in every secret value below; no test output may hold it.
const secretMarker = "SECRETVALUE"

func appEnvJSON(openAIKey string) []byte {
	return []byte(fmt.Sprintf(`{"OPENAI_API_KEY": %q, "REDIS_URL": "redis://:%s-redis@10.0.0.3:6379/0", "ENVIRONMENT": "production"}`,
		secretMarker+"-"+openAIKey, secretMarker))
}

var credsJSON = []byte(`{"type": "service_account", "client_email": "app@p.iam.gserviceaccount.com", "private_key": "` + secretMarker + `-pem"}`)

// noLeak fails the test, without printing the text, if it holds a secret value.
func noLeak(t *testing.T, text string) {
	t.Helper()
	if strings.Contains(text, secretMarker) {
		t.Fatalf("output leaks a secret value (%d bytes); it must name keys only", len(text))
	}
}

func resourceVersions(t *testing.T, c kubernetes.Interface, ns string, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range names {
		s, err := c.CoreV1().Secrets(ns).Get(context.Background(), n, metav1.GetOptions{})
		assert.NilError(t, err)
		out[n] = s.ResourceVersion
	}
	return out
}

func TestSecretsApplyCreatesImmutableSecretsOnce(t *testing.T) {
	c, ns := kube(t)
	ctx := context.Background()
	b, err := secrets.Build(appEnvJSON("one"), credsJSON, secrets.DefaultNames(), ns)
	assert.NilError(t, err)
	names := b.Names()

	st, err := secrets.Describe(ctx, c, b)
	assert.NilError(t, err)
	assert.Equal(t, st[0].State, secrets.StateNew)
	assert.Equal(t, st[1].State, secrets.StateNew)

	res, err := secrets.Apply(ctx, c, b, time.Now())
	assert.NilError(t, err)
	assert.Assert(t, res.Created())
	assert.DeepEqual(t, []secrets.State{res.Secrets[0].State, res.Secrets[1].State}, []secrets.State{secrets.StateCreated, secrets.StateCreated})
	noLeak(t, fmt.Sprintf("%+v %v", res, b))

	app, err := c.CoreV1().Secrets(ns).Get(ctx, names.AppEnv, metav1.GetOptions{})
	assert.NilError(t, err)
	assert.Assert(t, app.Immutable != nil && *app.Immutable, "app secret must be immutable")
	assert.Equal(t, app.Type, corev1.SecretTypeOpaque)
	assert.DeepEqual(t, app.Labels, map[string]string{
		"app.kubernetes.io/managed-by": "ringg-ci", "app.kubernetes.io/name": "dv-pipecat", "ringg-ci/secret": "app-env",
	})
	assert.Assert(t, strings.HasPrefix(app.Annotations[secrets.AnnotationHash], strings.TrimPrefix(names.AppEnv, "dv-pipecat-app-secrets-")))
	assert.Equal(t, len(app.Data), 3)
	assert.Assert(t, string(app.Data["OPENAI_API_KEY"]) == secretMarker+"-one", "OPENAI_API_KEY holds the decoded value")
	assert.Assert(t, managedBy(app.ManagedFields, "ringg-ci"), "field manager must be ringg-ci")

	creds, err := c.CoreV1().Secrets(ns).Get(ctx, names.GCPCreds, metav1.GetOptions{})
	assert.NilError(t, err)
	assert.Assert(t, creds.Immutable != nil && *creds.Immutable)
	assert.Equal(t, creds.Labels["ringg-ci/secret"], "gcp-creds")
	assert.Assert(t, string(creds.Data["creds.json"]) == string(credsJSON), "creds.json holds the bytes as given")

	before := resourceVersions(t, c, ns, names.AppEnv, names.GCPCreds)
	res, err = secrets.Apply(ctx, c, b, time.Now())
	assert.NilError(t, err)
	assert.Assert(t, !res.Created())
	assert.Equal(t, res.Secrets[0].State, secrets.StateUnchanged)
	assert.DeepEqual(t, resourceVersions(t, c, ns, names.AppEnv, names.GCPCreds), before)

	t.Run("the API server refuses to change the data", func(t *testing.T) {
		app.Data["OPENAI_API_KEY"] = []byte("changed")
		_, err := c.CoreV1().Secrets(ns).Update(ctx, app, metav1.UpdateOptions{})
		assert.Assert(t, apierrors.IsInvalid(err), "got %v", err)
	})

	t.Run("a relabelled secret is relabelled back without a data change", func(t *testing.T) {
		cur, err := c.CoreV1().Secrets(ns).Get(ctx, names.GCPCreds, metav1.GetOptions{})
		assert.NilError(t, err)
		delete(cur.Labels, "ringg-ci/secret")
		_, err = c.CoreV1().Secrets(ns).Update(ctx, cur, metav1.UpdateOptions{})
		assert.NilError(t, err)
		res, err := secrets.Apply(ctx, c, b, time.Now())
		assert.NilError(t, err)
		assert.Equal(t, res.Secrets[1].State, secrets.StateUnchanged)
		cur, err = c.CoreV1().Secrets(ns).Get(ctx, names.GCPCreds, metav1.GetOptions{})
		assert.NilError(t, err)
		assert.Equal(t, cur.Labels["ringg-ci/secret"], "gcp-creds")
	})

	t.Run("a replaced secret is a conflict", func(t *testing.T) {
		assert.NilError(t, c.CoreV1().Secrets(ns).Delete(ctx, names.AppEnv, metav1.DeleteOptions{}))
		_, err := c.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: names.AppEnv},
			Data:       map[string][]byte{"OPENAI_API_KEY": []byte(secretMarker + "-by-hand")},
		}, metav1.CreateOptions{})
		assert.NilError(t, err)

		st, err := secrets.Describe(ctx, c, b)
		assert.NilError(t, err)
		assert.Equal(t, st[0].State, secrets.StateConflict)

		_, err = secrets.Apply(ctx, c, b, time.Now())
		assert.Assert(t, errors.Is(err, secrets.ErrConflict), "got %v", err)
		noLeak(t, err.Error())
	})
}

func managedBy(fields []metav1.ManagedFieldsEntry, manager string) bool {
	for _, f := range fields {
		if f.Manager == manager && f.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}

func TestSecretsPruneKeepsKeptUnmanagedAndInUse(t *testing.T) {
	c, ns := kube(t)
	ctx := context.Background()
	build := func(key string) secrets.Bundle {
		b, err := secrets.Build(appEnvJSON(key), nil, secrets.DefaultNames(), ns)
		assert.NilError(t, err)
		_, err = secrets.Apply(ctx, c, b, time.Now())
		assert.NilError(t, err)
		return b
	}
	old, inUse, current := build("old"), build("in-use"), build("current")
	creds, err := secrets.Build(nil, credsJSON, secrets.DefaultNames(), ns)
	assert.NilError(t, err)
	_, err = secrets.Apply(ctx, c, creds, time.Now())
	assert.NilError(t, err)

	// Today's fixed-name Secret, which ringg-ci never created.
	_, err = c.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "dv-pipecat-app-secrets"},
		Data:       map[string][]byte{"OPENAI_API_KEY": []byte(secretMarker)},
	}, metav1.CreateOptions{})
	assert.NilError(t, err)
	// A Deployment (say, the other track) still reads one old Secret.
	replicas := int32(0)
	sel := map[string]string{"app": "other-track"}
	_, err = c.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "other-track"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "example.invalid/app:1",
					EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: inUse.Names().AppEnv},
					}}},
				}}},
			},
		},
	}, metav1.CreateOptions{})
	assert.NilError(t, err)

	keep := map[string]bool{current.Names().AppEnv: true, creds.Names().GCPCreds: true}
	deleted, err := secrets.PruneWith(ctx, c, secrets.PruneOptions{Namespace: ns, Keep: keep, MinAge: secrets.DefaultPruneMinAge})
	assert.NilError(t, err)
	assert.Equal(t, len(deleted), 0, "the grace period spares Secrets created moments ago")

	deleted, err = secrets.Prune(ctx, c, ns, keep)
	assert.NilError(t, err)
	assert.DeepEqual(t, deleted, []string{old.Names().AppEnv})

	list, err := c.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	assert.NilError(t, err)
	var left []string
	for _, s := range list.Items {
		if s.Type != corev1.SecretTypeServiceAccountToken {
			left = append(left, s.Name)
		}
	}
	for _, want := range []string{current.Names().AppEnv, creds.Names().GCPCreds, inUse.Names().AppEnv, "dv-pipecat-app-secrets"} {
		assert.Assert(t, is.Contains(left, want))
	}
	assert.Assert(t, !contains(left, old.Names().AppEnv))

	deleted, err = secrets.Prune(ctx, c, ns, keep)
	assert.NilError(t, err)
	assert.Equal(t, len(deleted), 0, "a second prune has nothing to do")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// lockOpts are the options of one holder of release r in ns; a nil clk is
// the real clock.
func lockOpts(ns, release, holder string, ttl time.Duration, clk clock.Clock) lock.Options {
	return lock.Options{Namespace: ns, Release: release, Holder: holder, TTL: ttl, Clock: clk}
}

// stepWhenWaiting moves clk on by d once a timer waits on it: the holder's
// renewal timer, set when it acquired or last renewed the lock, so each
// step lands after the renewal before it finished.
func stepWhenWaiting(t *testing.T, clk *clocktesting.FakeClock, d time.Duration) {
	t.Helper()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if clk.HasWaiters() {
			return poll.Success()
		}
		return poll.Continue("no renewal timer waits on the clock")
	}, poll.WithTimeout(10*time.Second), poll.WithDelay(5*time.Millisecond))
	clk.Step(d)
}

func getLease(t *testing.T, c kubernetes.Interface, ns, release string) (*coordv1.Lease, error) {
	t.Helper()
	return c.CoordinationV1().Leases(ns).Get(context.Background(), lock.LeaseName(release), metav1.GetOptions{})
}

func TestLockHeldThenReleased(t *testing.T) {
	c, ns := kube(t)
	ctx := context.Background()
	a, err := lock.Acquire(ctx, c, lockOpts(ns, "dv-pipecat-canary", "github-actions run 1 attempt 1 (dv-main@abc1234)", time.Minute, nil))
	assert.NilError(t, err)
	l, err := getLease(t, c, ns, "dv-pipecat-canary")
	assert.NilError(t, err)
	assert.Equal(t, *l.Spec.HolderIdentity, "github-actions run 1 attempt 1 (dv-main@abc1234)")
	assert.Equal(t, *l.Spec.LeaseDurationSeconds, int32(60))

	_, err = lock.Acquire(ctx, c, lockOpts(ns, "dv-pipecat-canary", "run 2", time.Minute, nil))
	assert.Assert(t, errors.Is(err, lock.ErrHeld), "got %v", err)
	assert.ErrorContains(t, err, `held by "github-actions run 1 attempt 1 (dv-main@abc1234)" since `)
	assert.ErrorContains(t, err, "kubectl -n "+ns+" delete lease ringg-ci-lock-dv-pipecat-canary")

	// Another release has its own lock.
	other, err := lock.Acquire(ctx, c, lockOpts(ns, "dv-pipecat", "run 2", time.Minute, nil))
	assert.NilError(t, err)
	assert.NilError(t, other.Release(ctx))

	assert.NilError(t, a.Release(ctx))
	_, err = getLease(t, c, ns, "dv-pipecat-canary")
	assert.Assert(t, apierrors.IsNotFound(err), "release deletes the lease, got %v", err)
	select {
	case <-a.Lost():
		t.Fatal("a released lock is not lost")
	default:
	}

	b, err := lock.Acquire(ctx, c, lockOpts(ns, "dv-pipecat-canary", "run 2", time.Minute, nil))
	assert.NilError(t, err)
	assert.NilError(t, b.Release(ctx))
}

func TestLockExpiredIsTakenOver(t *testing.T) {
	c, ns := kube(t)
	ctx := context.Background()
	t0 := time.Now()
	a, err := lock.Acquire(ctx, c, lockOpts(ns, "r", "dead holder", time.Minute, clocktesting.NewFakeClock(t0)))
	assert.NilError(t, err)

	_, err = lock.Acquire(ctx, c, lockOpts(ns, "r", "next", time.Minute, clocktesting.NewFakeClock(t0.Add(59*time.Second))))
	assert.Assert(t, errors.Is(err, lock.ErrHeld), "not expired yet, got %v", err)

	b, err := lock.Acquire(ctx, c, lockOpts(ns, "r", "next", time.Minute, clocktesting.NewFakeClock(t0.Add(61*time.Second))))
	assert.NilError(t, err)
	l, err := getLease(t, c, ns, "r")
	assert.NilError(t, err)
	assert.Equal(t, *l.Spec.HolderIdentity, "next")
	assert.Equal(t, *l.Spec.LeaseTransitions, int32(1))

	err = a.Release(ctx)
	assert.Assert(t, errors.Is(err, lock.ErrLost), "got %v", err)
	assert.ErrorContains(t, err, `now held by "next"`)
	_, err = getLease(t, c, ns, "r")
	assert.NilError(t, err, "the old holder must not delete the new holder's lease")
	assert.NilError(t, b.Release(ctx))
}

func TestLockRenewalKeepsItPastTTL(t *testing.T) {
	c, ns := kube(t)
	ctx := context.Background()
	t0 := time.Now()
	clk := clocktesting.NewFakeClock(t0)
	a, err := lock.Acquire(ctx, c, lockOpts(ns, "r", "long rollout", 2*time.Second, clk))
	assert.NilError(t, err)
	first, err := getLease(t, c, ns, "r")
	assert.NilError(t, err)

	// 3.5 s pass on the holder's clock, in steps shorter than the renewal
	// interval (TTL/3), each once the renewal before it is done.
	for clk.Since(t0) < 3500*time.Millisecond {
		stepWhenWaiting(t, clk, 500*time.Millisecond)
	}
	_, err = lock.Acquire(ctx, c, lockOpts(ns, "r", "impatient", 2*time.Second, clk))
	assert.Assert(t, errors.Is(err, lock.ErrHeld), "renewed lock must still be held after its TTL, got %v", err)
	now, err := getLease(t, c, ns, "r")
	assert.NilError(t, err)
	assert.Assert(t, now.Spec.RenewTime.After(first.Spec.RenewTime.Time), "renewTime must advance")
	assert.Assert(t, now.Spec.AcquireTime.Equal(first.Spec.AcquireTime), "acquireTime stays")
	assert.NilError(t, a.Err())
	assert.NilError(t, a.Release(ctx))
}

func TestLockLossIsReported(t *testing.T) {
	tests := []struct {
		name  string
		steal func(t *testing.T, c kubernetes.Interface, ns string)
		want  string
	}{
		{
			name: "taken over",
			steal: func(t *testing.T, c kubernetes.Interface, ns string) {
				// A holder whose clock runs ahead sees the lease expired.
				late := clocktesting.NewFakeClock(time.Now().Add(time.Hour))
				thief, err := lock.Acquire(context.Background(), c, lockOpts(ns, "r", "thief", time.Hour, late))
				assert.NilError(t, err)
				t.Cleanup(func() { _ = thief.Release(context.Background()) })
			},
			want: `taken over by "thief"`,
		},
		{
			name: "deleted by hand",
			steal: func(t *testing.T, c kubernetes.Interface, ns string) {
				assert.NilError(t, c.CoordinationV1().Leases(ns).Delete(context.Background(), lock.LeaseName("r"), metav1.DeleteOptions{}))
			},
			want: "deleted while held",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, ns := kube(t)
			clk := clocktesting.NewFakeClock(time.Now())
			a, err := lock.Acquire(context.Background(), c, lockOpts(ns, "r", "victim", 3*time.Second, clk))
			assert.NilError(t, err)
			tc.steal(t, c, ns)
			stepWhenWaiting(t, clk, time.Second) // the next renewal finds the lease gone
			select {
			case <-a.Lost():
			case <-time.After(5 * time.Second):
				t.Fatal("Lost() did not close after the lease was stolen")
			}
			assert.Assert(t, errors.Is(a.Err(), lock.ErrLost))
			assert.ErrorContains(t, a.Err(), tc.want)
			assert.Assert(t, errors.Is(a.Release(context.Background()), lock.ErrLost))
		})
	}
}

func TestLockConcurrentAcquirersOneWins(t *testing.T) {
	c, ns := kube(t)
	const racers, rounds = 6, 4
	for round := range rounds {
		for _, expired := range []bool{false, true} {
			t.Run(fmt.Sprintf("round %d expired %v", round, expired), func(t *testing.T) {
				release := fmt.Sprintf("race-%d-%v", round, expired)
				if expired {
					// A dead holder's lease: every racer must take it over with
					// the same resourceVersion, and only one may.
					old := metav1.NewMicroTime(time.Now().Add(-time.Hour))
					holder, secs := "dead", int32(60)
					_, err := c.CoordinationV1().Leases(ns).Create(context.Background(), &coordv1.Lease{
						ObjectMeta: metav1.ObjectMeta{Name: lock.LeaseName(release)},
						Spec:       coordv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &old, RenewTime: &old},
					}, metav1.CreateOptions{})
					assert.NilError(t, err)
				}
				var (
					wg    sync.WaitGroup
					start = make(chan struct{})
					mu    sync.Mutex
					won   []*lock.Held
					held  int
					other []error
				)
				for i := range racers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						h, err := lock.Acquire(context.Background(), c, lockOpts(ns, release, fmt.Sprintf("racer %d", i), time.Minute, nil))
						mu.Lock()
						defer mu.Unlock()
						switch {
						case err == nil:
							won = append(won, h)
						case errors.Is(err, lock.ErrHeld):
							held++
						default:
							other = append(other, err)
						}
					}()
				}
				close(start)
				wg.Wait()
				assert.Equal(t, len(other), 0, "unexpected errors: %v", other)
				assert.Equal(t, len(won), 1, "exactly one racer must win")
				assert.Equal(t, held, racers-1)
				l, err := getLease(t, c, ns, release)
				assert.NilError(t, err)
				assert.Equal(t, *l.Spec.HolderIdentity, won[0].Holder())
				assert.NilError(t, won[0].Release(context.Background()))
			})
		}
	}
}

// A deploy that reuses a Secret no kept revision references yet (the same
// secrets JSON as an older deploy) applies it while another track's deploy,
// under another lock, prunes: in either order, the Secret the deploy is
// about to reference survives.
func TestSecretsPruneNeverRacesAConcurrentApply(t *testing.T) {
	c, ns := kube(t)
	ctx := context.Background()
	b, err := secrets.Build(appEnvJSON("reused"), nil, secrets.DefaultNames(), ns)
	assert.NilError(t, err)
	name := b.Names().AppEnv
	now := time.Now()
	keep := map[string]bool{"another-release-secret": true}

	later := now.Add(2 * time.Hour) // the deploy that reuses it runs two hours after the first
	opts := secrets.PruneOptions{Namespace: ns, Keep: keep, MinAge: secrets.DefaultPruneMinAge, Clock: func() time.Time { return later }}
	t.Run("prune lists, the deploy applies, prune deletes", func(t *testing.T) {
		_, err := secrets.Apply(ctx, c, b, now) // applied by a deploy two hours ago
		assert.NilError(t, err)
		plan, err := secrets.PlanPrune(ctx, c, opts)
		assert.NilError(t, err)
		assert.Equal(t, len(plan.Secrets), 1, "an old unreferenced Secret is a candidate")
		res, err := secrets.Apply(ctx, c, b, later) // the deploy that reuses it
		assert.NilError(t, err)
		assert.Equal(t, res.Secrets[0].State, secrets.StateUnchanged)
		deleted, err := plan.Delete(ctx, c)
		assert.NilError(t, err)
		assert.Equal(t, len(deleted), 0)
		_, err = c.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		assert.NilError(t, err, "the Secret the deploy applied survives")
		plan, err = secrets.PlanPrune(ctx, c, opts)
		assert.NilError(t, err)
		assert.Equal(t, len(plan.Secrets), 0, "a Secret applied moments ago is no candidate")
	})
	t.Run("prune deletes, then the deploy applies", func(t *testing.T) {
		plan, err := secrets.PlanPrune(ctx, c, secrets.PruneOptions{Namespace: ns, Keep: keep, MinAge: secrets.DefaultPruneMinAge, Clock: func() time.Time { return later.Add(2 * time.Hour) }})
		assert.NilError(t, err)
		deleted, err := plan.Delete(ctx, c)
		assert.NilError(t, err)
		assert.DeepEqual(t, deleted, []string{name})
		res, err := secrets.Apply(ctx, c, b, later)
		assert.NilError(t, err)
		assert.Equal(t, res.Secrets[0].State, secrets.StateCreated)
		_, err = c.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		assert.NilError(t, err)
	})
	t.Run("a second identical apply within the refresh period writes nothing", func(t *testing.T) {
		rv := resourceVersions(t, c, ns, name)
		_, err := secrets.Apply(ctx, c, b, later.Add(secrets.RefreshAfter/2))
		assert.NilError(t, err)
		assert.DeepEqual(t, resourceVersions(t, c, ns, name), rv)
	})
}
