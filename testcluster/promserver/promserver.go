// Package promserver starts a real Prometheus server on series a test
// writes: the series become OpenMetrics text, `promtool tsdb
// create-blocks-from openmetrics` turns it into TSDB blocks, and Prometheus
// serves them on 127.0.0.1, so queries, label matching and thresholds meet
// the real query engine. The binaries come from Debian's prometheus package
// (apt-get install prometheus), found on PATH or in $RINGG_PROMETHEUS_BIN.
//
// Samples may lie in the future: Prometheus answers queries over any time
// its blocks cover, so a test's "now" can be inside the series.
package promserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// EnvBin names a directory holding prometheus and promtool, instead of PATH.
const EnvBin = "RINGG_PROMETHEUS_BIN"

// EnvRequire, when set, makes Require fail a test rather than skip it when
// the binaries are missing: CI installs them (.ci/run).
const EnvRequire = "RINGG_REQUIRE_PROMETHEUS"

// ErrNotInstalled means prometheus or promtool was not found.
var ErrNotInstalled = errors.New("prometheus is not installed")

// Point is one sample.
type Point struct {
	T time.Time
	V float64
}

// Series is one time series: a metric name, its labels and its samples.
// A name ending in _total is written as a counter, any other as a gauge.
type Series struct {
	Name   string
	Labels map[string]string
	Points []Point
}

// Every returns points from start to end (inclusive) every step, valued by
// f at each point's time.
func Every(start, end time.Time, step time.Duration, f func(time.Time) float64) []Point {
	var ps []Point
	for t := start; !t.After(end); t = t.Add(step) {
		ps = append(ps, Point{T: t, V: f(t)})
	}
	return ps
}

// Binaries finds prometheus and promtool.
func Binaries() (prometheus, promtool string, err error) {
	find := func(name string) (string, error) {
		if dir := os.Getenv(EnvBin); dir != "" {
			p := filepath.Join(dir, name)
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("%w: %s has no %s (%s): install Debian's prometheus package or fix %s", ErrNotInstalled, dir, name, err, EnvBin)
			}
			return p, nil
		}
		p, err := exec.LookPath(name)
		if err != nil {
			return "", fmt.Errorf("%w: %s is not on PATH: apt-get install prometheus (Debian), or set %s to a directory holding prometheus and promtool", ErrNotInstalled, name, EnvBin)
		}
		return p, nil
	}
	if prometheus, err = find("prometheus"); err != nil {
		return "", "", err
	}
	promtool, err = find("promtool")
	return prometheus, promtool, err
}

// Require returns the binaries or ends the test: a skip on a machine
// without them, a failure when EnvRequire is set (CI).
func Require(t testing.TB) {
	t.Helper()
	if _, _, err := Binaries(); err != nil {
		if os.Getenv(EnvRequire) != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// Server is a running Prometheus.
type Server struct {
	url  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// URL is the server's base URL, http://127.0.0.1:PORT.
func (s *Server) URL() string { return s.url }

// Start writes series as TSDB blocks under dir and serves them. The server
// stops with Stop, or when this process dies.
func Start(ctx context.Context, dir string, series []Series) (*Server, error) {
	prometheus, promtool, err := Binaries()
	if err != nil {
		return nil, err
	}
	om := filepath.Join(dir, "series.om")
	if err := os.WriteFile(om, []byte(OpenMetrics(series)), 0o644); err != nil {
		return nil, fmt.Errorf("write the series: %w", err)
	}
	data := filepath.Join(dir, "data")
	out, err := exec.CommandContext(ctx, promtool, "tsdb", "create-blocks-from", "openmetrics", om, data).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("promtool tsdb create-blocks-from openmetrics: %w: %s", err, out)
	}
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte("global:\n  scrape_interval: 1h\n"), 0o644); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		return nil, err
	}
	// A free port can be taken between picking it and Prometheus binding it:
	// try a few.
	var last error
	for range 3 {
		s, err := launch(ctx, prometheus, conf, data, log)
		if err == nil {
			return s, nil
		}
		last = err
	}
	log.Close()
	return nil, last
}

func launch(ctx context.Context, bin, conf, data string, log *os.File) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "--config.file="+conf, "--storage.tsdb.path="+data, "--web.listen-address="+addr,
		"--storage.tsdb.retention.time=100y", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = log, log
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &Server{url: "http://" + addr, cmd: cmd, done: make(chan struct{}), log: log}
	go func() { _ = cmd.Wait(); close(s.done) }()
	ready := func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/-/ready", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready answered %d", resp.StatusCode)
		}
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready(wctx)
		if err == nil {
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("prometheus exited before it was ready (%v); its log: %s", cmd.ProcessState, tail(log.Name()))
		case <-wctx.Done():
			s.Stop()
			return nil, fmt.Errorf("prometheus not ready on %s: %w; its log: %s", addr, err, tail(log.Name()))
		case <-tick.C:
		}
	}
}

// Stop ends the server and waits for it.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	<-s.done
	s.log.Close()
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// OpenMetrics writes series as OpenMetrics text, one family at a time, each
// series' samples in time order.
func OpenMetrics(series []Series) string {
	byFamily := map[string][]Series{}
	var families []string
	for _, s := range series {
		f, _ := family(s.Name)
		if _, ok := byFamily[f]; !ok {
			families = append(families, f)
		}
		byFamily[f] = append(byFamily[f], s)
	}
	var b strings.Builder
	w := bufio.NewWriter(&b)
	for _, f := range families {
		_, counter := family(byFamily[f][0].Name)
		kind := "gauge"
		if counter {
			kind = "counter"
		}
		fmt.Fprintf(w, "# TYPE %s %s\n", f, kind)
		for _, s := range byFamily[f] {
			pts := slices.Clone(s.Points)
			slices.SortFunc(pts, func(a, b Point) int { return a.T.Compare(b.T) })
			labels := labelText(s.Labels)
			for _, p := range pts {
				fmt.Fprintf(w, "%s%s %s %s\n", s.Name, labels, value(p.V), strconv.FormatFloat(float64(p.T.UnixMilli())/1000, 'f', 3, 64))
			}
		}
	}
	fmt.Fprintln(w, "# EOF")
	w.Flush()
	return b.String()
}

// family is the metric family a sample name belongs to: a counter's family
// drops _total.
func family(name string) (string, bool) {
	if f, ok := strings.CutSuffix(name, "_total"); ok {
		return f, true
	}
	return name, false
}

func labelText(l map[string]string) string {
	if len(l) == 0 {
		return ""
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Quote(l[k])
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func value(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
