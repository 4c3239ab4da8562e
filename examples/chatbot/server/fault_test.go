package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/examples/chatbot/server"
)

// TestCloseCallsEarlyFault: with CLOSE_CALLS_AFTER_SECONDS the stand-in
// breaks calls the way a bad LLM key or an unreachable Redis would, while its
// health check keeps answering 200: what a synthetic call catches and health
// cannot.
func TestCloseCallsEarlyFault(t *testing.T) {
	h := start(t, harnessOptions{closeCallsAfter: 200 * time.Millisecond})
	conn, _, err := h.dial(t, "/pc/v1/ws")
	assert.NilError(t, err)
	defer conn.CloseNow()
	assert.Equal(t, echo(t, conn, "hello").Text, "hello", "the call answers until the fault")

	ce := readClose(t, conn)
	assert.Equal(t, ce.Code, websocket.StatusInternalError)
	assert.Equal(t, ce.Reason, "closing calls early (CLOSE_CALLS_AFTER_SECONDS)")
	waitFor(t, "the call to end", func() bool { return h.srv.ActiveCalls() == 0 })
	ended := h.logs.records(t, "call ended")
	assert.Equal(t, len(ended), 1)
	assert.Equal(t, ended[0]["ended_by"], "closed early (CLOSE_CALLS_AFTER_SECONDS)")

	code, _ := h.get(t, "/pc/v1/healthcheck")
	assert.Equal(t, code, http.StatusOK, "health does not see the fault")
}

// TestSyntheticCallIsLogged: a call marked with the synthetic-call header is
// answered like any other and logged as synthetic.
func TestSyntheticCallIsLogged(t *testing.T) {
	h := start(t, harnessOptions{})
	ctx := t.Context()
	conn, _, err := websocket.Dial(ctx, "ws"+h.base[len("http"):]+"/pc/v1/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{server.SyntheticCallHeader: {"synthetic"}}})
	assert.NilError(t, err)
	defer conn.CloseNow()
	assert.Equal(t, echo(t, conn, "ping").Text, "ping")
	assert.NilError(t, conn.Close(websocket.StatusNormalClosure, "done"))
	waitFor(t, "the call to end", func() bool { return h.srv.ActiveCalls() == 0 })
	started := h.logs.records(t, "call started")
	assert.Equal(t, len(started), 1)
	assert.Equal(t, started[0]["synthetic"], true)
}
