package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// EchoReply is the JSON the server answers each text message of a call with.
type EchoReply struct {
	// Type is always "echo".
	Type string `json:"type"`
	// Call numbers the call within this process.
	Call uint64 `json:"call"`
	// Text is the message received.
	Text string `json:"text"`
}

// handleCall serves one WebSocket call: text messages are answered with an EchoReply, binary messages (audio
// frames in the real app) are echoed as they are, and the text message "hangup" ends the call with 1000.
// While draining, new calls are refused with 503 before the upgrade.
func (s *Server) handleCall(w http.ResponseWriter, r *http.Request) {
	id, ok := s.admitCall()
	if !ok {
		s.log.Info("call refused: draining", "path", r.URL.Path)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "draining; connect to another replica"})
		return
	}
	defer s.endCall(id)

	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		s.log.Warn("call upgrade failed", "call", id, "error", err.Error())
		return
	}
	defer conn.CloseNow()
	started := s.now()
	s.log.Info("call started", "call", id, "path", r.URL.Path, "remote", r.RemoteAddr, "synthetic", r.Header.Get(SyntheticCallHeader) != "")
	s.attachConn(id, conn)
	if d := s.cfg.CloseCallsAfter; d > 0 {
		fault := time.AfterFunc(d, func() { s.closeEarly(id, conn) })
		defer fault.Stop()
	}

	code, how := s.echo(id, conn)
	s.log.Info("call ended", "call", id, "close_code", int(code), "ended_by", how,
		"duration_seconds", s.now().Sub(started).Seconds())
}

// SyntheticCallHeader marks a call ringg-ci places to verify a pod (docs/app-contract.md, clause 13): the
// app answers it like any call and may leave it out of its call metrics.
const SyntheticCallHeader = "X-Ringg-Ci-Call"

// closeEarly is the CLOSE_CALLS_AFTER_SECONDS fault: it closes a call the way a broken handler would.
func (s *Server) closeEarly(id uint64, conn *websocket.Conn) {
	s.mu.Lock()
	if c := s.calls[id]; c != nil {
		c.fault = true
	}
	s.mu.Unlock()
	_ = conn.Close(websocket.StatusInternalError, closeEarlyReason)
}

// echo runs the call until it ends and reports the close code and who ended it.
func (s *Server) echo(id uint64, conn *websocket.Conn) (websocket.StatusCode, string) {
	for {
		typ, data, err := conn.Read(context.Background())
		if err != nil {
			return s.endedBy(id, err)
		}
		reply := data
		if typ == websocket.MessageText {
			if strings.TrimSpace(string(data)) == hangupMessage {
				_ = conn.Close(websocket.StatusNormalClosure, normalCloseReason)
				return websocket.StatusNormalClosure, "server hangup"
			}
			reply, err = json.Marshal(EchoReply{Type: "echo", Call: id, Text: string(data)})
			if err != nil {
				_ = conn.Close(websocket.StatusInternalError, "encode reply")
				return websocket.StatusInternalError, "server error"
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), callWriteTimeout)
		err = conn.Write(ctx, typ, reply)
		cancel()
		if err != nil {
			return s.endedBy(id, err)
		}
	}
}

// endedBy explains why a call's connection ended.
func (s *Server) endedBy(id uint64, err error) (websocket.StatusCode, string) {
	s.mu.Lock()
	forced, fault := s.calls[id].forced, s.calls[id].fault
	s.mu.Unlock()
	switch {
	case forced:
		return websocket.StatusGoingAway, "drain deadline"
	case fault:
		return websocket.StatusInternalError, "closed early (CLOSE_CALLS_AFTER_SECONDS)"
	}
	if code := websocket.CloseStatus(err); code != -1 {
		return code, "client"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return websocket.StatusAbnormalClosure, "write timeout"
	}
	return websocket.StatusAbnormalClosure, "connection lost"
}

// admitCall registers a new call unless the server is draining.
func (s *Server) admitCall() (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.drainStarted.IsZero() {
		return 0, false
	}
	s.nextID++
	s.calls[s.nextID] = &call{}
	return s.nextID, true
}

// attachConn records the call's connection so the drain deadline can close it, closing it at once if the
// deadline passed during the upgrade.
func (s *Server) attachConn(id uint64, conn *websocket.Conn) {
	s.mu.Lock()
	c := s.calls[id]
	c.conn = conn
	late := s.forceClosed
	c.forced = c.forced || late
	s.mu.Unlock()
	if late {
		go conn.Close(websocket.StatusGoingAway, goingAwayReason)
	}
}

// endCall forgets a call and wakes whoever waits for the server to go idle.
func (s *Server) endCall(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.calls, id)
	close(s.changed)
	s.changed = make(chan struct{})
}
