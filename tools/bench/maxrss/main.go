// Command maxrss runs a command and writes its peak resident set size, in
// bytes, to a file:
//
//	maxrss -o rss.txt -- helm upgrade ...
//
// The bench command cannot read a child's peak RSS itself: Go starts
// children with vfork (CLONE_VM), so on exec Linux records the parent's own
// high-water mark as the child's starting maxrss, and every child of a
// 100 MiB benchmark reports at least 100 MiB. This wrapper is a small
// process: what it passes on is its own few MiB, stated as the floor.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

func main() {
	out := flag.String("o", "", "file to write the peak RSS in bytes to")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: maxrss -o FILE -- COMMAND [ARG...]")
		os.Exit(2)
	}
	cmd := exec.Command(flag.Arg(0), flag.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		fmt.Fprintln(os.Stderr, "maxrss:", err)
		os.Exit(1)
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if ru != nil {
		// Linux reports KiB. The second number is this wrapper's own peak
		// (its memory's high-water mark, not its maxrss, which holds the
		// parent's), the floor under the first.
		if werr := os.WriteFile(*out, fmt.Appendf(nil, "%d %d\n", ru.Maxrss*1024, highWater()), 0o644); werr != nil {
			fmt.Fprintln(os.Stderr, "maxrss:", werr)
			os.Exit(1)
		}
	}
	os.Exit(cmd.ProcessState.ExitCode())
}

// highWater is VmHWM of this process in bytes, or 0 when unknown.
func highWater() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb * 1024
		}
	}
	return 0
}
