//go:build !linux

package main

import "os/exec"

// setParentDeathSignal does nothing here: only Linux can tie a child's life
// to its parent's. The sandbox runs on Linux.
func setParentDeathSignal(*exec.Cmd) {}
