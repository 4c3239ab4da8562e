package ops

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/examples/chatbot/server"
)

// TestJudgeCall decides each kind of call from what was observed.
func TestJudgeCall(t *testing.T) {
	hold := 3 * time.Second
	stays := targets.Calls{Path: "/ws", Hold: hold}
	echo := targets.Calls{Path: "/ws", Send: "ping", Expect: `"type":"echo"`, Hold: hold}
	closed := &websocket.CloseError{Code: 1011, Text: "closing calls early"}
	cases := []struct {
		name  string
		o     callObservation
		c     targets.Calls
		want  string
		early bool
	}{
		{name: "stays open for the hold", c: stays, o: callObservation{handshake: 5 * time.Millisecond, held: hold}},
		{name: "answers as expected", c: echo, o: callObservation{held: hold, answered: true, firstAnswer: time.Millisecond, answer: `{"type":"echo","text":"ping"}`}},
		{name: "answers anything when nothing is expected", c: targets.Calls{Path: "/ws", Send: "ping", Hold: hold}, o: callObservation{held: hold, answered: true, answer: "pong"}},
		{name: "refused before the upgrade", c: stays, o: callObservation{connectErr: errors.New("bad handshake"), status: 503, body: `{"error":"draining"}`},
			want: `the app refused the call: HTTP 503 {"error":"draining"}`},
		{name: "nothing listens", c: stays, o: callObservation{connectErr: errors.New("port-forward to p:8765: connection refused")},
			want: "no call: port-forward to p:8765: connection refused"},
		{name: "closed early", c: stays, early: true, o: callObservation{held: 1200 * time.Millisecond, ended: closed, closeCode: 1011, closeReason: "closing calls early"},
			want: `closed early, after 1.2s of the 3s hold (close 1011 "closing calls early")`},
		{name: "connection broke", c: stays, early: true, o: callObservation{held: 40 * time.Millisecond, ended: errors.New("unexpected EOF")},
			want: "closed early, after 40ms of the 3s hold (the connection broke: unexpected EOF)"},
		{name: "closed after the first answer", c: echo, early: true, o: callObservation{held: time.Second, answered: true, answer: `{"type":"echo"}`, ended: closed, closeCode: 1011, closeReason: "x"},
			want: `closed early, after 1s of the 3s hold (close 1011 "x")`},
		{name: "closed before answering", c: echo, early: true, o: callObservation{held: 10 * time.Millisecond, ended: closed, closeCode: 1000, closeReason: "bye"},
			want: `closed before answering, after 10ms (close 1000 "bye")`},
		{name: "no answer", c: echo, o: callObservation{held: hold}, want: "no answer within the 3s hold"},
		{name: "wrong answer", c: echo, o: callObservation{held: hold, answered: true, answer: `{"error":"no LLM key"}`},
			want: `first answer "{\"error\":\"no LLM key\"}" does not contain "\"type\":\"echo\""`},
		{name: "cancelled run", c: stays, o: callObservation{held: time.Second, ended: errors.New("closed"), cancelled: context.Canceled},
			want: "the run was cancelled during the call: context canceled"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := judgeCall(tc.o, tc.c)
			assert.Equal(t, got.Error, tc.want)
			assert.Equal(t, got.Passed(), tc.want == "")
			assert.Equal(t, got.ClosedEarly, tc.early)
		})
	}
}

// TestExchangeWithTheStandIn places calls on the stand-in chatbot's own
// server over a loopback connection: the client and the app the contract
// describes agree.
func TestExchangeWithTheStandIn(t *testing.T) {
	serve := func(t *testing.T, cfg server.Config) string {
		srv := httptest.NewServer(server.New(server.Options{Config: cfg}).Handler())
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	call := func(t *testing.T, addr string, c targets.Calls) PodCall {
		conn, err := net.Dial("tcp", addr)
		assert.NilError(t, err)
		return judgeCall(exchange(t.Context(), conn, c, 5*time.Second, time.Now()), c)
	}
	hold := 300 * time.Millisecond
	t.Run("echo answered and held", func(t *testing.T) {
		pc := call(t, serve(t, server.Config{}), targets.Calls{Path: "/pc/v1/ws", Send: "ping", Expect: `"text":"ping"`, Hold: hold})
		assert.Equal(t, pc.Error, "")
		assert.Assert(t, pc.FirstAnswer > 0 && pc.FirstAnswer < hold)
		assert.Equal(t, pc.Held, hold)
	})
	t.Run("stays open", func(t *testing.T) {
		pc := call(t, serve(t, server.Config{}), targets.Calls{Path: "/pc/v1/ws", Hold: hold})
		assert.Equal(t, pc.Error, "")
	})
	t.Run("closed early by the fault", func(t *testing.T) {
		pc := call(t, serve(t, server.Config{CloseCallsAfter: 50 * time.Millisecond}), targets.Calls{Path: "/pc/v1/ws", Send: "ping", Hold: 10 * time.Second})
		assert.Assert(t, pc.ClosedEarly)
		assert.Equal(t, pc.CloseCode, 1011)
		assert.ErrorContains(t, errors.New(pc.Error), `closed early, after`)
		assert.ErrorContains(t, errors.New(pc.Error), `of the 10s hold (close 1011 "closing calls early (CLOSE_CALLS_AFTER_SECONDS)")`)
	})
	t.Run("no such route", func(t *testing.T) {
		pc := call(t, serve(t, server.Config{}), targets.Calls{Path: "/calls", Hold: hold})
		assert.ErrorContains(t, errors.New(pc.Error), "the app refused the call: HTTP 404")
	})
	t.Run("the synthetic header reaches the app", func(t *testing.T) {
		got := make(chan string, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got <- r.Header.Get(server.SyntheticCallHeader)
			http.Error(w, "no", http.StatusTeapot)
		}))
		defer srv.Close()
		call(t, srv.Listener.Addr().String(), targets.Calls{Path: "/pc/v1/ws", Hold: hold})
		assert.Equal(t, <-got, "synthetic")
		assert.Equal(t, SyntheticCallHeader, server.SyntheticCallHeader)
	})
}
