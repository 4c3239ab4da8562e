// Package lock keeps two deploys of the same Helm release from running at
// once: a coordination.k8s.io/v1 Lease named ringg-ci-lock-<release> in the
// release's namespace, renewed while the deploy runs (see Acquire).
package lock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	coordclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
)

// DefaultTTL is how long a lock outlives its last renewal when Options.TTL
// is zero: how long a dead holder blocks the next deploy.
const DefaultTTL = 2 * time.Minute

// NamePrefix starts every lock's Lease name; the release name follows.
const NamePrefix = "ringg-ci-lock-"

// Labels set on every lock Lease.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelRelease   = "ringg-ci/release"
	ManagedBy      = "ringg-ci"
)

var (
	// ErrHeld means another holder has the lock and it has not expired. The
	// error is a *HeldError with the details.
	ErrHeld = errors.New("release lock is held")
	// ErrLost means a held lock stopped being ours: it expired before it
	// could be renewed, was taken over, or was deleted by hand.
	ErrLost = errors.New("release lock was lost")
	// ErrNoNamespace means the release's namespace does not exist: nothing
	// was changed.
	ErrNoNamespace = errors.New("no such namespace")
)

// LeaseName is the name of the Lease that locks release.
func LeaseName(release string) string { return NamePrefix + release }

// Options say which lock to take, for whom, and for how long.
type Options struct {
	Namespace string // the release namespace
	Release   string // the Helm release name
	// Holder describes who takes the lock, for the person who finds it held;
	// see Holder.
	Holder string
	// TTL is how long the lock lasts without renewal; zero means DefaultTTL.
	// It is stored in whole seconds, at least one.
	TTL time.Duration
	// Clock tells the time and times the renewals; nil means the real clock
	// (tests pass a fake one from k8s.io/utils/clock/testing).
	Clock clock.Clock
	// Logger receives takeovers, renewal failures and loss; nil discards.
	Logger *slog.Logger
}

// HeldError reports a lock someone else holds.
type HeldError struct {
	Namespace string
	Lease     string
	Holder    string
	Acquired  time.Time // when the holder took the lock
	Renewed   time.Time // its last renewal
	Expires   time.Time // when it lapses unless renewed again
	Now       time.Time // when this was observed
}

// Error says who holds the lock since when, and what to do.
func (e *HeldError) Error() string {
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	return fmt.Sprintf("lock %s in %s is held by %q since %s (last renewed %s); "+
		"wait for that deploy to finish and run again. If that holder is dead, the lock expires at %s (in %s) unless renewed; "+
		"or delete it by hand: kubectl -n %s delete lease %s",
		e.Lease, e.Namespace, e.Holder, ts(e.Acquired), ts(e.Renewed),
		ts(e.Expires), e.Expires.Sub(e.Now).Round(time.Second), e.Namespace, e.Lease)
}

// Unwrap makes errors.Is(err, ErrHeld) hold.
func (e *HeldError) Unwrap() error { return ErrHeld }

// Held is a lock this process holds. Call Release when the work is done,
// also after failures: until then a goroutine keeps renewing the Lease, even
// if the context given to Acquire is cancelled, so that clean-up after a
// cancellation still runs under the lock.
type Held struct {
	leases    coordclient.LeaseInterface
	namespace string
	name      string
	holder    string
	ttl       time.Duration
	clock     clock.Clock
	log       *slog.Logger

	mu      sync.Mutex
	lease   *coordv1.Lease // as last written by us
	renewed time.Time      // our clock at the last successful write

	lost     chan struct{}
	lostOnce sync.Once
	lostErr  error

	stop        chan struct{}
	done        chan struct{}
	releaseOnce sync.Once
	releaseErr  error
}

