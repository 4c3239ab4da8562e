package analysis_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/analysis"
	"github.com/ringg/ringg-ci/testcluster/promserver"
)

// callSeries are a day of counters around now for both tracks in
// namespace ns: calls every second, and failures at the given rates.
func callSeries(now time.Time, ns string, canaryFailRate, stableFailRate float64) []promserver.Series {
	from, to := now.Add(-30*time.Minute), now.Add(30*time.Minute)
	counter := func(name, track string, perSecond float64) promserver.Series {
		return promserver.Series{Name: name, Labels: map[string]string{"namespace": ns, "version": track, "pod": "p-" + track},
			Points: promserver.Every(from, to, 15*time.Second, func(at time.Time) float64 { return perSecond * at.Sub(from).Seconds() })}
	}
	return []promserver.Series{
		counter("calls_total", "canary", 1), counter("calls_total", "stable", 30),
		counter("calls_failed_total", "canary", canaryFailRate), counter("calls_failed_total", "stable", 30*stableFailRate),
		// Another namespace's canary fails everything: label matching must keep it out.
		{Name: "calls_failed_total", Labels: map[string]string{"namespace": ns + "-other", "version": "canary"},
			Points: promserver.Every(from, to, 15*time.Second, func(at time.Time) float64 { return 100 * at.Sub(from).Seconds() })},
	}
}

var failureRate = targets.Query{
	Name: "call failure rate", MaxRatio: 2,
	Expr: `sum(rate(calls_failed_total{namespace="$namespace",version="$track"}[1m])) / sum(rate(calls_total{namespace="$namespace",version="$track"}[1m]))`,
}

// TestJudgeAgainstPrometheus runs the queries, their label matching and
// thresholds through the real query engine.
func TestJudgeAgainstPrometheus(t *testing.T) {
	promserver.Require(t)
	now := time.Now().Truncate(time.Second)
	prom, err := promserver.Start(t.Context(), t.TempDir(), append(callSeries(now, "prod", 0.05, 0.01), callSeries(now, "healthy", 0.01, 0.01)...))
	assert.NilError(t, err)
	defer prom.Stop()
	c := analysis.NewClient(t.Context(), prom.URL(), nil, "")
	w := analysis.Window{Start: now.Add(-2 * time.Minute), End: now, Step: 30 * time.Second}

	t.Run("a canary failing five times as often is refused", func(t *testing.T) {
		tr := analysis.Tracks{Canary: "canary", Baseline: "stable", Namespace: "prod"}
		v := analysis.Judge(analysis.Observe(t.Context(), c, []targets.Query{failureRate}, tr, w), tr, w)
		assert.Assert(t, !v.Passed())
		r := v.Rows[0]
		assert.Equal(t, r.Samples, 5)
		assert.Equal(t, r.Failed, 5)
		assert.Assert(t, r.Canary > 0.049 && r.Canary < 0.051, "canary %g", r.Canary)
		assert.Assert(t, r.Baseline > 0.0099 && r.Baseline < 0.0101, "stable %g", r.Baseline)
	})
	t.Run("a canary like stable passes", func(t *testing.T) {
		tr := analysis.Tracks{Canary: "canary", Baseline: "stable", Namespace: "healthy"}
		v := analysis.Judge(analysis.Observe(t.Context(), c, []targets.Query{failureRate}, tr, w), tr, w)
		assert.Assert(t, v.Passed(), "%s", v)
		assert.Equal(t, v.Rows[0].Samples, 5)
	})
	t.Run("a query that matches no pods says so", func(t *testing.T) {
		tr := analysis.Tracks{Canary: "canary", Baseline: "stable", Namespace: "nowhere"}
		v := analysis.Judge(analysis.Observe(t.Context(), c, []targets.Query{failureRate}, tr, w), tr, w)
		assert.Assert(t, !v.Passed())
		assert.ErrorContains(t, errors.New(v.Rows[0].Note), `no data for the canary pods (version="canary")`)
	})
	t.Run("an unaggregated query is refused", func(t *testing.T) {
		q := targets.Query{Name: "raw", Expr: `rate(calls_failed_total{version="$track"}[1m])`, MaxRatio: 2}
		tr := analysis.Tracks{Canary: "canary", Baseline: "stable", Namespace: "prod"}
		v := analysis.Judge(analysis.Observe(t.Context(), c, []targets.Query{q}, tr, w), tr, w)
		assert.ErrorContains(t, errors.New(v.Rows[0].Note), "returns 4 series for the canary pods")
	})
	t.Run("a broken query says what the engine said", func(t *testing.T) {
		_, err := c.QueryRange(t.Context(), `sum(rate(calls_total[1m]`, w)
		assert.Assert(t, errors.Is(err, analysis.ErrQuery))
		assert.ErrorContains(t, err, "bad_data")
		assert.ErrorContains(t, err, "fix the query")
	})
	t.Run("not a Prometheus API", func(t *testing.T) {
		html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("<html>login</html>")) }))
		defer html.Close()
		_, err := analysis.NewClient(t.Context(), html.URL, nil, "").QueryRange(t.Context(), "up", w)
		assert.ErrorContains(t, err, "not the Prometheus API's JSON (<html>login</html>)")
	})
}

