package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// Targets of issue 9.
const (
	targetAPIRatio = 0.25
	targetReturn   = 200 * time.Millisecond
	targetRender   = 150 * time.Millisecond
	targetRSS      = 100 << 20
	targetCompile  = 90 * time.Second
)

// machine describes where the numbers were measured.
type machine struct {
	CPUs    int
	Model   string
	Memory  string
	Kernel  string
	Go      string
	LoadAvg string // at the start: the machine may be shared
	Date    string
	Deps    map[string]string // module versions linked into the benchmark
}

func readMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Date: time.Now().UTC().Format("2006-01-02 15:04 MST"), Deps: map[string]string{}}
	m.Model = procField("/proc/cpuinfo", "model name")
	if kb := procField("/proc/meminfo", "MemTotal"); kb != "" {
		var n int64
		fmt.Sscanf(kb, "%d", &n)
		m.Memory = fmt.Sprintf("%.1f GiB", float64(n)/(1<<20))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			switch d.Path {
			case "helm.sh/helm/v3", "k8s.io/client-go":
				m.Deps[d.Path] = d.Version
			}
		}
	}
	return m
}

// procField returns the value of the first "key: value" line of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func reqs(s series) string {
	return fmt.Sprintf("%d req (%d OpenAPI)", medianInt(s.Reqs), medianInt(s.OpenAPI))
}

func (r *results) rows() []row {
	var rows []row
	if c := r.Cluster; c != nil {
		api := func(name string, ours, cli series, note string) row {
			ratio := float64(ours.API.median()) / float64(cli.API.median())
			best := float64(ours.API.min()) / float64(cli.API.min())
			return row{
				Name: name, Ours: medMin(ours.API) + ", " + reqs(ours), CLI: medMin(cli.API) + ", " + reqs(cli),
				Ratio: fmt.Sprintf("%.2f× (min/min %.2f×)", ratio, best), Target: fmt.Sprintf("≤ %.2f× the CLI", targetAPIRatio), Met: yesNo(ratio <= targetAPIRatio),
				Note: fmt.Sprintf("%sthe wait excluded; ours then watches with %d requests (median), the CLI's --wait polls with %d", note, medianInt(ours.WaitReqs), medianInt(cli.WaitReqs)),
			}
		}
		c.CLIDeploy.WaitReqs, c.CLIPromote.WaitReqs = c.CLIDeployWait.Reqs, c.CLIPromoteWait.Reqs
		rows = append(rows,
			api("Deploy API work, canary (2 replicas)", c.OursDeploy, c.CLIDeploy, "Deploy.Run minus the rollout watch vs `helm upgrade` without --wait; "),
			api("Promote API work, stable (60 replicas)", c.OursPromote, c.CLIPromote, "ours includes the canary gate (release record, Deployment, pods; soak 0) that the CLI has no equivalent of; "),
		)
		wait := func(name string, ours, cli series, replicas int) row {
			return row{
				Name: name, Ours: fmt.Sprintf("%s, max %s", medMin(ours.AfterReady), ms(ours.AfterReady.max())),
				CLI:    fmt.Sprintf("%s, max %s", medMin(cli.AfterReady), ms(cli.AfterReady.max())),
				Target: "ours ≤ " + ms(targetReturn), Met: yesNo(ours.AfterReady.max() <= targetReturn),
				Note: fmt.Sprintf("new pods Ready when the tool returned (median): ours %d/%d, helm --wait %d/%d; "+
					"the controllers mark the Deployment complete %s (median) after its last new pod is Ready; "+
					"from that moment ours returns in %s (max %s), helm --wait in %s",
					medianInt(ours.ReadyAtEnd), replicas, medianInt(cli.ReadyAtEnd), replicas,
					ms(ours.CtrlLag.median()), ms(ours.AfterComplete.median()), ms(ours.AfterComplete.max()), ms(cli.AfterComplete.median())),
			}
		}
		rows = append(rows,
			wait("Return after the last new pod Ready, 2 replicas", c.OursDeploy, c.CLIDeployWait, 2),
			wait("Return after the last new pod Ready, 60 replicas", c.OursPromote, c.CLIPromoteWait, 60),
			row{Name: "Deploy wall time, 2 replicas", Ours: medMin(c.OursDeploy.Wall), CLI: medMin(c.CLIDeployWait.Wall),
				Note: fmt.Sprintf("ours = API work + rollout + return; rollout floor (upgrade applied to last new pod Ready) median %s", ms(c.OursDeploy.Floor.median()))},
			row{Name: "Promote wall time, 60 replicas", Ours: medMin(c.OursPromote.Wall), CLI: medMin(c.CLIPromoteWait.Wall),
				Note: fmt.Sprintf("rollout floor (upgrade applied to last new pod Ready) median %s (min %s); ours exceeds it by median %s",
					ms(c.OursPromote.Floor.median()), ms(c.OursPromote.Floor.min()), ms(c.OursPromote.Wall.median()-c.OursPromote.Floor.median()))},
		)
	}
	rows = append(rows, row{Name: "Render all 3 targets in process", Ours: medMin(r.Render), Target: "≤ " + ms(targetRender),
		Met: yesNo(r.Render.median() <= targetRender), Note: "chart.Load + chart.Values + chart.Render for staging, canary and stable; no cluster"})
	if c := r.Cluster; c != nil {
		rows = append(rows,
			row{Name: "Plan all 3 targets in process", Ours: fmt.Sprintf("%s, %d req", medMin(c.Plan), medianInt(c.PlanReqs)), Target: "≤ " + ms(targetRender),
				Met: yesNo(c.Plan.median() <= targetRender), Note: "release.Plan.Run per target: render, Helm server-side dry run, dry-run apply of every object, diff"},
			row{Name: "Peak RSS of a deploy, 2 replicas", Ours: mib(c.RSSOurs2.Bytes), CLI: mib(c.RSSCLI2.Bytes), Target: "≤ " + mib(targetRSS),
				Met: yesNo(c.RSSOurs2.Bytes <= targetRSS), Note: fmt.Sprintf("one run each: ours is one Deploy.Run with its watch in tools/bench/deployonce, "+
					"a binary that links only the runner; the CLI is `helm upgrade --wait`; both under tools/bench/maxrss, whose own peak (%s) is the most either number can owe it", mib(max(c.RSSOurs2.Floor, c.RSSCLI2.Floor)))},
			row{Name: "Peak RSS of a deploy, 60 replicas", Ours: mib(c.RSSOurs60.Bytes), CLI: mib(c.RSSCLI60.Bytes), Target: "≤ " + mib(targetRSS), Met: yesNo(c.RSSOurs60.Bytes <= targetRSS)},
		)
	}
	if cp := r.Compile; cp != nil {
		rows = append(rows,
			row{Name: "Cold compile of the module's face, ci/ (empty GOCACHE)", Ours: ms(cp.Face.Cold), Target: "≤ " + ms(targetCompile), Met: yesNo(cp.Face.Cold <= targetCompile),
				Note: fmt.Sprintf("package main with its generated code, paid on every first load of the module; %d non-standard packages from %d modules, plus %d standard packages", cp.Face.Packages, cp.Face.Modules, cp.Face.Std)},
			row{Name: "Cold compile of the runner, cmd/ringg-ci (empty GOCACHE)", Ours: ms(cp.Runner.Cold),
				Note: fmt.Sprintf("the runner, paid once per Dagger engine only when no pinned runner image is there; %d non-standard packages from %d modules, plus %d standard packages", cp.Runner.Packages, cp.Runner.Modules, cp.Runner.Std)},
		)
	}
	return rows
}

