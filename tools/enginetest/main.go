// Command enginetest runs the ringg-ci Dagger module on a real Dagger engine
// and checks what every function does: `dagger functions`, the --help of every
// function, build for both platforms, the checks, the sandbox end to end, and
// deploy / plan / status / promote / rollback / health / logs / scale against
// the project's test cluster on this machine (reached through --cluster
// tcp://localhost:PORT) with images pushed to a loopback registry. It also
// plants recognisable secret values and searches every byte the runs printed
// (--progress plain) for them.
//
// It is `make engine-test`: never part of `make test` (CI has no engine). It
// fails at once, saying what to do, when no engine is reachable.
//
//	go run ./tools/enginetest [-passes 2] [-reset 'cmd'] [-registry localhost:5001] [-write docs/engine-run.md]
//	go run ./tools/enginetest -bench -kit ../shared/engine -write docs/benchmarks.md   # one deploy, phase by phase
//	go run ./tools/enginetest -loads -kit ../shared/engine -write docs/benchmarks.md   # first loads: floor, ours, before
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.repo, "repo", ".", "the repository to load the module from (a copy is made)")
	flag.StringVar(&o.registry, "registry", "localhost:5001", "a registry the engine can push to over plain HTTP (loopback)")
	flag.IntVar(&o.passes, "passes", 2, "how many times to run the whole list (the first one cold if the engine was emptied, see -reset)")
	flag.StringVar(&o.reset, "reset", "", "shell command run before the first pass to empty the engine, e.g. the engine kit's stop/rm/start")
	flag.StringVar(&o.logs, "logs", filepath.Join(os.TempDir(), "engine-test-logs"), "directory for each command's --progress plain log")
	flag.StringVar(&o.write, "write", "", "write the results as markdown to this file (e.g. docs/engine-run.md)")
	flag.StringVar(&o.only, "only", "", "run only the steps whose name contains this, or one of these comma-separated parts")
	flag.StringVar(&o.skip, "skip", "", "leave out the steps whose name contains this")
	flag.BoolVar(&o.bench, "bench", false, "instead of the checks, measure one deploy phase by phase: cold (runner from source, then a pinned runner image) and warm; empties the engine")
	flag.BoolVar(&o.loads, "loads", false, "instead of the checks, measure the first load on an emptied engine of a module with only the Dagger SDK (the floor), of this module and of the module before its face was split off")
	flag.IntVar(&o.loadRounds, "loads-n", 3, "rounds of -loads")
	flag.StringVar(&o.kit, "kit", "", "the engine kit's directory (../shared/engine), for -bench and -loads")
	flag.StringVar(&o.top, "top", "/opt/dagger-local", "the engine kit's $TOP, for -bench and -loads")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "enginetest:", err)
		os.Exit(1)
	}
}

type options struct {
	repo, registry, reset, logs, write, only, skip string
	kit, top                                       string
	passes, loadRounds                             int
	bench, loads                                   bool
}

// engineHelp says how to get an engine on this kind of machine.
const engineHelp = `no Dagger engine is reachable. Start one and point the CLI at it:
  the engine kit (../shared/engine/README.md): ./build.sh, ./images.sh, ./start.sh, then
  export _EXPERIMENTAL_DAGGER_RUNNER_HOST=unix:///run/dagger/engine.sock PATH=/opt/dagger-local/bin:$PATH
  elsewhere: any Dagger v0.21.9 engine the dagger CLI reaches`

func run(ctx context.Context, o options) error {
	if _, err := exec.LookPath("dagger"); err != nil {
		return errors.New(engineHelp)
	}
	vctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	out, err := exec.CommandContext(vctx, "dagger", "core", "version").CombinedOutput()
	cancel()
	if err != nil {
		return fmt.Errorf("%s\n(dagger core version: %v: %s)", engineHelp, err, lastLine(string(out)))
	}
	engineVersion := strings.TrimSpace(lastLine(string(out)))
	if err := os.MkdirAll(o.logs, 0o755); err != nil {
		return fmt.Errorf("create the log directory: %w", err)
	}
	env, err := setup(ctx, o)
	if err != nil {
		return err
	}
	defer env.close()
	if o.loads {
		if o.kit == "" {
			return errors.New("-loads empties and restarts the engine: pass -kit with the engine kit's directory (../shared/engine)")
		}
		table, err := env.loads(ctx, o, o.loadRounds)
		if err != nil {
			return err
		}
		report := table + fmt.Sprintf("\nEngine: %s; %s; load average at the end %s.\n",
			engineVersion, time.Now().UTC().Format("2006-01-02 15:04 MST"), loadAverage())
		fmt.Print(report)
		if o.write != "" {
			return writeReport(o.write, report, "engineloads")
		}
		return nil
	}
	if o.bench {
		table, err := env.bench(ctx, o)
		if err != nil {
			return err
		}
		report := table + fmt.Sprintf("\nEngine: %s; registry %s; %s; load average at the end %s.\n",
			engineVersion, o.registry, time.Now().UTC().Format("2006-01-02 15:04 MST"), loadAverage())
		fmt.Print(report)
		if o.write != "" {
			return writeReport(o.write, report, "enginebench")
		}
		return nil
	}
	var passes [][]result
	for p := 1; p <= o.passes; p++ {
		if p == 1 && o.reset != "" {
			fmt.Fprintf(os.Stderr, "== emptying the engine: %s\n", o.reset)
			cmd := exec.CommandContext(ctx, "sh", "-c", o.reset)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("reset the engine: %w", err)
			}
		}
		fmt.Fprintf(os.Stderr, "== pass %d of %d\n", p, o.passes)
		passes = append(passes, env.pass(ctx, p, o))
	}
	report := markdown(engineVersion, o, passes)
	if o.write != "" {
		if err := writeReport(o.write, report, "enginetest"); err != nil {
			return err
		}
	}
	fmt.Print(report)
	failed := 0
	for _, rs := range passes {
		for _, r := range rs {
			if r.err != nil {
				failed++
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d checks failed; logs in %s", failed, o.logs)
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// writeReport puts report between the markers <!-- name:begin --> and
// <!-- name:end --> of file, or writes the file when it has none.
func writeReport(file, report, name string) error {
	begin, end := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
	old, err := os.ReadFile(file)
	text := report
	if err == nil {
		before, rest, ok1 := strings.Cut(string(old), begin)
		_, after, ok2 := strings.Cut(rest, end)
		if !ok1 || !ok2 {
			return fmt.Errorf("%s has no %s … %s block to replace: add the two markers where the results go", file, begin, end)
		}
		text = before + begin + "\n" + report + end + after
	}
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

// loadAverage is the machine's load average, for the record.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