// Acquire takes the lock for opts.Release, creating the Lease or taking over
// an expired one (renewTime + leaseDurationSeconds in the past), and starts
// renewing it every TTL/3 until Release. If another holder's lock has not
// expired, the error wraps ErrHeld (a *HeldError naming the holder).
//
// Every write carries the resourceVersion it was decided on, so of two
// racers exactly one wins. A holder that dies simply stops renewing: the
// next deploy takes the lock over once it expires. Without the lock, two
// pushes in a row ran two helm upgrades together, and an interrupted one
// left the release pending-upgrade.
//
// Expiry compares the Lease's renewTime, written with the holder's clock, to
// the reader's clock, so clocks must agree to well within the TTL (CI
// runners and workstations synchronise theirs; the default TTL is minutes).
func Acquire(ctx context.Context, c kubernetes.Interface, opts Options) (*Held, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	name := LeaseName(opts.Release)
	h := &Held{
		leases:    c.CoordinationV1().Leases(opts.Namespace),
		namespace: opts.Namespace,
		name:      name,
		holder:    opts.Holder,
		ttl:       opts.TTL,
		clock:     opts.Clock,
		log:       opts.Logger.With("lease", name, "namespace", opts.Namespace),
		lost:      make(chan struct{}),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	const attempts = 3
	for range attempts {
		won, err := h.tryAcquire(ctx, opts.Release)
		if err != nil {
			return nil, err
		}
		if won {
			go h.renewLoop(context.WithoutCancel(ctx))
			return h, nil
		}
	}
	return nil, fmt.Errorf("acquire lock %s in %s: the lease changed during each of %d attempts; run again", name, opts.Namespace, attempts)
}

func (o Options) validate() error {
	var errs []error
	if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("namespace %q: %s", o.Namespace, strings.Join(msgs, "; ")))
	}
	if o.Release == "" {
		errs = append(errs, errors.New("release is empty"))
	} else if msgs := validation.IsDNS1123Subdomain(LeaseName(o.Release)); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("release %q does not make a valid Lease name: %s", o.Release, strings.Join(msgs, "; ")))
	}
	if strings.TrimSpace(o.Holder) == "" {
		errs = append(errs, errors.New("holder is empty; describe who deploys (see lock.Holder)"))
	}
	if o.TTL < 0 || (o.TTL > 0 && o.TTL < time.Second) {
		errs = append(errs, fmt.Errorf("ttl %s is below one second", o.TTL))
	}
	if len(errs) > 0 {
		return fmt.Errorf("acquire release lock: invalid options: %w", errors.Join(errs...))
	}
	return nil
}

// tryAcquire makes one attempt. It returns false without error when the
// Lease changed under it (a racer); the caller looks again.
func (h *Held) tryAcquire(ctx context.Context, release string) (bool, error) {
	now := h.clock.Now()
	// Usually nobody holds the lock: create first, read only on a conflict.
	created, err := h.leases.Create(ctx, h.newLease(release, now), metav1.CreateOptions{FieldManager: ManagedBy})
	switch {
	case err == nil:
		h.took(created, now)
		h.log.Info("acquired release lock", "holder", h.holder, "ttl", h.ttl)
		return true, nil
	case apierrors.IsNotFound(err):
		// The only thing a create can miss is the namespace itself.
		return false, fmt.Errorf("acquire lock %s: %w: namespace %q does not exist in this cluster; create it (it holds the release, its Secrets and its lock) or pass the release's namespace with --namespace",
			h.name, ErrNoNamespace, h.namespace)
	case !apierrors.IsAlreadyExists(err):
		return false, fmt.Errorf("acquire lock %s in %s: create lease: %w; check that the CI identity may create Leases (coordination.k8s.io) there", h.name, h.namespace, err)
	}
	cur, err := h.leases.Get(ctx, h.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil // released meanwhile: try again
	}
	if err != nil {
		return false, fmt.Errorf("acquire lock %s in %s: get lease: %w; check access to the cluster", h.name, h.namespace, err)
	}
	if herr := heldBy(cur, h.namespace, now); herr != nil {
		return false, fmt.Errorf("acquire lock: %w", herr)
	}
	prev := holderOf(cur)
	next := cur.DeepCopy()
	next.Spec = h.newLease(release, now).Spec
	next.Spec.LeaseTransitions = ptr.To(ptr.Deref(cur.Spec.LeaseTransitions, 0) + 1)
	if next.Labels == nil {
		next.Labels = map[string]string{}
	}
	next.Labels[LabelManagedBy] = ManagedBy
	next.Labels[LabelRelease] = release
	// Update sends cur's resourceVersion: it fails with a conflict if anyone
	// wrote the Lease since we read it.
	updated, err := h.leases.Update(ctx, next, metav1.UpdateOptions{FieldManager: ManagedBy})
	switch {
	case apierrors.IsConflict(err), apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("acquire lock %s in %s: take over expired lease: %w; check that the CI identity may update Leases there", h.name, h.namespace, err)
	}
	h.took(updated, now)
	if prev != "" {
		h.log.Warn("took over expired release lock", "holder", h.holder, "previous_holder", prev, "ttl", h.ttl)
	} else {
		h.log.Info("acquired release lock", "holder", h.holder, "ttl", h.ttl)
	}
	return true, nil
}

