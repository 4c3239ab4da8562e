// Package cli is the runner's command line (cmd/ringg-ci): the verbs of
// runner/release and runner/ops behind the flags and environment variables
// ci/command names, with no Dagger in sight. See Run.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/ringg/ringg-ci/ci/command"
)

// Environment variables the command reads credentials and secret documents
// from. Each holds the content itself; the flag of the same purpose names a
// file instead and wins when both are given.
const (
	EnvKubeconfig      = command.EnvKubeconfig
	EnvAccessToken     = command.EnvAccessToken
	EnvCredentialsJSON = command.EnvCredentialsJSON
	EnvSecretsJSON     = command.EnvSecretsJSON
	EnvCredsJSON       = command.EnvCredsJSON
	// The GitHub Actions OIDC pair, under the names the runner sets.
	EnvOIDCRequestURL   = command.EnvOIDCRequestURL
	EnvOIDCRequestToken = command.EnvOIDCRequestToken
)

// Env is what the command reads and writes besides its arguments.
type Env struct {
	// LookupEnv tells a variable set to "" from one not set; nil means a
	// variable is set when Getenv returns something.
	LookupEnv func(string) (string, bool)
	Getenv    func(string) string
	ReadFile  func(string) ([]byte, error)
	Stdout    io.Writer
	Stderr    io.Writer
	Hostname  func() (string, error)
	Now       func() time.Time
}

// OSEnv is the process's own environment.
func OSEnv() Env {
	return Env{
		LookupEnv: os.LookupEnv, Getenv: os.Getenv, ReadFile: os.ReadFile, Stdout: os.Stdout, Stderr: os.Stderr,
		Hostname: os.Hostname, Now: time.Now,
	}
}

// ErrUsage marks a mistake in the command line: exit status 2.
var ErrUsage = errors.New("usage")

// verb is one subcommand.
type verb struct {
	name, args, help string
	run              func(ctx context.Context, r *runner, args []string) error
}

func verbs() []verb {
	return []verb{
		{command.Deploy, "--branch dv-stage|dv-main --image REPO@sha256:… [--secrets-json F] [--creds-json F] [--timeout D]", "upgrade a branch's release to an image, apply its Secrets, watch the rollout, roll back on failure", runDeploy},
		{command.Plan, "--branch B [--image REPO@sha256:…]", "render, dry-run on the cluster and diff against the live release; changes nothing", runPlan},
		{command.Promote, "[--expected-digest sha256:…] [--soak 2m] [--wait-until-healthy] [--verification FILE] [--dry-run]", "gate on the canary (Kubernetes, synthetic calls, metrics against stable, through the soak), then upgrade stable to exactly its digest and Secrets", runPromote},
		{command.Rollback, "--target T [--revision N]", "return a target to its previous (or a given) revision; the canary to stable's image", runRollback},
		{command.Status, "[--target T] [--json]", "revision, state, digest and pods of each target", runStatus},
		{command.Takeover, "--target T [--delete-old-records]", "how far a release was taken over from the old pipeline; delete the old pipeline's records (dry run without the flag)", runTakeover},
		{command.Health, "--target T [--timeout 10s] [--json]", "each pod's health endpoint through the API server", runHealth},
		{command.Verify, "--target T [--verification FILE] [--window 10m] [--json]", "a synthetic call on each pod through the API server, and the metrics against the target it promotes to", runVerify},
		{command.History, "[--target T] [--since 30d] [--json]", "every kept revision: who, what, when, how long, what became of it; deploy frequency, change failure rate, time to restore", runHistory},
		{command.Logs, "--target T [--since 10m] [--pod NAME]", "recent logs of a target's pods, bounded", runLogs},
		{command.Scale, "--target T --replicas N [--wait 5m] [--force]", "scale a target by hand until the next deploy, under the release lock", runScale},
		{command.Target, "(--branch B | --target T) [--check] [--out FILE]", "print a target as JSON; with --check, validate a deploy's inputs (Secrets, chart) without a cluster", runTarget},
		{command.LintChart, "[--chart DIR]", "lint the chart and render it for every target", runLintChart},
		{command.RegistryLogin, "--target T --password-file FILE", "write a password for the target's Artifact Registry repository (a Google access token) to FILE", runRegistryLogin},
		{command.PodSpec, "--branch B [--out FILE]", "print the app's container as the chart configures it for the branch's target (env, port, probes), for a replay", runPodSpec},
		{command.RunPod, "--spec FILE [--time-scale 100ms] -- COMMAND…", "run the app as the kubelet runs the pod's container and say what it would see (ready, not ready, crashed)", runRunPod},
	}
}

// Run runs the command line args (without the program name) and returns the
// process exit status: 0 done, 1 failed, 2 bad usage.
//
// Standard output carries the verb's result (a summary, or JSON with
// --json); standard error carries progress. Credentials never arrive as
// flags (argv is visible to every process and to Dagger's traces): files
// named by flags, or environment variables (see Env). The Dagger module runs
// the command in a container with every credential mounted as a secret, so
// the Dagger engine scrubs it from the output; the same command runs on a
// laptop or in any CI with `go run ./cmd/ringg-ci`.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Now == nil {
		env.Now = time.Now
	}
	r := &runner{env: env, log: slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(env.Stderr, usage())
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, v := range verbs() {
		if v.name != args[0] {
			continue
		}
		err := v.run(ctx, r, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, ErrUsage):
			fmt.Fprintf(env.Stderr, "ringg-ci %s: %s\n", v.name, r.words(err.Error()))
			return 2
		default:
			fmt.Fprintf(env.Stderr, "ringg-ci %s: %s\n", v.name, r.words(err.Error()))
			return 1
		}
	}
	fmt.Fprintf(env.Stderr, "ringg-ci: unknown command %q\n\n%s", args[0], usage())
	return 2
}

// words rewrites an error for whoever called the command: the Dagger
// module's flags when the module ran it (command.EnvCaller), else as it is.
func (r *runner) words(msg string) string {
	if r.env.Getenv != nil && r.env.Getenv(command.EnvCaller) == command.CallerModule {
		return command.InModuleWords(msg)
	}
	return msg
}

func usage() string {
	var b strings.Builder
	b.WriteString("usage: ringg-ci COMMAND [flags]   (ringg-ci COMMAND -h for its flags)\n\ncommands:\n")
	for _, v := range verbs() {
		fmt.Fprintf(&b, "  %-15s %s\n  %-15s   %s\n", v.name, v.help, "", v.args)
	}
	b.WriteString("\ncredentials (never as flags): " + strings.Join([]string{
		EnvAccessToken, EnvCredentialsJSON, EnvOIDCRequestURL + " + " + EnvOIDCRequestToken, EnvKubeconfig,
	}, ", ") + ", or the files " + strings.Join([]string{
		command.Arg(command.AccessTokenFile), command.Arg(command.CredentialsJSON), command.Arg(command.Kubeconfig),
	}, ", ") + " name\n")
	b.WriteString("secret documents: " + EnvSecretsJSON + " / " + EnvCredsJSON + ", or " +
		command.Arg(command.SecretsJSON) + " / " + command.Arg(command.CredsJSON) + " FILE\n")
	return b.String()
}
