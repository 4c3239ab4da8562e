package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ringg/ringg-ci/ci/targets"
)

// ErrCallFailed is returned when a synthetic call on a pod did not go as
// the target's verification expects.
var ErrCallFailed = errors.New("synthetic call failed")

// SyntheticCallHeader marks the calls ringg-ci places: the app answers them
// like any call and may leave them out of its call metrics
// (docs/app-contract.md, clause 13).
const SyntheticCallHeader = "X-Ringg-Ci-Call"

// CallOptions configure Calls. Zero values mean the chatbot's contract.
type CallOptions struct {
	// Calls is the exchange each pod must hold; required.
	Calls targets.Calls
	// Port is the container port; default DefaultPort.
	Port int32
	// Connect bounds the port-forward and the WebSocket handshake of each
	// call; default 10s.
	Connect time.Duration
	// Parallel is how many pods are called at once; default 8.
	Parallel int
	// Logger receives one line per pod; nil discards them.
	Logger *slog.Logger
}

// PodCall is what one synthetic call on one pod saw.
type PodCall struct {
	Pod   string `json:"pod"`
	Ready bool   `json:"ready"`
	// Handshake is from opening the port-forward to the upgraded
	// WebSocket.
	Handshake time.Duration `json:"-"`
	// FirstAnswer is from the end of the handshake to the app's first
	// message; zero when none came.
	FirstAnswer time.Duration `json:"-"`
	// Held is how long the call stayed open, at most the hold.
	Held time.Duration `json:"-"`
	// ClosedEarly is true when the app closed the call, or the connection
	// broke, before the hold ended.
	ClosedEarly bool `json:"closedEarly"`
	// CloseCode and CloseReason are the app's close frame, when it sent one
	// before the hold ended.
	CloseCode   int    `json:"closeCode,omitempty"`
	CloseReason string `json:"closeReason,omitempty"`
	// Error says why the call failed; empty when it passed.
	Error string `json:"error,omitempty"`
}

// Passed reports whether the call went as expected.
func (p PodCall) Passed() bool { return p.Error == "" }

// MarshalJSON adds the durations in milliseconds and passed.
func (p PodCall) MarshalJSON() ([]byte, error) {
	type plain PodCall
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return json.Marshal(struct {
		plain
		HandshakeMS   float64 `json:"handshakeMs"`
		FirstAnswerMS float64 `json:"firstAnswerMs,omitempty"`
		HeldMS        float64 `json:"heldMs"`
		Passed        bool    `json:"passed"`
	}{plain(p), ms(p.Handshake), ms(p.FirstAnswer), ms(p.Held), p.Passed()})
}

// CallReport is one round of synthetic calls on every pod of a target.
type CallReport struct {
	Target    string    `json:"target"`
	Namespace string    `json:"namespace"`
	Selector  string    `json:"selector"`
	Endpoint  string    `json:"endpoint"` // port and path called
	Hold      string    `json:"hold"`
	Pods      []PodCall `json:"pods"`
}

// Failed names the pods whose call failed, with why.
func (r CallReport) Failed() []string {
	var out []string
	for _, p := range r.Pods {
		if !p.Passed() {
			out = append(out, p.Pod+": "+p.Error)
		}
	}
	return out
}

// String is a table, one row per pod, under a summary line.
func (r CallReport) String() string {
	var b strings.Builder
	verdict := "all passed"
	if bad := len(r.Failed()); bad > 0 {
		verdict = fmt.Sprintf("%d failed", bad)
	}
	fmt.Fprintf(&b, "synthetic calls on %s in %s (%s), ws %s held %s: %d pods, %s\n", r.Target, r.Namespace, r.Selector, r.Endpoint, r.Hold, len(r.Pods), verdict)
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "POD\tHANDSHAKE\tFIRST ANSWER\tHELD\tRESULT")
	ms := func(d time.Duration) string {
		if d == 0 {
			return "-"
		}
		return d.Round(time.Millisecond).String()
	}
	for _, p := range r.Pods {
		result := "ok"
		if !p.Passed() {
			result = "FAILED: " + p.Error
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", p.Pod, ms(p.Handshake), ms(p.FirstAnswer), ms(p.Held), result)
	}
	w.Flush()
	return b.String()
}