// holderOf returns a Lease's holder, or "".
func holderOf(l *coordv1.Lease) string { return ptr.Deref(l.Spec.HolderIdentity, "") }

func (h *Held) newLease(release string, now time.Time) *coordv1.Lease {
	secs := int32((h.ttl + time.Second - 1) / time.Second)
	mt := metav1.NewMicroTime(now)
	return &coordv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name:      h.name,
			Namespace: h.namespace,
			Labels:    map[string]string{LabelManagedBy: ManagedBy, LabelRelease: release},
		},
		Spec: coordv1.LeaseSpec{
			HolderIdentity:       ptr.To(h.holder),
			LeaseDurationSeconds: &secs,
			AcquireTime:          &mt,
			RenewTime:            &mt,
		},
	}
}

// took records a Lease we wrote at time now.
func (h *Held) took(l *coordv1.Lease, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lease = l
	h.renewed = now
}

// heldBy returns a *HeldError if l is held by anyone and unexpired at now.
// A Lease without holder, renew time or duration is free.
func heldBy(l *coordv1.Lease, namespace string, now time.Time) *HeldError {
	s := l.Spec
	if ptr.Deref(s.HolderIdentity, "") == "" || s.LeaseDurationSeconds == nil {
		return nil
	}
	renewed := s.RenewTime
	if renewed == nil {
		renewed = s.AcquireTime
	}
	if renewed == nil {
		return nil
	}
	expires := renewed.Add(time.Duration(*s.LeaseDurationSeconds) * time.Second)
	if !now.Before(expires) {
		return nil
	}
	e := &HeldError{Namespace: namespace, Lease: l.Name, Holder: *s.HolderIdentity, Renewed: renewed.Time, Expires: expires, Now: now}
	if s.AcquireTime != nil {
		e.Acquired = s.AcquireTime.Time
	} else {
		e.Acquired = renewed.Time
	}
	return e
}

// Name is the Lease's name.
func (h *Held) Name() string { return h.name }

// Holder is who holds the lock, as given to Acquire.
func (h *Held) Holder() string { return h.holder }

// Lost is closed when the lock stops being ours before Release: renewals
// failed until it expired, someone took it over, or it was deleted. Work
// under the lock should stop when it closes.
func (h *Held) Lost() <-chan struct{} { return h.lost }

// Err is why the lock was lost (wrapping ErrLost), or nil while it is held.
func (h *Held) Err() error {
	select {
	case <-h.lost:
		return h.lostErr
	default:
		return nil
	}
}

