// Package analysis judges a canary against stable by the metrics the team
// already has: PromQL queries (targets.Query) run against a
// Prometheus-compatible HTTP API — Google Managed Service for Prometheus
// with the run's Google token in production, any Prometheus on a laptop —
// each evaluated for the canary's pods and for stable's over a window,
// sampled at a step, and held to a threshold on the ratio or the increase.
//
// Observe reads; Judge decides, with no I/O, and returns the verdict table
// that promote prints and records.
package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Window is the time range queries are sampled over, every Step.
type Window struct {
	Start, End time.Time
	Step       time.Duration
}

// Point is one sample of a series.
type Point struct {
	T time.Time
	V float64
}

// Series is one series a query returned.
type Series struct {
	Labels map[string]string
	Points []Point
}

// Querier runs a PromQL range query.
type Querier interface {
	QueryRange(ctx context.Context, expr string, w Window) ([]Series, error)
}

// ErrQuery means the API refused or failed a query; the error says why.
var ErrQuery = errors.New("metrics query failed")

// Client queries a Prometheus-compatible HTTP API (…/api/v1/query_range).
type Client struct {
	// URL is the API's base, e.g. http://localhost:9090 or
	// https://monitoring.googleapis.com/v1/projects/P/location/global/prometheus.
	URL string
	// HTTP sends the requests; it carries the credentials.
	HTTP *http.Client
	// Identity names who the credentials are (a service account), for an
	// error that says whom to grant access; empty when unknown.
	Identity string
	// Token says whether HTTP sends a Google token.
	Token bool
}

// NewClient returns a client for url. With a token source every request
// carries its token (Google Managed Service for Prometheus); without, none.
func NewClient(ctx context.Context, url string, ts oauth2.TokenSource, identity string) *Client {
	hc := &http.Client{Timeout: 30 * time.Second}
	if ts != nil {
		hc.Transport = &oauth2.Transport{Source: ts, Base: http.DefaultTransport}
	}
	return &Client{URL: strings.TrimRight(url, "/"), HTTP: hc, Identity: identity, Token: ts != nil}
}

// IsGoogle reports whether url is Google Managed Service for Prometheus,
// which needs a Google token.
func IsGoogle(u string) bool {
	p, err := url.Parse(u)
	return err == nil && p.Host == "monitoring.googleapis.com"
}

// QueryRange runs expr over w.
func (c *Client) QueryRange(ctx context.Context, expr string, w Window) ([]Series, error) {
	form := url.Values{
		"query": {expr},
		"start": {unixText(w.Start)},
		"end":   {unixText(w.End)},
		"step":  {strconv.FormatFloat(w.Step.Seconds(), 'f', -1, 64)},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+"/api/v1/query_range", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("%w: build the request to %s: %v", ErrQuery, c.URL, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: reach %s: %v; check the URL (--prometheus-url, or the target's metrics url) and that it is reachable from where the run happens", ErrQuery, c.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: read the answer of %s: %v", ErrQuery, c.URL, err)
	}
	var out apiResponse
	jerr := json.Unmarshal(body, &out)
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, c.authError(resp.StatusCode, body)
	case jerr != nil:
		return nil, fmt.Errorf("%w: %s answered %d, not the Prometheus API's JSON (%s): is %s a Prometheus API base URL?",
			ErrQuery, c.URL, resp.StatusCode, shorten(string(body), 200), c.URL)
	case out.Status != "success":
		return nil, fmt.Errorf("%w: %s: %s (%s): fix the query", ErrQuery, expr, out.Error, out.ErrorType)
	case out.Data.ResultType != "matrix":
		return nil, fmt.Errorf("%w: %s returned a %s, not a range of samples", ErrQuery, expr, out.Data.ResultType)
	}
	series := make([]Series, 0, len(out.Data.Result))
	for _, r := range out.Data.Result {
		s := Series{Labels: r.Metric}
		for _, v := range r.Values {
			p, err := v.point()
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrQuery, expr, err)
			}
			s.Points = append(s.Points, p)
		}
		series = append(series, s)
	}
	return series, nil
}

// authError says what to do about a refused token: Google's API answers
// 401 UNAUTHENTICATED for a missing or invalid token and 403
// PERMISSION_DENIED for an identity without monitoring.timeSeries.list.
func (c *Client) authError(code int, body []byte) error {
	var g struct {
		Error struct {
			Message string `json:"message"`
			Status  string `json:"status"`
		} `json:"error"`
	}
	msg := shorten(strings.TrimSpace(string(body)), 300)
	if json.Unmarshal(body, &g) == nil && g.Error.Message != "" {
		msg = g.Error.Status + ": " + g.Error.Message
	}
	who := c.Identity
	if who == "" {
		who = "the run's identity"
	}
	if code == http.StatusUnauthorized {
		if c.Token {
			return fmt.Errorf("%w: %s refused the run's Google token (401 %s): it is invalid or expired; check the run's Google credentials (Workload Identity, --credentials-json, --access-token)", ErrQuery, c.URL, msg)
		}
		return fmt.Errorf("%w: %s wants credentials (401 %s), and ringg-ci sends a Google token only to Managed Service for Prometheus (monitoring.googleapis.com): use that, or an API that needs none", ErrQuery, c.URL, msg)
	}
	return fmt.Errorf("%w: %s refused %s (403 %s): grant it roles/monitoring.viewer in the project whose metrics it reads", ErrQuery, c.URL, who, msg)
}

type apiResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Values []sample          `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

// sample is [unix seconds, "value"] as the API writes it.
type sample [2]any

func (s sample) point() (Point, error) {
	ts, ok := s[0].(float64)
	text, ok2 := s[1].(string)
	if !ok || !ok2 {
		return Point{}, fmt.Errorf("sample %v is not [time, \"value\"]", s)
	}
	v, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return Point{}, fmt.Errorf("sample value %q: %v", text, err)
	}
	sec, frac := math.Modf(ts)
	return Point{T: time.Unix(int64(sec), int64(math.Round(frac*1e3))*int64(time.Millisecond)), V: v}, nil
}

func unixText(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