// Calls places one synthetic call on every pod of t through the API
// server's port-forward (pods list and pods/portforward, as Health): no
// Service or Ingress is involved, so no other track's pods get them. Each
// call opens the app's WebSocket, holds it for the configured time with the
// configured exchange and closes it cleanly. It returns the report and, when
// any call failed, an error wrapping ErrCallFailed that names each pod and
// why.
func Calls(ctx context.Context, cfg *rest.Config, c kubernetes.Interface, t targets.Target, opts CallOptions) (CallReport, error) {
	if opts.Port == 0 {
		opts.Port = DefaultPort
	}
	if opts.Connect <= 0 {
		opts.Connect = 10 * time.Second
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	call := opts.Calls
	report := CallReport{Target: string(t.Name), Namespace: t.Namespace, Selector: Selector(t),
		Endpoint: fmt.Sprintf(":%d%s", opts.Port, call.Path), Hold: call.Hold.String()}
	ps, red, err := printedPods(ctx, c, t, "")
	if err != nil {
		return report, fmt.Errorf("place synthetic calls on %s: %w", t.Name, err)
	}
	report.Pods = make([]PodCall, len(ps))
	each(len(ps), opts.Parallel, func(i int) {
		p := &ps[i]
		o := placeCall(ctx, cfg, c, p, opts)
		pc := judgeCall(o, call)
		pc.Pod, pc.Ready = p.Name, ready(p)
		pc.Error, pc.CloseReason = red.Text(pc.Error), red.Text(pc.CloseReason)
		log.Info("synthetic call", "target", t.Name, "pod", pc.Pod, "handshake", pc.Handshake.Round(time.Millisecond),
			"first_answer", pc.FirstAnswer.Round(time.Millisecond), "held", pc.Held.Round(time.Millisecond), "error", pc.Error)
		report.Pods[i] = pc
	})
	if bad := report.Failed(); len(bad) > 0 {
		return report, fmt.Errorf("%w on %d of %d pods of %s in %s (ws %s, held %s): %s; the pods answer their health check but not a call: read their logs with `logs --pod NAME`",
			ErrCallFailed, len(bad), len(report.Pods), t.Name, t.Namespace, report.Endpoint, call.Hold, strings.Join(bad, "; "))
	}
	return report, nil
}

// callObservation is what happened on one call, before it is judged.
type callObservation struct {
	// connectErr is set when no WebSocket opened: the port-forward, the
	// handshake, or the app's refusal (status and body then).
	connectErr error
	status     int
	body       string
	handshake  time.Duration
	// answered is true once the app sent a message; firstAnswer is when
	// (after the handshake) and answer its start.
	answered    bool
	firstAnswer time.Duration
	answer      string
	// held is how long the call was open; ended is set when it ended before
	// the hold, with the app's close frame if it sent one.
	held        time.Duration
	ended       error
	closeCode   int
	closeReason string
	// sendErr is set when the first message could not be sent.
	sendErr error
	// cancelled is set when the run was cancelled during the call.
	cancelled error
}

// judgeCall decides whether a call went as c expects: connected, answered
// the first message as expected (when there is one), and stayed open for
// the whole hold.
func judgeCall(o callObservation, c targets.Calls) PodCall {
	pc := PodCall{Handshake: o.handshake, FirstAnswer: o.firstAnswer, Held: o.held}
	if o.answered && o.firstAnswer == 0 {
		pc.FirstAnswer = time.Microsecond // answered at once; zero means no answer
	}
	if o.ended != nil && o.cancelled == nil {
		pc.ClosedEarly, pc.CloseCode, pc.CloseReason = true, o.closeCode, o.closeReason
	}
	wantAnswer := c.Send != "" || c.Expect != ""
	switch {
	case o.connectErr != nil && o.status != 0:
		pc.Error = fmt.Sprintf("the app refused the call: HTTP %d %s", o.status, o.body)
	case o.connectErr != nil:
		pc.Error = "no call: " + o.connectErr.Error()
	case o.cancelled != nil:
		pc.Error = "the run was cancelled during the call: " + o.cancelled.Error()
	case o.sendErr != nil:
		pc.Error = "could not send the first message: " + o.sendErr.Error()
	case wantAnswer && !o.answered && o.ended != nil:
		pc.Error = fmt.Sprintf("closed before answering, after %s%s", round(o.held), closeText(o))
	case wantAnswer && !o.answered:
		pc.Error = fmt.Sprintf("no answer within the %s hold", c.Hold)
	case c.Expect != "" && !strings.Contains(o.answer, c.Expect):
		pc.Error = fmt.Sprintf("first answer %q does not contain %q", o.answer, c.Expect)
	case o.ended != nil:
		pc.Error = fmt.Sprintf("closed early, after %s of the %s hold%s", round(o.held), c.Hold, closeText(o))
	}
	return pc
}

func closeText(o callObservation) string {
	if o.closeCode != 0 {
		return fmt.Sprintf(" (close %d %q)", o.closeCode, o.closeReason)
	}
	return fmt.Sprintf(" (the connection broke: %v)", o.ended)
}

func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// placeCall places one call on a pod over a port-forward.
func placeCall(ctx context.Context, cfg *rest.Config, c kubernetes.Interface, p *corev1.Pod, opts CallOptions) callObservation {
	// The call may last its hold plus the connection and the close.
	cctx, cancel := context.WithTimeout(ctx, opts.Connect+opts.Calls.Hold+closeWait+time.Second)
	defer cancel()
	start := time.Now()
	f, err := openForward(cctx, cfg, c, p, opts.Port)
	if err != nil {
		return callObservation{connectErr: err, handshake: time.Since(start)}
	}
	defer f.Close()
	o := exchange(cctx, f.conn(), opts.Calls, opts.Connect, start)
	if o.connectErr != nil && o.status == 0 {
		o.connectErr = f.why(cctx, o.connectErr, opts.Calls.Path)
	}
	return o
}

// closeWait bounds the wait for the app's answer to the closing frame.
const closeWait = 5 * time.Second

// exchange runs one call on conn: the handshake (within connect), the
// first message, the hold, the clean close. start is when the connection
// began to open.
func exchange(ctx context.Context, conn net.Conn, c targets.Calls, connect time.Duration, start time.Time) callObservation {
	var o callObservation
	d := websocket.Dialer{
		NetDialContext:   func(context.Context, string, string) (net.Conn, error) { return conn, nil },
		HandshakeTimeout: connect,
	}
	// Closing the connection ends every read and write when ctx ends.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	ws, resp, err := d.DialContext(ctx, "ws://localhost"+c.Path, http.Header{SyntheticCallHeader: {"synthetic"}})
	o.handshake = time.Since(start)
	if err != nil {
		o.connectErr = fmt.Errorf("websocket handshake on %s: %w", c.Path, err)
		if resp != nil {
			o.status = resp.StatusCode
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
			o.body = strings.TrimSpace(string(b))
		}
		return o
	}
	defer ws.Close()
	open := time.Now()
	msgs, ended := make(chan callMessage, 16), make(chan error, 1)
	go func() {
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				ended <- err
				return
			}
			select {
			case msgs <- callMessage{time.Since(open), data}:
			default: // only the first answer matters; later ones may be dropped
			}
		}
	}()
	if c.Send != "" {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(c.Send)); err != nil {
			o.sendErr, o.held = err, time.Since(open)
			return o
		}
	}
	hold := time.NewTimer(c.Hold)
	defer hold.Stop()
