package server_test

import (
	"net/http"
	"os"
	"testing"

	"github.com/coder/websocket"
	"gotest.tools/v3/assert"
)

// TestContract walks the clauses of docs/app-contract.md the stand-in
// answers for over HTTP, numbered as there. Clause 6 (its own deadline) is
// TestSignalAfterPreStopKeepsTheSameDeadline and
// TestPreStopDeadlineClosesCallsAndKeepsServing; clause 7 (SIGTERM) is
// TestSignalDrainClosesRemainingCallsAtDeadline and, for the process,
// TestSIGTERMDrainsThenExitsZero; the chart's preStop program is run
// against the stand-in in runner/chart/drain_test.go.
func TestContract(t *testing.T) {
	h := start(t, harnessOptions{})
	health := func() (int, drainBody) {
		code, body := h.get(t, "/pc/v1/healthcheck")
		return code, decode(t, body)
	}

	t.Run("1 serves HTTP and WebSocket calls under /pc/v1", func(t *testing.T) {
		code, _ := h.get(t, "/pc/v1/healthcheck")
		assert.Equal(t, code, http.StatusOK)
		conn := h.call(t)
		assert.Equal(t, echo(t, conn, "hi").Text, "hi")
		assert.NilError(t, conn.Close(websocket.StatusNormalClosure, "bye"))
		waitFor(t, "the call to end", func() bool { return h.srv.ActiveCalls() == 0 })
	})

	call := h.call(t)
	echo(t, call, "hello")
	t.Run("2 and 5: health 200 with the live calls counted", func(t *testing.T) {
		code, b := health()
		assert.Equal(t, code, http.StatusOK)
		assert.Equal(t, b.ActiveCalls, 1)
	})

	t.Run("4 and 5: drain start reports the calls and starts the drain once", func(t *testing.T) {
		for range 2 {
			code, body := h.get(t, "/pc/v1/drain/start")
			assert.Equal(t, code, http.StatusOK)
			assert.DeepEqual(t, decode(t, body), drainBody{Draining: true, ActiveCalls: 1})
		}
		assert.Equal(t, len(h.logs.records(t, "drain started")), 1)
	})

	t.Run("2 and 5: health 503 while draining, still counting", func(t *testing.T) {
		code, b := health()
		assert.Equal(t, code, http.StatusServiceUnavailable)
		assert.Equal(t, b.ActiveCalls, 1)
	})

	t.Run("4: new calls refused, live calls go on", func(t *testing.T) {
		_, resp, err := h.dial(t, "/pc/v1/ws")
		assert.Assert(t, err != nil)
		assert.Assert(t, resp != nil, "no HTTP response: %v", err)
		assert.Equal(t, resp.StatusCode, http.StatusServiceUnavailable)
		assert.Equal(t, echo(t, call, "still here").Text, "still here")
	})

	t.Run("5: the count drops to 0 when the last call ends", func(t *testing.T) {
		assert.NilError(t, call.Close(websocket.StatusNormalClosure, "bye"))
		waitFor(t, "no active calls", func() bool { _, b := health(); return b.ActiveCalls == 0 })
		_, body := h.get(t, "/pc/v1/drain/start")
		assert.DeepEqual(t, decode(t, body), drainBody{Draining: true, ActiveCalls: 0})
	})

	t.Run("9: the drain marker is touched", func(t *testing.T) {
		_, err := os.Stat(h.marker)
		assert.NilError(t, err)
	})
}
