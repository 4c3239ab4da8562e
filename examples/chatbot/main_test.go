package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/examples/chatbot/server"
)

// runMainEnv makes the test binary run the chatbot's main instead of the tests, so a test can send it a
// real SIGTERM.
const runMainEnv = "CHATBOT_TEST_RUN_MAIN"

const waitLimit = 10 * time.Second

// exitLimit bounds the wait for the process to exit.
const exitLimit = 2 * time.Minute

var secretValues = map[string]string{
	"OPENAI_API_KEY": "TEST-SECRET-openai-sk-9b2e",
	"REDIS_URL":      "redis://:TEST-SECRET-redis@redis:6379/0",
	"ADMIN_API_KEY":  "TEST-SECRET-admin-key",
}

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// lockedBuffer collects the child's output from the reading goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// child is the chatbot running as a subprocess.
type child struct {
	cmd    *exec.Cmd
	addr   string
	output *lockedBuffer
	exited chan error
}

func startChild(t *testing.T, deadlineSeconds string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{
		runMainEnv + "=1",
		"HOST=127.0.0.1",
		"PORT=0",
		"DRAIN_DEADLINE_SECONDS=" + deadlineSeconds,
		"DRAIN_MARKER_PATH=" + filepath.Join(t.TempDir(), "DRaining"),
		"CREDS_PATH=server/testdata/creds/valid-service-account.json",
		"LOGGER_NAME=pipecat-canary",
	}
	for k, v := range secretValues {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	assert.NilError(t, err)
	c := &child{cmd: cmd, output: &lockedBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = c.output
	assert.NilError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.exited
	})

	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			_, _ = c.output.Write([]byte(line + "\n"))
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				listening <- rec.Addr
			}
		}
		c.exited <- cmd.Wait()
	}()
	select {
	case addr := <-listening:
		_, port, err := net.SplitHostPort(addr)
		assert.NilError(t, err)
		c.addr = "127.0.0.1:" + port
	case <-time.After(waitLimit):
		t.Fatalf("chatbot did not start listening")
	}
	return c
}

// wait waits for the process to exit; how soon is read from its logs, and
// exitLimit, far above the drains the tests ask for, only keeps a broken
// binary from hanging the test.
func (c *child) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-c.exited:
		c.exited <- err
		return err
	case <-time.After(exitLimit):
		t.Fatalf("chatbot still running after %v", exitLimit)
		return nil
	}
}

