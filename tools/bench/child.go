package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// rssTools are the binaries the peak-RSS runs need, built into one
// directory: deployonce (one deploy with the runner alone) and maxrss (a
// small wrapper that reads a child's true peak RSS).
type rssTools struct {
	dir string
}

// buildRSSTools builds tools/bench/deployonce and tools/bench/maxrss into
// dir: seconds when warm.
func buildRSSTools(ctx context.Context, root, dir string) (rssTools, error) {
	if _, err := goCmd(ctx, root, nil, "build", "-o", dir+string(filepath.Separator), "./tools/bench/deployonce", "./tools/bench/maxrss"); err != nil {
		return rssTools{}, err
	}
	return rssTools{dir: dir}, nil
}

// peakRSS is one child's peak RSS and the wrapper's own, which bounds how
// much of it may be the wrapper's.
type peakRSS struct {
	Bytes, Floor int64
}

// run runs name with args under maxrss, with env added to the environment.
func (t rssTools) run(ctx context.Context, env []string, name string, args ...string) (peakRSS, error) {
	out := filepath.Join(t.dir, "rss.txt")
	_ = os.Remove(out)
	cmd := exec.CommandContext(ctx, filepath.Join(t.dir, "maxrss"), append([]string{"-o", out, "--", name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		return peakRSS{}, fmt.Errorf("run %s under maxrss: %w: %s", filepath.Base(name), err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		return peakRSS{}, fmt.Errorf("read the peak RSS of %s: %w", filepath.Base(name), err)
	}
	var p peakRSS
	if _, err := fmt.Sscanf(string(raw), "%d %d", &p.Bytes, &p.Floor); err != nil {
		return peakRSS{}, fmt.Errorf("parse the peak RSS of %s (%q): %w", filepath.Base(name), raw, err)
	}
	return p, nil
}

// deploy runs one deploy in the deployonce child.
func (t rssTools) deploy(ctx context.Context, kubeconfig, ns, chartDir, target, digest string) (peakRSS, error) {
	return t.run(ctx, nil, filepath.Join(t.dir, "deployonce"), "-kubeconfig", kubeconfig, "-namespace", ns, "-chart", chartDir, "-target", target, "-digest", digest)
}