const (
	beginMarker = "<!-- bench:begin: generated by go run ./tools/bench -write; edit outside the markers -->"
	endMarker   = "<!-- bench:end -->"
)

// writeDoc replaces the generated block of path, or creates the file.
func writeDoc(path string, r *results, rows []row) error {
	var b bytes.Buffer
	b.WriteString(beginMarker + "\n")
	m := r.Machine
	fmt.Fprintf(&b, "Measured %s, %d rounds", m.Date, r.Rounds)
	if r.Compile != nil {
		b.WriteString(", with -compile")
	}
	b.WriteString(".\n\n")
	fmt.Fprintf(&b, "- Machine: %d CPUs (%s), %s memory, Linux %s, load average %s at the start (shared with other work)\n", m.CPUs, m.Model, m.Memory, m.Kernel, m.LoadAvg)
	fmt.Fprintf(&b, "- Go %s; runner linked with helm.sh/helm/v3 %s, k8s.io/client-go %s\n", strings.TrimPrefix(m.Go, "go"), m.Deps["helm.sh/helm/v3"], m.Deps["k8s.io/client-go"])
	if c := r.Cluster; c != nil {
		fmt.Fprintf(&b, "- helm CLI %s built from helm.sh/helm/v3/cmd/helm (tools/helmcli); test cluster kube-apiserver %s with fake nodes\n", r.HelmVersion, c.KubeVersion)
	}
	b.WriteString("\n")
	writeMarkdown(&b, rows)
	b.WriteString(endMarker + "\n")

	if _, err := os.Stat(path); os.IsNotExist(err) {
		if err := os.WriteFile(path, []byte("# Benchmarks\n\n"+beginMarker+"\n"+endMarker+"\n"), 0o644); err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
	}
	return replaceBlock(path, beginMarker, endMarker, b.String())
}

// replaceBlock replaces what lies between begin and end (both included) in
// path with block.
func replaceBlock(path, begin, end, block string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	s := string(old)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		return fmt.Errorf("write %s: the bench markers are missing; put %q and %q where the results go", path, begin, end)
	}
	s = s[:i] + block + strings.TrimPrefix(s[j+len(end):], "\n")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
