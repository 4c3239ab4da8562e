package chart_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"

	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/internal/lockedbuffer"
)

// drainCommand renders the stable Deployment's preStop command for an app on
// port with the given drain deadline, polling every second.
func drainCommand(t *testing.T, port, deadline int) []string {
	t.Helper()
	m := mustRender(t, target(t, targets.Stable), pipelineValues(map[string]any{
		"containerPort": port,
		"drain":         map[string]any{"deadlineSeconds": deadline, "pollSeconds": 1},
	}))
	c := deployment(t, m).Spec.Template.Spec.Containers[0]
	assert.Assert(t, c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Exec != nil)
	return c.Lifecycle.PreStop.Exec.Command
}

func python(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"python3", "python"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no python on PATH: the preStop program cannot run here")
	return ""
}

// preStop is the rendered preStop program running against an app.
type preStop struct {
	out  lockedbuffer.Buffer
	done chan error
}

// runPreStop starts the preStop program for the app on port.
func runPreStop(t *testing.T, port, deadline int) *preStop {
	t.Helper()
	cmd := drainCommand(t, port, deadline)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p := &preStop{done: make(chan error, 1)}
	c := exec.CommandContext(ctx, python(t), cmd[1:]...)
	c.Stdout, c.Stderr = &p.out, &p.out
	assert.NilError(t, c.Start())
	go func() { p.done <- c.Wait() }()
	return p
}

// wait waits for the program to exit (it always exits by its deadline).
func (p *preStop) wait(t *testing.T) string {
	t.Helper()
	select {
	case err := <-p.done:
		assert.NilError(t, err, "preStop output: %s", p.out.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("preStop still running after 2 minutes; output: %s", p.out.String())
	}
	return p.out.String()
}

// reply is one answer of a fake app; the last one of a list repeats.
type reply struct {
	status int
	body   string
}

// fakeApp answers the drain and status paths as one of the app's versions
// does, counting the requests.
type fakeApp struct {
	mu             sync.Mutex
	drain, status  []reply
	drains, polls  int
	unexpectedPath string
}

func (a *fakeApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	var rep reply
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/pc/v1/drain/start":
		a.drains++
		rep = a.drain[min(a.drains, len(a.drain))-1]
	case r.Method == http.MethodGet && r.URL.Path == "/pc/v1/healthcheck":
		a.polls++
		rep = a.status[min(a.polls, len(a.status))-1]
	default:
		a.unexpectedPath = r.Method + " " + r.URL.Path
		rep = reply{http.StatusTeapot, "unexpected"}
	}
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	fmt.Fprint(w, rep.body)
}

// brokenApp answers every request with the same raw bytes, then closes
// the connection.
type brokenApp struct {
	port int
	mu   sync.Mutex
	n    int
}

func (a *brokenApp) requests() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

func rawApp(t *testing.T, answer string) *brokenApp {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	a := &brokenApp{port: l.Addr().(*net.TCPAddr).Port}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
					return
				}
				a.mu.Lock()
				a.n++
				a.mu.Unlock()
				_, _ = io.WriteString(conn, answer)
			}()
		}
	}()
	return a
}

func port(t *testing.T, url string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(strings.TrimPrefix(url, "http://"))
	assert.NilError(t, err)
	n, err := strconv.Atoi(p)
	assert.NilError(t, err)
	return n
}