// Check is nil while the lock is certainly ours: not lost, and its last
// renewal not yet expired (renewals may be failing while the API server is
// away: once the Lease may have expired on the server, another run may hold
// it). Call it before every write made under the lock.
func (h *Held) Check() error {
	if err := h.Err(); err != nil {
		return err
	}
	if exp := h.expires(); !h.clock.Now().Before(exp) {
		return fmt.Errorf("%w: lock %s in %s was not renewed since it expired at %s", ErrLost, h.name, h.namespace, exp.UTC().Format(time.RFC3339))
	}
	return nil
}

func (h *Held) markLost(err error) {
	h.lostOnce.Do(func() {
		h.lostErr = err
		h.log.Error("lost release lock; the deploy is no longer protected against a concurrent one", "holder", h.holder, "error", err)
		close(h.lost)
	})
}

// expires is when our Lease lapses without another renewal.
func (h *Held) expires() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.renewed.Add(time.Duration(*h.lease.Spec.LeaseDurationSeconds) * time.Second)
}

// renewLoop renews every TTL/3, sooner after a failure, until Release or
// loss.
func (h *Held) renewLoop(ctx context.Context) {
	defer close(h.done)
	interval := h.ttl / 3
	t := h.clock.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C():
		}
		err := h.renew(ctx, interval)
		switch {
		case err == nil:
			t.Reset(interval)
		case errors.Is(err, ErrLost):
			h.markLost(err)
			return
		case !h.clock.Now().Before(h.expires()):
			h.markLost(fmt.Errorf("%w: renewing lock %s in %s failed until it expired: %w", ErrLost, h.name, h.namespace, err))
			return
		default:
			h.log.Warn("renewing release lock failed; retrying before it expires", "error", err, "expires", h.expires())
			t.Reset(interval / 4)
		}
	}
}

// renew writes a new renewTime, conditional on the Lease being as we last
// wrote it. A Lease changed by someone else is re-read: if it still names us
// with our acquire time (say, someone added a label) we renew that.
func (h *Held) renew(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for range 2 {
		h.mu.Lock()
		next := h.lease.DeepCopy()
		h.mu.Unlock()
		now := h.clock.Now()
		mt := metav1.NewMicroTime(now)
		next.Spec.RenewTime = &mt
		updated, err := h.leases.Update(ctx, next, metav1.UpdateOptions{FieldManager: ManagedBy})
		if err == nil {
			h.took(updated, now)
			return nil
		}
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("%w: lock %s in %s was deleted while held", ErrLost, h.name, h.namespace)
		}
		if !apierrors.IsConflict(err) {
			return fmt.Errorf("renew lock %s in %s: %w", h.name, h.namespace, err)
		}
		cur, gerr := h.leases.Get(ctx, h.name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(gerr):
			return fmt.Errorf("%w: lock %s in %s was deleted while held", ErrLost, h.name, h.namespace)
		case gerr != nil:
			return fmt.Errorf("renew lock %s in %s: read it after a conflict: %w", h.name, h.namespace, gerr)
		case !h.ours(cur):
			return fmt.Errorf("%w: lock %s in %s was taken over by %q", ErrLost, h.name, h.namespace, holderOf(cur))
		}
		h.mu.Lock()
		h.lease = cur
		h.mu.Unlock()
	}
	return fmt.Errorf("renew lock %s in %s: the lease keeps changing", h.name, h.namespace)
}

// ours reports whether l is still the Lease we acquired: same object, same
// holder, same acquire time.
func (h *Held) ours(l *coordv1.Lease) bool {
	h.mu.Lock()
	mine := h.lease
	h.mu.Unlock()
	s := l.Spec
	return l.UID == mine.UID &&
		s.HolderIdentity != nil && *s.HolderIdentity == h.holder &&
		s.AcquireTime != nil && mine.Spec.AcquireTime != nil && s.AcquireTime.Equal(mine.Spec.AcquireTime)
}