held:
	for {
		select {
		case m := <-msgs:
			o.heard(m)
		case err := <-ended:
			o.held, o.ended = time.Since(open), err
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				o.closeCode, o.closeReason = ce.Code, ce.Text
			}
			if ctx.Err() != nil {
				o.cancelled = ctx.Err()
			}
			o.drain(msgs)
			return o
		case <-ctx.Done():
			o.held, o.cancelled = time.Since(open), ctx.Err()
			return o
		case <-hold.C:
			break held
		}
	}
	o.held = c.Hold
	o.drain(msgs)
	// A clean close: ours, then the app's answer to it (not judged: the call
	// was held, and some servers drop the connection instead).
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "synthetic call done"), time.Now().Add(closeWait))
	select {
	case <-ended:
	case <-time.After(closeWait):
	case <-ctx.Done():
	}
	return o
}

// callMessage is a message the app sent, and when (after the handshake).
type callMessage struct {
	at   time.Duration
	data []byte
}

// heard records the app's first answer.
func (o *callObservation) heard(m callMessage) {
	if !o.answered {
		o.answered, o.firstAnswer, o.answer = true, m.at, shorten(string(m.data), 200)
	}
}

// drain takes an answer that arrived together with the end of the call.
func (o *callObservation) drain(msgs <-chan callMessage) {
	for {
		select {
		case m := <-msgs:
			o.heard(m)
		default:
			return
		}
	}
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
