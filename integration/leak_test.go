package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/gcpauth"
	"github.com/ringg/ringg-ci/runner/release"
	"github.com/ringg/ringg-ci/runner/secrets"
)

// leakMarker is in every secret value of the reliability and leak tests
// (and of the bad-input corpus, as ${SECRET}): recognisable, and new on every
// run so that nothing can match it by accident.
var leakMarker = func() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "LEAKCHECK-" + hex.EncodeToString(b)
}()

// leakAppEnvJSON is a valid app secrets document whose values hold the
// marker; key makes its content, hence its Secret's name, distinct.
func leakAppEnvJSON(key string) []byte {
	return fmt.Appendf(nil, `{"OPENAI_API_KEY": %q, "REDIS_URL": "redis://:%s@10.0.0.3:6379/0", "ENVIRONMENT": "production"}`,
		leakMarker+"-"+key, leakMarker)
}

// leakCredsJSON is a valid service-account credentials document whose key
// holds the marker.
func leakCredsJSON() []byte {
	return fmt.Appendf(nil, `{"type": "service_account", "client_email": "app@p.iam.gserviceaccount.com", "private_key_id": %q, "private_key": "-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n"}`,
		leakMarker+"-id", leakMarker)
}

// leakScan collects everything a run printed or returned.
type leakScan struct {
	t     *testing.T
	mu    sync.Mutex // progress reports arrive from the runner's goroutines
	texts []labelled
}

type labelled struct{ label, text string }

func (s *leakScan) add(label, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.texts = append(s.texts, labelled{label, text})
}

func (s *leakScan) json(label string, v any) {
	s.t.Helper()
	b, err := json.Marshal(v)
	assert.NilError(s.t, err, label)
	s.add(label+" (JSON)", string(b))
}

func (s *leakScan) err(label string, err error) {
	s.t.Helper()
	assert.Assert(s.t, err != nil, "%s: want an error", label)
	s.add(label+" error", err.Error())
}

// check fails, naming the places and never printing the text, when the
// marker is in any collected text.
func (s *leakScan) check() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var leaks []string
	for _, l := range s.texts {
		if strings.Contains(l.text, leakMarker) {
			leaks = append(leaks, fmt.Sprintf("%s (%d bytes)", l.label, len(l.text)))
		}
	}
	assert.Assert(s.t, len(leaks) == 0, "a secret value leaked into: %s", strings.Join(leaks, "; "))
}

// TestLeakCheck runs plan, deploy, status, promote (dry run and real), a
// failing deploy, rollback and bad inputs with secrets holding a marker, then
// looks for the marker in every error, summary, plan, status, log line of the
// runner (debug level, Helm's included), Helm release record and object of
// the namespace. Only the versioned app-env and gcp-creds Secrets may hold
// it.
func TestLeakCheck(t *testing.T) {
	e := newRelEnv(t)
	e.clients.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	s := &leakScan{t: t}
	bundle := func(key string) (*secrets.Bundle, *pipeline.SecretNames) {
		b, err := secrets.Build(leakAppEnvJSON(key), leakCredsJSON(), secrets.DefaultNames(), e.ns)
		assert.NilError(t, err)
		s.add("bundle "+key+" %v", fmt.Sprintf("%v %+v %#v %s", b, b, b, b))
		s.json("bundle "+key, b)
		n := b.Names()
		return &b, &pipeline.SecretNames{AppEnv: n.AppEnv, GCPCreds: n.GCPCreds}
	}

	// Plan of a first install, then the deploy.
	b1, n1 := bundle("one")
	plan := e.canaryPlan(digest("a"), n1)
	s.json("deploy plan", plan)
	pr, err := (&release.Plan{Clients: e.clients, Plan: plan, Secrets: b1}).Run(ctx)
	assert.NilError(t, err)
	s.add("plan (install)", pr.String())
	s.json("plan (install)", pr)
	res, err := e.deploy(plan, b1, release.Options{Progress: func(p release.Progress) { s.add("progress", p.String()) }, ProgressInterval: 100 * time.Millisecond})
	assert.NilError(t, err)
	s.add("deploy summary", res.Summary())
	s.json("deploy result", res)

	// Plan of an upgrade with new Secrets: the diff shows Secret names.
	b2, n2 := bundle("two")
	pr, err = (&release.Plan{Clients: e.clients, Plan: e.canaryPlan(digest("b"), n2), Secrets: b2}).Run(ctx)
	assert.NilError(t, err)
	s.add("plan (upgrade)", pr.String())
	s.json("plan (upgrade)", pr)
	assert.Assert(t, strings.Contains(pr.String(), n2.AppEnv), "the plan names the new Secret")

	// Promote: dry run, then for real.
	promote := func(dry bool) *release.PromoteResult {
		p, err := pipeline.NewPromote(pipeline.PromoteInput{Overrides: e.overrides(), ChartDir: chartDir, Soak: 300 * time.Millisecond,
			Timeout: 90 * time.Second, DryRun: dry, Holder: "leak check"})
		assert.NilError(t, err)
		s.json("promote plan", p)
		r, err := (&release.Promote{Clients: e.clients, Plan: p, SoakInterval: 100 * time.Millisecond}).Run(ctx)
		assert.NilError(t, err)
		s.add("promote summary", r.Summary())
		s.json("promote result", r)
		return r
	}
	if r := promote(true); r.Preview != nil {
		s.add("promote preview", r.Preview.String())
	}
	promote(false)

	// Status of both tracks.
	sp, err := pipeline.NewStatus([]targets.Name{targets.Canary, targets.Stable}, e.overrides())
	assert.NilError(t, err)
	st, err := (&release.Status{Clients: e.clients, Plan: sp}).Run(ctx)
	assert.NilError(t, err)
	s.add("status", st.String())
	s.json("status", st)

	// A deploy with new Secrets whose pods never become ready: rolled back.
	b3, n3 := bundle("three")
	failing := e.failing(e.canaryPlan(digest("c"), n3), "never-ready")
	failing.Timeout = 3 * time.Second
	res, err = e.deploy(failing, b3, release.Options{})
	s.err("failing deploy", err)
	assert.Assert(t, strings.Contains(err.Error(), "rolled back"))
	s.add("failing deploy summary", res.Summary())
	s.json("failing deploy result", res)

	// Rollback of the canary to stable's image.
	rp, err := pipeline.NewRollback(pipeline.RollbackInput{Target: targets.Canary, Overrides: e.overrides(), ChartDir: chartDir, Timeout: 60 * time.Second})
	assert.NilError(t, err)
	res, err = (&release.Rollback{Clients: e.clients, Plan: rp}).Run(ctx)
	assert.NilError(t, err)
	s.add("rollback summary", res.Summary())

	// Bad inputs whose errors must describe them without the values.
	_, err = secrets.Build([]byte(`{"A": {"B": "`+leakMarker+`"}, "C-D": "`+leakMarker+`", "E": "`+leakMarker), leakCredsJSON(), secrets.DefaultNames(), e.ns)
	s.err("bad app secrets", err)
	_, err = secrets.Build(leakAppEnvJSON("x"), []byte(`{"type": "`+leakMarker+`", "private_key": "`+leakMarker+`"}`), secrets.DefaultNames(), e.ns)
	s.err("bad creds", err)
	_, err = gcpauth.NewTokenSource(ctx, gcpauth.Config{CredentialsJSON: []byte(`{"type": "service_account", "client_email": "x@p.iam.gserviceaccount.com", "private_key": "` + leakMarker + `", "token_uri": "https://token-collector.example.com/token"}`)})
	s.err("bad google credentials", err)
	_, err = e.deploy(e.canaryPlan(digest("d"), n3), nil, release.Options{})
	s.err("deploy without its bundle", err)

	s.add("runner log", e.logs.String())
	// n2 was only planned, never applied.
	scanNamespace(t, e.ns, s, []string{n1.AppEnv, n3.AppEnv, n1.GCPCreds})
	s.check()
}

