package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"
)

// processes are the running components. The first to exit on its own makes
// failed() close; stop ends them all, the last started first.
type processes struct {
	mu       sync.Mutex
	running  []*process
	stopping bool
	first    error
	exited   chan struct{} // closed by the first unexpected exit
	once     sync.Once
}

type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	err  error         // its exit status, set before done closes
}

// start runs c with its output, each line prefixed with its name, on logs.
// The process is killed if this one dies (see setParentDeathSignal).
func (ps *processes) start(c component, logs io.Writer) error {
	cmd := exec.Command(c.path, c.args...)
	out := &prefixWriter{prefix: c.name + ": ", w: logs}
	cmd.Stdout, cmd.Stderr = out, out
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w; pass --bin-dir with etcd, kube-apiserver and kube-controller-manager", c.name, err)
	}
	p := &process{name: c.name, cmd: cmd, done: make(chan struct{})}
	ps.mu.Lock()
	ps.running = append(ps.running, p)
	ps.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		out.flush()
		close(p.done)
		ps.mu.Lock()
		defer ps.mu.Unlock()
		if ps.stopping {
			return
		}
		ps.once.Do(func() {
			ps.first = fmt.Errorf("%s exited: %v; see its log above", p.name, p.err)
			close(ps.failedChan())
		})
	}()
	return nil
}

// failedChan returns exited, making it on first use; ps.mu is held.
func (ps *processes) failedChan() chan struct{} {
	if ps.exited == nil {
		ps.exited = make(chan struct{})
	}
	return ps.exited
}

// failed is closed once a component has exited on its own.
func (ps *processes) failed() <-chan struct{} {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.failedChan()
}

// failure says which component exited first, and how.
func (ps *processes) failure() error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.first == nil {
		return errors.New("no component has exited")
	}
	return ps.first
}

// failedBefore is failure, once a process failed, saying it happened before
// the API server was ready; nil until then.
func (ps *processes) failedBefore() error {
	select {
	case <-ps.failed():
		return fmt.Errorf("before the API server was ready: %w", ps.failure())
	default:
		return nil
	}
}

// stop sends SIGTERM to each component, the last started first, and kills
// it if it has not exited after timeout.
func (ps *processes) stop(timeout time.Duration) {
	ps.mu.Lock()
	ps.stopping = true
	running := slices.Clone(ps.running)
	ps.mu.Unlock()
	slices.Reverse(running)
	for _, p := range running {
		select {
		case <-p.done:
			continue
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(timeout):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// prefixWriter writes whole lines to w, each behind prefix.
type prefixWriter struct {
	prefix string
	w      io.Writer
	mu     sync.Mutex
	buf    []byte
}

func (pw *prefixWriter) Write(p []byte) (int, error) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.buf = append(pw.buf, p...)
	var out bytes.Buffer
	for {
		i := bytes.IndexByte(pw.buf, '\n')
		if i < 0 {
			break
		}
		out.WriteString(pw.prefix)
		out.Write(pw.buf[:i+1])
		pw.buf = pw.buf[i+1:]
	}
	if out.Len() > 0 {
		_, _ = pw.w.Write(out.Bytes())
	}
	return len(p), nil
}

// flush writes a last line that has no newline.
func (pw *prefixWriter) flush() {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	if len(pw.buf) > 0 {
		_, _ = fmt.Fprintf(pw.w, "%s%s\n", pw.prefix, pw.buf)
		pw.buf = nil
	}
}
