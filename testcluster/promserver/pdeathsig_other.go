//go:build !linux

package promserver

import "os/exec"

// dieWithParent does nothing here: only Linux can tie a child's life to its
// parent's; Stop ends the server.
func dieWithParent(*exec.Cmd) {}
