package cli

import (
	"context"
	"flag"
	"os"

	"github.com/ringg/ringg-ci/ci/command"
	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/runner/release"
)

// runTakeover reports how far a target's release was taken over from the
// old pipeline (which revision runs and who wrote it, the old pipeline's
// records still kept and the values in them that may be secrets, the
// fixed-name Secrets and what still reads them) and, with
// --delete-old-records, deletes those records once ringg-ci's revision is
// the deployed one. Without the flag it changes nothing.
func runTakeover(ctx context.Context, r *runner, args []string) error {
	var target, holder string
	var del bool
	f := r.flags(command.Takeover).target().cluster().chart().output()
	f.StringVar(&target, command.TargetName, "", "target whose release to look at: staging, canary or stable")
	f.BoolVar(&del, command.DeleteOldRecords, false, "delete the revisions the old pipeline wrote (their values may hold secrets); refused until ringg-ci's revision is the deployed one. Without it: a dry run")
	f.holder(&holder)
	if err := f.parse(args); err != nil {
		return err
	}
	// The chart only names the old values it has no place for: without
	// --chart, a missing default is no reason to stop.
	chartDir, given := r.chartDir, false
	f.Visit(func(fl *flag.Flag) { given = given || fl.Name == "chart" })
	if _, err := os.Stat(chartDir); err != nil && !given {
		r.log.Info("no chart at the default path: the old records' values are counted, not named; pass --chart to name them", "chart", chartDir)
		chartDir = ""
	}
	plan, err := pipeline.NewTakeover(pipeline.TakeoverInput{
		Target: targetName(target), Overrides: r.overrides, ChartDir: chartDir, DeleteOldRecords: del, Holder: r.holderOr(holder),
	})
	if err != nil {
		return err
	}
	clients, err := r.clients(ctx, plan.Target)
	if err != nil {
		return err
	}
	st, err := (&release.Takeover{Clients: clients, Plan: plan}).Run(ctx)
	if st != nil {
		if perr := r.print(st.String(), st); perr != nil && err == nil {
			err = perr
		}
	}
	return err
}