func (c *child) healthCode(t *testing.T) int {
	t.Helper()
	resp, err := http.Get("http://" + c.addr + "/pc/v1/healthcheck")
	assert.NilError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func dialCall(t *testing.T, addr string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	return websocket.Dial(ctx, "ws://"+addr+"/pc/v1/ws", nil)
}

func echoText(t *testing.T, conn *websocket.Conn, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	assert.NilError(t, conn.Write(ctx, websocket.MessageText, []byte(text)))
	_, data, err := conn.Read(ctx)
	assert.NilError(t, err)
	var reply server.EchoReply
	assert.NilError(t, json.Unmarshal(data, &reply))
	assert.Equal(t, reply.Text, text)
}

func TestSIGTERMDrainsThenExitsZero(t *testing.T) {
	cases := []struct {
		name     string
		deadline string
		// endCall ends the live call during the drain and returns the close code the client saw.
		endCall func(t *testing.T, conn *websocket.Conn) websocket.StatusCode
		// wantCode is the close code the call ends with.
		wantCode websocket.StatusCode
		// deadlineReached says whether the drain ran to its deadline.
		deadlineReached bool
	}{
		{
			name:     "client hangs up before the deadline",
			deadline: "60",
			endCall: func(t *testing.T, conn *websocket.Conn) websocket.StatusCode {
				assert.NilError(t, conn.Close(websocket.StatusNormalClosure, "bye"))
				return websocket.StatusNormalClosure
			},
			wantCode: websocket.StatusNormalClosure,
		},
		{
			name: "deadline closes the call",
			// Long enough for the checks below on a busy machine: the call
			// must still be open when they run.
			deadline: "3",
			endCall: func(t *testing.T, conn *websocket.Conn) websocket.StatusCode {
				ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
				defer cancel()
				_, _, err := conn.Read(ctx)
				return websocket.CloseStatus(err)
			},
			wantCode:        websocket.StatusGoingAway,
			deadlineReached: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := startChild(t, tc.deadline)
			conn, _, err := dialCall(t, c.addr)
			assert.NilError(t, err)
			defer conn.CloseNow()
			echoText(t, conn, "hello")
			assert.Equal(t, c.healthCode(t), http.StatusOK)

			begin := time.Now()
			assert.NilError(t, c.cmd.Process.Signal(syscall.SIGTERM))
			for end := time.Now().Add(waitLimit); c.healthCode(t) != http.StatusServiceUnavailable; {
				assert.Assert(t, time.Now().Before(end), "health never went 503 after SIGTERM")
				time.Sleep(10 * time.Millisecond)
			}
			_, resp, err := dialCall(t, c.addr)
			assert.Assert(t, err != nil, "a new call was accepted while draining")
			assert.Assert(t, resp != nil, "no HTTP response: %v", err)
			assert.Equal(t, resp.StatusCode, http.StatusServiceUnavailable)
			echoText(t, conn, "still here")

			code := tc.endCall(t, conn)
			assert.Equal(t, code, tc.wantCode)
			assert.NilError(t, c.wait(t), "exit status; output:\n%s", c.output.String())
			t.Logf("exited %v after SIGTERM", time.Since(begin).Round(time.Millisecond))
			if os.Getenv("CHATBOT_SHOW_LOGS") != "" {
				t.Log(c.output.String())
			}

			logs := c.output.String()
			assert.Assert(t, strings.Contains(logs, `"close_code":`+itoa(int(code))), "call end not logged with %d", code)
			assert.Equal(t, strings.Contains(logs, `"msg":"drain deadline reached; closing remaining calls"`), tc.deadlineReached,
				"whether the drain waited for its deadline; logs:\n%s", logs)
			for name, v := range secretValues {
				assert.Assert(t, !strings.Contains(logs, v), "the value of %s was logged", name)
			}
			assert.Assert(t, !strings.Contains(logs, "MARKER"), "credentials content was logged")
			assert.Assert(t, strings.Contains(logs, `"creds_status":"ok"`))
			for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
				assert.Assert(t, strings.Contains(line, `"logger":"pipecat-canary"`), "line without logger name: %s", line)
			}
		})
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestHealthcheckSubcommand(t *testing.T) {
	srv := server.New(server.Options{Config: server.Config{DrainDeadline: time.Minute}})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(ts.URL, "http://"))
	assert.NilError(t, err)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	_, closedPort, _ := net.SplitHostPort(ln.Addr().String())
	assert.NilError(t, ln.Close())

	cases := []struct {
		name   string
		args   []string
		env    map[string]string
		before func()
		want   int
		output string
	}{
		{name: "healthy", args: []string{"healthcheck"}, env: map[string]string{"PORT": port}, want: 0, output: "healthy"},
		{name: "nothing listening", args: []string{"healthcheck"}, env: map[string]string{"PORT": closedPort}, want: 1, output: "is the chatbot running?"},
		{
			name: "draining", args: []string{"healthcheck"}, env: map[string]string{"PORT": port},
			before: func() { srv.StartDrain(server.DrainFromPreStop) }, want: 1, output: "status 503",
		},
		{name: "unknown subcommand", args: []string{"frobnicate"}, want: 2, output: "unknown subcommand"},
		{name: "invalid configuration", args: []string{"healthcheck"}, env: map[string]string{"PORT": "x"}, want: 1, output: "invalid configuration"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			var out bytes.Buffer
			got := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, &out)
			assert.Equal(t, got, tc.want, "output: %s", out.String())
			assert.Assert(t, strings.Contains(out.String(), tc.output), "output: %s", out.String())
		})
	}
}
