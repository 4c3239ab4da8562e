package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// durations are the samples of one measurement.
type durations []time.Duration

func (d durations) median() time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (d durations) min() time.Duration {
	if len(d) == 0 {
		return 0
	}
	return slices.Min(d)
}

func (d durations) max() time.Duration {
	if len(d) == 0 {
		return 0
	}
	return slices.Max(d)
}

// medianInt is the median of whole numbers (the lower middle for an even
// count).
func medianInt(v []int) int {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// row is one line of the results table.
type row struct {
	Name   string
	Ours   string
	CLI    string
	Ratio  string
	Target string
	Met    string // "yes", "no" or "" when there is no target
	Note   string
}

// ms writes a duration in milliseconds, or seconds above 10 s.
func ms(d time.Duration) string {
	if d >= 10*time.Second || d <= -10*time.Second {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

// medMin writes "median (min x)" of samples.
func medMin(d durations) string {
	if len(d) == 0 {
		return "-"
	}
	return fmt.Sprintf("%s (min %s)", ms(d.median()), ms(d.min()))
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// writeTable prints rows for a terminal.
func writeTable(w io.Writer, rows []row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BENCHMARK\tOURS\tHELM CLI\tRATIO\tTARGET\tMET")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, dash(r.Ours), dash(r.CLI), dash(r.Ratio), dash(r.Target), dash(r.Met))
	}
	return tw.Flush()
}

// writeMarkdown prints rows as a Markdown table followed by their notes.
func writeMarkdown(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| Benchmark | Ours | helm CLI | Ratio | Target | Met |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", cell(r.Name), cell(r.Ours), cell(r.CLI), cell(r.Ratio), cell(r.Target), cell(r.Met))
	}
	var notes []string
	for _, r := range rows {
		if r.Note != "" {
			notes = append(notes, fmt.Sprintf("- **%s**: %s", r.Name, r.Note))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, strings.Join(notes, "\n"))
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cell(s string) string { return strings.ReplaceAll(dash(s), "|", `\|`) }

// printTrace lists the requests of each traced step, relative to its first.
func printTrace(w io.Writer, trace map[string][]request) {
	names := make([]string, 0, len(trace))
	for k := range trace {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		reqs := trace[k]
		fmt.Fprintf(w, "%s: %d requests\n", k, len(reqs))
		for _, r := range reqs {
			fmt.Fprintf(w, "  +%7.1f ms %-6s %s\n", float64(r.At.Sub(reqs[0].At))/float64(time.Millisecond), r.Method, r.Path)
		}
	}
}
