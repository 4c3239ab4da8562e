package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"

	"github.com/ringg/ringg-ci/examples/chatbot/server"
)

// waitLimit bounds every wait in these tests.
const waitLimit = 10 * time.Second

// exitLimit bounds the wait for a server to stop, far above any drain the
// tests ask for.
const exitLimit = time.Minute

// syncBuffer collects logs written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// records returns the JSON log records whose msg is msg.
func (b *syncBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		assert.NilError(t, json.Unmarshal([]byte(line), &rec), "log line %q", line)
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// harness is a Server running on a loopback listener.
type harness struct {
	srv     *server.Server
	base    string
	marker  string
	logs    *syncBuffer
	sigterm context.CancelFunc
	done    chan error
}

type harnessOptions struct {
	deadline time.Duration
	now      func() time.Time
	env      map[string]string
	creds    string
	// closeCallsAfter is the CLOSE_CALLS_AFTER_SECONDS fault.
	closeCallsAfter time.Duration
}

func start(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	if o.deadline == 0 {
		o.deadline = time.Minute
	}
	cfg := server.Config{
		DrainDeadline:   o.deadline,
		DrainMarkerPath: filepath.Join(t.TempDir(), "DRaining"),
		CredsPath:       o.creds,
		LoggerName:      "pipecat-test",
		ExpectedEnv:     server.DefaultExpectedEnv(),
		CloseCallsAfter: o.closeCallsAfter,
	}
	if cfg.CredsPath == "" {
		cfg.CredsPath = filepath.Join(t.TempDir(), "creds.json")
	}
	logs := &syncBuffer{}
	srv := server.New(server.Options{
		Config: cfg,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Now:    o.now,
		Getenv: func(k string) string { return o.env[k] },
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{srv: srv, base: "http://" + ln.Addr().String(), marker: cfg.DrainMarkerPath, logs: logs, sigterm: cancel, done: make(chan error, 1)}
	go func() { h.done <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(waitLimit):
			t.Error("server did not stop")
		}
	})
	return h
}

func (h *harness) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(h.base + path)
	assert.NilError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	assert.NilError(t, err)
	return resp.StatusCode, string(body)
}

func (h *harness) dial(t *testing.T, path string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	return websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.base, "http")+path, nil)
}

func (h *harness) call(t *testing.T) *websocket.Conn {
	t.Helper()
	conn, _, err := h.dial(t, "/pc/v1/ws")
	assert.NilError(t, err)
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

// waitExit waits for Run to return and returns its error. How soon it
// returned is told by the logs ("drain deadline reached" or not), never by
// the clock: exitLimit only keeps a broken server from hanging the test.
func (h *harness) waitExit(t *testing.T) error {
	t.Helper()
	select {
	case err := <-h.done:
		h.done <- err // let Cleanup see it too
		return err
	case <-time.After(exitLimit):
		t.Fatalf("server still running after %v", exitLimit)
		return nil
	}
}

// waitFor polls cond every 10 ms for up to waitLimit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if cond() {
			return poll.Success()
		}
		return poll.Continue("waiting for %s", what)
	}, poll.WithTimeout(waitLimit), poll.WithDelay(10*time.Millisecond))
}

func echo(t *testing.T, conn *websocket.Conn, text string) server.EchoReply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	assert.NilError(t, conn.Write(ctx, websocket.MessageText, []byte(text)))
	typ, data, err := conn.Read(ctx)
	assert.NilError(t, err)
	assert.Equal(t, typ, websocket.MessageText)
	var reply server.EchoReply
	assert.NilError(t, json.Unmarshal(data, &reply))
	return reply
}

// readClose reads until the server closes the call and returns the close error.
func readClose(t *testing.T, conn *websocket.Conn) websocket.CloseError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, _, err := conn.Read(ctx)
	var ce websocket.CloseError
	assert.Assert(t, errors.As(err, &ce), "read error %v is not a close", err)
	return ce
}

type drainBody struct {
	Status      string `json:"status"`
	Draining    bool   `json:"draining"`
	ActiveCalls int    `json:"active_calls"`
}

func decode(t *testing.T, body string) drainBody {
	t.Helper()
	var b drainBody
	assert.NilError(t, json.Unmarshal([]byte(body), &b), "body %q", body)
	return b
}