// scanNamespace adds every object of the namespace to s: Secret data
// decoded, Helm release records decompressed, everything else as JSON. The
// versioned Secrets named in holders are left out, after checking that they
// do hold the marker (so that the scan could find it).
func scanNamespace(t *testing.T, ns string, s *leakScan, holders []string) {
	t.Helper()
	ctx := context.Background()
	sl, err := cluster.Client().CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	assert.NilError(t, err)
	records := 0
	held := map[string]bool{}
	for _, sec := range sl.Items {
		if k := sec.Labels[secrets.LabelKind]; k == string(secrets.AppEnv) || k == string(secrets.GCPCreds) {
			var all []byte
			for _, v := range sec.Data {
				all = append(all, v...)
			}
			held[sec.Name] = bytes.Contains(all, []byte(leakMarker))
			continue
		}
		meta, err := json.Marshal(sec.ObjectMeta)
		assert.NilError(t, err)
		s.add("secret "+sec.Name+" metadata", string(meta))
		for k, v := range sec.Data {
			s.add("secret "+sec.Name+" key "+k, string(v))
		}
		if sec.Type == "helm.sh/release.v1" {
			rec := decodeHelmRecord(t, sec.Data["release"])
			assert.Assert(t, strings.Contains(rec, `"manifest"`), "release record %s decoded", sec.Name)
			s.add("helm release record "+sec.Name, rec)
			records++
		}
	}
	assert.Assert(t, records >= 4, "release records scanned: %d", records)
	for _, n := range holders {
		assert.Assert(t, held[n], "versioned Secret %s exists and holds the marker", n)
	}

	objects := newLister(t)
	kinds := 0
	for _, gvr := range objects.kinds {
		if gvr.Resource == "secrets" && gvr.Group == "" {
			continue
		}
		list, err := objects.dyn.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
		assert.NilError(t, err)
		b, err := list.MarshalJSON()
		assert.NilError(t, err)
		s.add(gvr.Resource+"."+gvr.Group, string(b))
		kinds++
	}
	events, err := cluster.Client().CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	assert.NilError(t, err)
	b, err := json.Marshal(events)
	assert.NilError(t, err)
	s.add("events", string(b))
	assert.Assert(t, kinds > 10, "namespaced kinds scanned: %d", kinds)
}

// decodeHelmRecord decodes a Helm v3 release record as its Secret storage
// driver writes it: base64 of gzip of JSON.
func decodeHelmRecord(t *testing.T, data []byte) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(string(data))
	assert.NilError(t, err)
	if bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		assert.NilError(t, err)
		raw, err = io.ReadAll(zr)
		assert.NilError(t, err)
	}
	return string(raw)
}