// TestDrainScript runs the rendered preStop program with a local python
// against loopback stand-ins for both versions of the real app
// (production.md) and apps that report their calls. Whether it stopped
// because the app said it had no calls or because its deadline passed is
// read from what it logged and how often it asked, never from how long it
// took: a deadline it should not have reached fails the test by its log.
func TestDrainScript(t *testing.T) {
	notFound := reply{404, `{"detail":"Not Found"}`}
	cases := []struct {
		name          string
		drain, status []reply
		deadline      int
		// want are lines of the program's log, in order.
		want []string
		// drains and polls are the exact requests; polls -1 means at least 1.
		drains, polls int
	}{
		{
			name:  "older server: no drain endpoint, health without calls",
			drain: []reply{notFound}, status: []reply{{200, `{"status":"ok"}`}},
			deadline: 2,
			want:     []string{"drain: no drain endpoint (/pc/v1/drain/start: 404): waiting for the app to report no active calls, at most 2 s", "drain: deadline of 2 s passed; calls may still be active"},
			drains:   1, polls: -1,
		},
		{
			name:  "newer server: drain endpoint, readiness 503, no call count",
			drain: []reply{{200, `{"status":"draining"}`}}, status: []reply{{503, `{"status":"draining"}`}},
			deadline: 2,
			want:     []string{"drain: started (/pc/v1/drain/start: 200)", "drain: deadline of 2 s passed; calls may still be active"},
			drains:   1, polls: -1,
		},
		{
			name:  "calls reported ending",
			drain: []reply{{200, `{"draining": true, "active_calls": 2}`}}, status: []reply{{503, `{"active_calls": 1}`}, {503, `{"active_calls": 0}`}},
			deadline: 60,
			want:     []string{"drain: started (/pc/v1/drain/start: 200)", "drain: no active calls"},
			drains:   1, polls: 2,
		},
		{
			name:  "older server that reports calls in its health body",
			drain: []reply{notFound}, status: []reply{{200, `{"status":"ok","active_calls":1}`}, {200, `{"status":"ok","active_calls":0}`}},
			deadline: 60,
			want:     []string{"drain: no drain endpoint (/pc/v1/drain/start: 404): waiting for the app to report no active calls, at most 60 s", "drain: no active calls"},
			drains:   1, polls: 2,
		},
		{
			name:  "no calls when the drain starts",
			drain: []reply{{200, `{"draining":true,"active_calls":0}`}}, status: []reply{{503, `{"active_calls": 5}`}},
			deadline: 60,
			want:     []string{"drain: started (/pc/v1/drain/start: 200)", "drain: no active calls"},
			drains:   1, polls: 0,
		},
		{
			name:  "answers that are not JSON tell nothing",
			drain: []reply{{200, `ok`}}, status: []reply{{503, `<html>draining</html>`}},
			deadline: 2,
			want:     []string{"drain: started (/pc/v1/drain/start: 200)", "drain: deadline of 2 s passed; calls may still be active"},
			drains:   1, polls: -1,
		},
		{
			name:  "a boolean is not a count",
			drain: []reply{{200, `{"active_calls": false}`}}, status: []reply{{503, `{"active_calls": false}`}},
			deadline: 2,
			want:     []string{"drain: started (/pc/v1/drain/start: 200)", "drain: deadline of 2 s passed; calls may still be active"},
			drains:   1, polls: -1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			app := &fakeApp{drain: tc.drain, status: tc.status}
			srv := httptest.NewServer(app)
			t.Cleanup(srv.Close)
			out := runPreStop(t, port(t, srv.URL), tc.deadline).wait(t)
			assert.DeepEqual(t, strings.Split(strings.TrimSpace(out), "\n"), tc.want)
			app.mu.Lock()
			defer app.mu.Unlock()
			assert.Equal(t, app.unexpectedPath, "")
			assert.Equal(t, app.drains, tc.drains)
			if tc.polls < 0 {
				assert.Assert(t, app.polls >= 1, "polled %d times", app.polls)
			} else {
				assert.Equal(t, app.polls, tc.polls)
			}
		})
	}

	// Answers that break HTTP itself (Python raises http.client's
	// BadStatusLine or IncompleteRead, which are not OSErrors) are failed
	// polls like any other: the program keeps asking until its deadline
	// and exits 0, so the kubelet does not send SIGTERM early.
	broken := []struct{ name, answer string }{
		{"bad status line", "garbage\r\n\r\n"},
		{"body cut short", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"active_calls\""},
		{"error body cut short", "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"active_calls\""},
	}
	for _, tc := range broken {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			app := rawApp(t, tc.answer)
			out := runPreStop(t, app.port, 2).wait(t)
			assert.Equal(t, strings.TrimSpace(out), "drain: deadline of 2 s passed; calls may still be active")
			assert.Assert(t, app.requests() >= 2, "asked %d times: a broken answer must not end the program", app.requests())
		})
	}

	t.Run("app gone", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		assert.NilError(t, err)
		p := l.Addr().(*net.TCPAddr).Port
		assert.NilError(t, l.Close())
		out := runPreStop(t, p, 60).wait(t)
		assert.Equal(t, strings.TrimSpace(out), "drain: the app is gone")
	})
}