func TestHealthGoesUnavailableOnDrain(t *testing.T) {
	h := start(t, harnessOptions{})
	paths := []struct {
		path                  string
		before, whileDraining int
	}{
		{"/healthcheck", 200, 503},
		{"/pc/v1/healthcheck", 200, 503},
		{"/ready", 200, 503},
		{"/pc/v1/ready", 200, 503},
		{"/live", 200, 200},
		{"/pc/v1/live", 200, 200},
	}
	for _, p := range paths {
		t.Run("before drain "+p.path, func(t *testing.T) {
			code, _ := h.get(t, p.path)
			assert.Equal(t, code, p.before)
		})
	}
	code, body := h.get(t, "/pc/v1/healthcheck")
	assert.Equal(t, code, 200)
	assert.DeepEqual(t, decode(t, body), drainBody{Status: "ok"})

	code, body = h.get(t, "/drain/start")
	assert.Equal(t, code, 200)
	assert.DeepEqual(t, decode(t, body), drainBody{Draining: true})
	assert.Assert(t, h.srv.Draining())

	for _, p := range paths {
		t.Run("while draining "+p.path, func(t *testing.T) {
			code, _ := h.get(t, p.path)
			assert.Equal(t, code, p.whileDraining)
		})
	}
	code, body = h.get(t, "/pc/v1/healthcheck")
	assert.Equal(t, code, 503)
	assert.DeepEqual(t, decode(t, body), drainBody{Status: "draining", Draining: true})
	assert.Equal(t, len(h.logs.records(t, "drain started")), 1)
}

func TestDrainStartTouchesMarker(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "DRaining")
	srv := server.New(server.Options{Config: server.Config{DrainDeadline: time.Minute, DrainMarkerPath: marker}})
	_, err := os.Stat(marker)
	assert.Assert(t, errors.Is(err, os.ErrNotExist))

	assert.Assert(t, srv.StartDrain(server.DrainFromPreStop))
	_, err = os.Stat(marker)
	assert.NilError(t, err)
	assert.Assert(t, !srv.StartDrain(server.DrainFromSignal), "a second drain must not restart the first")
}

func TestDrainStartReportsActiveCalls(t *testing.T) {
	h := start(t, harnessOptions{})
	first, second := h.call(t), h.call(t)
	echo(t, first, "one")
	echo(t, second, "two")

	for _, path := range []string{"/pc/v1/drain/start", "/drain/start"} {
		code, body := h.get(t, path)
		assert.Equal(t, code, 200)
		assert.DeepEqual(t, decode(t, body), drainBody{Draining: true, ActiveCalls: 2})
	}

	assert.NilError(t, first.Close(websocket.StatusNormalClosure, "bye"))
	waitFor(t, "one call left", func() bool { return h.srv.ActiveCalls() == 1 })
	_, body := h.get(t, "/pc/v1/drain/start")
	assert.DeepEqual(t, decode(t, body), drainBody{Draining: true, ActiveCalls: 1})
}

func TestEcho(t *testing.T) {
	h := start(t, harnessOptions{})
	for _, path := range []string{"/ws", "/pc/v1/ws"} {
		t.Run(path, func(t *testing.T) {
			conn, _, err := h.dial(t, path)
			assert.NilError(t, err)
			defer conn.CloseNow()

			reply := echo(t, conn, "hello")
			assert.Equal(t, reply.Type, "echo")
			assert.Equal(t, reply.Text, "hello")

			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			audio := []byte{0, 1, 2, 255}
			assert.NilError(t, conn.Write(ctx, websocket.MessageBinary, audio))
			typ, data, err := conn.Read(ctx)
			assert.NilError(t, err)
			assert.Equal(t, typ, websocket.MessageBinary)
			assert.DeepEqual(t, data, audio)
			assert.NilError(t, conn.Close(websocket.StatusNormalClosure, "bye"))
		})
	}
}

func TestLiveCallSurvivesDrain(t *testing.T) {
	h := start(t, harnessOptions{deadline: time.Minute})
	caller, hungUp := h.call(t), h.call(t)
	echo(t, caller, "before drain")
	echo(t, hungUp, "before drain")

	code, _ := h.get(t, "/pc/v1/drain/start")
	assert.Equal(t, code, 200)

	t.Run("live calls keep echoing", func(t *testing.T) {
		assert.Equal(t, echo(t, caller, "during drain").Text, "during drain")
		assert.Equal(t, echo(t, hungUp, "during drain").Text, "during drain")
	})
	t.Run("new calls are refused with 503", func(t *testing.T) {
		for _, path := range []string{"/ws", "/pc/v1/ws"} {
			_, resp, err := h.dial(t, path)
			assert.Assert(t, err != nil)
			assert.Assert(t, resp != nil, "no HTTP response: %v", err)
			assert.Equal(t, resp.StatusCode, http.StatusServiceUnavailable)
		}
		assert.Equal(t, h.srv.ActiveCalls(), 2)
	})
	t.Run("the client hangs up with a normal close", func(t *testing.T) {
		assert.NilError(t, caller.Close(websocket.StatusNormalClosure, "bye"))
		waitFor(t, "one call left", func() bool { return h.srv.ActiveCalls() == 1 })
	})
	t.Run("the bot hangs up with a normal close", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		assert.NilError(t, hungUp.Write(ctx, websocket.MessageText, []byte("hangup")))
		ce := readClose(t, hungUp)
		assert.Equal(t, ce.Code, websocket.StatusNormalClosure)
		waitFor(t, "no call left", func() bool { return h.srv.ActiveCalls() == 0 })
	})

	var ended []float64
	for _, rec := range h.logs.records(t, "call ended") {
		ended = append(ended, rec["close_code"].(float64))
	}
	assert.DeepEqual(t, ended, []float64{1000, 1000})

	// SIGTERM after the calls ended: the server exits without waiting for
	// its one-minute deadline, which would have logged reaching it.
	h.sigterm()
	assert.NilError(t, h.waitExit(t))
	assert.Equal(t, len(h.logs.records(t, "drain started")), 1)
	assert.Equal(t, len(h.logs.records(t, "shutdown complete")), 1)
	assert.Equal(t, len(h.logs.records(t, "drain deadline reached; closing remaining calls")), 0)
}

