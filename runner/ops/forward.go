package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// forward is one connection to a pod's port through the API server's
// port-forward: its data stream, and the kubelet's words on why it failed.
type forward struct {
	data   httpstream.Stream
	pod    string
	port   int32
	remote chan string
	close  func()
}

// openForward opens a port-forward connection to p and one stream pair to
// port. Closing ctx ends every read and write on it; Close ends it too.
func openForward(ctx context.Context, cfg *rest.Config, c kubernetes.Interface, p *corev1.Pod, port int32) (*forward, error) {
	if p.Spec.NodeName == "" {
		return nil, errors.New("pod is not scheduled on a node yet")
	}
	conn, err := dial(ctx, cfg, c, p)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	f := &forward{pod: p.Name, port: port, remote: make(chan string, 1), close: func() { stop(); conn.Close() }}

	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(int(port)))
	headers.Set(corev1.PortForwardRequestIDHeader, "0")
	errStream, err := conn.CreateStream(headers)
	if err != nil {
		f.close()
		return nil, fmt.Errorf("open the port-forward error stream: %w", err)
	}
	errStream.Close() // nothing to send on it
	go func() {
		msg, _ := io.ReadAll(io.LimitReader(errStream, 4096))
		f.remote <- strings.TrimSpace(string(msg))
	}()
	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	f.data, err = conn.CreateStream(headers)
	if err != nil {
		err = f.why(ctx, fmt.Errorf("open the port-forward data stream: %w", err), "")
		f.close()
		return nil, err
	}
	return f, nil
}

// why prefers the kubelet's reason for a failure (e.g. nothing listens on
// the port), sent on the error stream, to a bare reset or EOF of the data
// stream; the kubelet may reset the data stream at once, before or after it
// opened. what names the request for a timeout.
func (f *forward) why(ctx context.Context, err error, what string) error {
	select {
	case msg := <-f.remote:
		if msg != "" {
			return fmt.Errorf("port-forward to %s:%d: %s", f.pod, f.port, msg)
		}
	case <-time.After(time.Second):
	}
	if ctx.Err() != nil {
		return fmt.Errorf("no answer from %s:%d%s: %w", f.pod, f.port, what, ctx.Err())
	}
	return err
}

// Close ends the data stream and the port-forward connection.
func (f *forward) Close() {
	f.data.Close()
	f.close()
}

// conn is the data stream as a net.Conn for HTTP and WebSocket clients.
// Deadlines are not supported (the stream has none): callers bound their
// work with the context given to openForward, whose end closes the stream.
func (f *forward) conn() net.Conn { return streamConn{Stream: f.data, name: f.pod} }

type streamConn struct {
	httpstream.Stream
	name string
}

func (s streamConn) LocalAddr() net.Addr              { return forwardAddr("ringg-ci") }
func (s streamConn) RemoteAddr() net.Addr             { return forwardAddr(s.name) }
func (s streamConn) SetDeadline(time.Time) error      { return nil }
func (s streamConn) SetReadDeadline(time.Time) error  { return nil }
func (s streamConn) SetWriteDeadline(time.Time) error { return nil }

type forwardAddr string

func (a forwardAddr) Network() string { return "port-forward" }
func (a forwardAddr) String() string  { return string(a) }
