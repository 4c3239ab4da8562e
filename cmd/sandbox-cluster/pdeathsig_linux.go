package main

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal has the kernel kill cmd when this process dies, so no
// component outlives the launcher, even one killed with SIGKILL. Each
// component also gets a process group of its own: a signal to the launcher's
// group (Ctrl-C, timeout(1)) reaches the launcher alone, which then stops
// the components in order.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
