package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"k8s.io/component-base/cli"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

// runControllerManager is the child process: kube-controller-manager with
// the given flags, exiting as soon as its parent closes stdin. It runs in a
// process of its own because the control plane components share global
// flags, feature gates and signal handlers.
func runControllerManager(args []string) int {
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	cmd := controllermanager.NewControllerManagerCommand()
	cmd.SetArgs(args)
	return cli.Run(cmd)
}

// startControllerManager starts this binary again as the controller-manager
// child, with a stdin pipe whose closing stops it.
func startControllerManager(args []string, stderr io.Writer) (*exec.Cmd, io.WriteCloser, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("find own executable to start kube-controller-manager: %w", err)
	}
	cmd := exec.Command(self, append([]string{"controller-manager"}, args...)...)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("start kube-controller-manager: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start kube-controller-manager: %w", err)
	}
	return cmd, stdin, nil
}

// stopChild closes the child's stdin and kills it if it has not exited
// within a few seconds.
func stopChild(cmd *exec.Cmd, stdin io.Closer, done <-chan error) {
	_ = stdin.Close()
	select {
	case <-done:
		return
	case <-time.After(3 * time.Second):
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}