// TestDrainScriptWithTheStandIn runs the rendered preStop program against
// the stand-in chatbot (examples/chatbot, built from source) holding a live
// WebSocket call: the program starts the drain, keeps waiting while the call
// lasts, and stops as soon as the caller hangs up.
func TestDrainScriptWithTheStandIn(t *testing.T) {
	python(t) // skips without python
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go on PATH: cannot build the stand-in")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "chatbot")
	build := exec.Command(goBin, "build", "-o", bin, ".")
	build.Dir = filepath.Join("..", "..", "examples", "chatbot")
	build.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	assert.NilError(t, err, "build the stand-in: %s", out)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	appPort := l.Addr().(*net.TCPAddr).Port
	assert.NilError(t, l.Close())
	marker := filepath.Join(dir, "DRaining")
	app := exec.Command(bin)
	app.Env = []string{"HOST=127.0.0.1", "PORT=" + strconv.Itoa(appPort), "DRAIN_DEADLINE_SECONDS=60", "DRAIN_MARKER_PATH=" + marker, "CREDS_PATH=" + filepath.Join(dir, "creds.json")}
	var logs lockedbuffer.Buffer
	app.Stdout, app.Stderr = &logs, &logs
	assert.NilError(t, app.Start())
	t.Cleanup(func() {
		_ = app.Process.Kill()
		_ = app.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(appPort))
	health := func() (int, string) {
		resp, err := http.Get("http://" + addr + "/pc/v1/healthcheck")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, strings.TrimSpace(b.String())
	}
	waitUntil(t, "the stand-in serves", func() bool { code, _ := health(); return code == http.StatusOK })

	call, code := dialCall(t, addr)
	assert.Equal(t, code, http.StatusSwitchingProtocols)
	waitUntil(t, "the call counted", func() bool { _, body := health(); return strings.Contains(body, `"active_calls":1`) })

	p := runPreStop(t, appPort, 30)
	waitUntil(t, "the drain started", func() bool {
		code, body := health()
		return code == http.StatusServiceUnavailable && strings.Contains(body, `"active_calls":1`)
	})
	waitUntil(t, "the drain marker", func() bool { _, err := os.Stat(marker); return err == nil })
	refused, code := dialCall(t, addr)
	refused.Close()
	assert.Equal(t, code, http.StatusServiceUnavailable, "a new call while draining")

	// Two polls with the call still live: the program must still wait.
	time.Sleep(2500 * time.Millisecond)
	select {
	case err := <-p.done:
		t.Fatalf("preStop returned while a call was live (%v): %s", err, p.out.String())
	default:
	}
	assert.NilError(t, call.Close())
	got := p.wait(t)
	assert.DeepEqual(t, strings.Split(strings.TrimSpace(got), "\n"), []string{"drain: started (/pc/v1/drain/start: 200)", "drain: no active calls"})
	assert.Assert(t, is.Contains(logs.String(), `"source":"prestop"`))
	assert.Assert(t, is.Contains(logs.String(), `"msg":"drain started"`))
}

// dialCall opens a WebSocket call by hand (no client library in this
// module) and returns the connection and the HTTP status of the upgrade.
func dialCall(t *testing.T, addr string) (net.Conn, int) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	assert.NilError(t, err)
	fmt.Fprintf(conn, "GET /pc/v1/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	assert.NilError(t, err)
	return conn, resp.StatusCode
}

// waitUntil polls cond every 20 ms for up to a minute.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if cond() {
			return poll.Success()
		}
		return poll.Continue("no %s yet", what)
	}, poll.WithTimeout(time.Minute), poll.WithDelay(20*time.Millisecond))
}