// Release stops renewing and deletes the Lease if it is still ours. It is
// safe to call more than once; later calls return the first result. Give it
// a context that is not already cancelled (context.WithoutCancel plus a
// timeout) when releasing after an interruption. If the lock was lost, the
// error wraps ErrLost: the work ran partly unprotected.
func (h *Held) Release(ctx context.Context) error {
	h.releaseOnce.Do(func() {
		close(h.stop)
		<-h.done
		h.releaseErr = h.release(ctx)
	})
	return h.releaseErr
}

func (h *Held) release(ctx context.Context) error {
	if err := h.Err(); err != nil {
		return fmt.Errorf("release lock %s in %s: %w", h.name, h.namespace, err)
	}
	for range 2 {
		h.mu.Lock()
		uid, rv := h.lease.UID, h.lease.ResourceVersion
		h.mu.Unlock()
		err := h.leases.Delete(ctx, h.name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
		switch {
		case err == nil:
			h.log.Info("released release lock", "holder", h.holder)
			return nil
		case apierrors.IsNotFound(err):
			return fmt.Errorf("release lock %s in %s: %w: it was deleted while held", h.name, h.namespace, ErrLost)
		case !apierrors.IsConflict(err):
			return fmt.Errorf("release lock %s in %s: %w; it expires by itself in %s, or delete it: kubectl -n %s delete lease %s",
				h.name, h.namespace, err, h.ttl, h.namespace, h.name)
		}
		cur, gerr := h.leases.Get(ctx, h.name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(gerr):
			return fmt.Errorf("release lock %s in %s: %w: it was deleted while held", h.name, h.namespace, ErrLost)
		case gerr != nil:
			return fmt.Errorf("release lock %s in %s: read it after a conflict: %w", h.name, h.namespace, gerr)
		case !h.ours(cur):
			return fmt.Errorf("release lock %s in %s: %w: it is now held by %q", h.name, h.namespace, ErrLost, holderOf(cur))
		}
		h.mu.Lock()
		h.lease = cur
		h.mu.Unlock()
	}
	return fmt.Errorf("release lock %s in %s: the lease keeps changing; it expires by itself in %s", h.name, h.namespace, h.ttl)
}

// Holder describes who is deploying, for the lock's holder field: in GitHub
// Actions the run, attempt, branch, commit and actor, such as
// "github-actions run 123 attempt 1 (dv-main@abc1234) by alice,
// https://github.com/ringg/dv/actions/runs/123"; elsewhere user@host.
// getenv is os.Getenv in production; hostname is os.Hostname (nil means
// os.Hostname).
func Holder(getenv func(string) string, hostname func() (string, error)) string {
	if id := getenv("GITHUB_RUN_ID"); id != "" {
		var sb strings.Builder
		sb.WriteString("github-actions run " + id)
		if a := getenv("GITHUB_RUN_ATTEMPT"); a != "" {
			sb.WriteString(" attempt " + a)
		}
		ref, sha := getenv("GITHUB_REF_NAME"), getenv("GITHUB_SHA")
		if len(sha) > 7 {
			sha = sha[:7]
		}
		switch {
		case ref != "" && sha != "":
			sb.WriteString(" (" + ref + "@" + sha + ")")
		case ref != "" || sha != "":
			sb.WriteString(" (" + ref + sha + ")")
		}
		if actor := getenv("GITHUB_ACTOR"); actor != "" {
			sb.WriteString(" by " + actor)
		}
		if server, repo := getenv("GITHUB_SERVER_URL"), getenv("GITHUB_REPOSITORY"); server != "" && repo != "" {
			sb.WriteString(", " + strings.TrimSuffix(server, "/") + "/" + repo + "/actions/runs/" + id)
		}
		return sb.String()
	}
	user := "unknown-user"
	for _, k := range []string{"USER", "LOGNAME", "USERNAME"} {
		if v := getenv(k); v != "" {
			user = v
			break
		}
	}
	if hostname == nil {
		hostname = os.Hostname
	}
	host, err := hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return user + "@" + host
}