func TestSignalDrainClosesRemainingCallsAtDeadline(t *testing.T) {
	h := start(t, harnessOptions{deadline: 300 * time.Millisecond})
	conn := h.call(t)
	echo(t, conn, "hello")

	begin := time.Now()
	h.sigterm()
	waitFor(t, "drain", h.srv.Draining)
	_, resp, err := h.dial(t, "/ws")
	assert.Assert(t, err != nil)
	assert.Assert(t, resp != nil, "no HTTP response: %v", err)
	assert.Equal(t, resp.StatusCode, http.StatusServiceUnavailable)

	ce := readClose(t, conn)
	assert.Equal(t, ce.Code, websocket.StatusGoingAway)
	assert.Equal(t, ce.Reason, "server draining")
	assert.Assert(t, time.Since(begin) >= 300*time.Millisecond, "closed before the deadline")
	assert.NilError(t, h.waitExit(t))

	ended := h.logs.records(t, "call ended")
	assert.Equal(t, len(ended), 1)
	assert.Equal(t, ended[0]["close_code"], float64(1001))
	assert.Equal(t, ended[0]["ended_by"], "drain deadline")
}

func TestPreStopDeadlineClosesCallsAndKeepsServing(t *testing.T) {
	h := start(t, harnessOptions{deadline: 200 * time.Millisecond})
	conn := h.call(t)
	echo(t, conn, "hello")

	_, body := h.get(t, "/pc/v1/drain/start")
	assert.DeepEqual(t, decode(t, body), drainBody{Draining: true, ActiveCalls: 1})
	assert.Equal(t, readClose(t, conn).Code, websocket.StatusGoingAway)
	waitFor(t, "no call left", func() bool { return h.srv.ActiveCalls() == 0 })

	// The preStop script now sees 0 calls and returns; the server waits for SIGTERM.
	code, body := h.get(t, "/pc/v1/drain/start")
	assert.Equal(t, code, 200)
	assert.DeepEqual(t, decode(t, body), drainBody{Draining: true})
	code, _ = h.get(t, "/pc/v1/healthcheck")
	assert.Equal(t, code, 503)
	select {
	case err := <-h.done:
		t.Fatalf("server stopped before SIGTERM: %v", err)
	default:
	}
	h.sigterm()
	assert.NilError(t, h.waitExit(t))
}

func TestSignalAfterPreStopKeepsTheSameDeadline(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	h := start(t, harnessOptions{deadline: time.Hour, now: clock.Now})
	conn := h.call(t)
	echo(t, conn, "hello")

	_, _ = h.get(t, "/pc/v1/drain/start")
	clock.Advance(time.Hour - 100*time.Millisecond)
	h.sigterm()

	// Restarting the clock at SIGTERM would keep the call open for another hour.
	assert.Equal(t, readClose(t, conn).Code, websocket.StatusGoingAway)
	assert.NilError(t, h.waitExit(t))
	assert.Equal(t, len(h.logs.records(t, "drain started")), 1)
}

func TestCheckHealth(t *testing.T) {
	h := start(t, harnessOptions{})
	client := &http.Client{Timeout: waitLimit}
	ctx := context.Background()

	assert.NilError(t, server.CheckHealth(ctx, client, h.base))
	h.srv.StartDrain(server.DrainFromPreStop)
	assert.ErrorContains(t, server.CheckHealth(ctx, client, h.base), "status 503, want 200")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	closed := "http://" + ln.Addr().String()
	assert.NilError(t, ln.Close())
	err = server.CheckHealth(ctx, client, closed)
	assert.Assert(t, is.ErrorContains(err, "is the chatbot running?"))
}