// googleFront plays monitoring.googleapis.com in front of a Prometheus: the
// Prometheus API under /v1/projects/P/location/global/prometheus, a bearer
// token checked on every request with Google's own answers (401
// UNAUTHENTICATED without a valid token, 403 PERMISSION_DENIED for an
// identity without monitoring.timeSeries.list).
func googleFront(t *testing.T, prom, project, token, deniedToken string) *httptest.Server {
	t.Helper()
	target, err := url.Parse(prom)
	assert.NilError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	prefix := "/v1/projects/" + project + "/location/global/prometheus"
	googleError := func(w http.ResponseWriter, code int, status, msg string) {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg, "status": status}})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		switch {
		case auth == "":
			googleError(w, 401, "UNAUTHENTICATED", "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
			return
		case auth == "Bearer "+deniedToken:
			googleError(w, 403, "PERMISSION_DENIED", "Permission monitoring.timeSeries.list denied (or the resource may not exist).")
			return
		case auth != "Bearer "+token:
			googleError(w, 401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok {
			googleError(w, 404, "NOT_FOUND", "Requested entity was not found.")
			return
		}
		r.URL.Path = rest
		r.Header.Del("Authorization")
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestGoogleManagedPrometheus reads the managed service's API with the
// run's Google token, and says what to do when Google refuses it.
func TestGoogleManagedPrometheus(t *testing.T) {
	promserver.Require(t)
	now := time.Now().Truncate(time.Second)
	prom, err := promserver.Start(t.Context(), t.TempDir(), callSeries(now, "prod", 0.05, 0.01))
	assert.NilError(t, err)
	defer prom.Stop()
	front := googleFront(t, prom.URL(), "desivocalprod01", "ya29.good", "ya29.denied")
	base := front.URL + "/v1/projects/desivocalprod01/location/global/prometheus"
	w := analysis.Window{Start: now.Add(-time.Minute), End: now, Step: 30 * time.Second}
	query := func(token string) error {
		var ts oauth2.TokenSource
		if token != "" {
			ts = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token})
		}
		c := analysis.NewClient(t.Context(), base, ts, "gke-githubactions-svc-prod@desivocalprod01.iam.gserviceaccount.com")
		_, err := c.QueryRange(t.Context(), `sum(rate(calls_total{version="canary"}[1m]))`, w)
		return err
	}
	assert.NilError(t, query("ya29.good"))
	err = query("ya29.denied")
	assert.ErrorContains(t, err, "refused gke-githubactions-svc-prod@desivocalprod01.iam.gserviceaccount.com (403 PERMISSION_DENIED: Permission monitoring.timeSeries.list denied")
	assert.ErrorContains(t, err, "grant it roles/monitoring.viewer")
	err = query("ya29.stale")
	assert.ErrorContains(t, err, "(401 UNAUTHENTICATED: Request had invalid authentication credentials")
	assert.ErrorContains(t, err, "refused the run's Google token")
	err = query("")
	assert.ErrorContains(t, err, "wants credentials (401 UNAUTHENTICATED: Request is missing required authentication credential")
	assert.ErrorContains(t, err, "ringg-ci sends a Google token only to Managed Service for Prometheus")
	assert.Assert(t, analysis.IsGoogle(targets.GoogleManagedPrometheus("p")))
	assert.Assert(t, !analysis.IsGoogle(base))
}
