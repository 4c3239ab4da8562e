package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ringg/ringg-ci/ci/command"
	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
)

// runner carries one invocation's environment and common flags.
type runner struct {
	env Env
	log *slog.Logger

	overrides targets.Overrides
	conn      connFlags
	chartDir  string
	asJSON    bool
	// reproduce are the commands a record prints to reproduce the run.
	reproduce []string
}

// connFlags say how to reach a cluster and Google. The Workload Identity
// provider and service account are target overrides: identity belongs to
// the target.
type connFlags struct {
	kubeconfig, kubeContext, server, tlsServerName string
	accessTokenFile, credentialsFile               string
}

// flags is a verb's flag set with the groups it takes.
type flags struct {
	*flag.FlagSet
	r *runner
}

func (r *runner) flags(verb string) flags {
	fs := flag.NewFlagSet("ringg-ci "+verb, flag.ContinueOnError)
	fs.SetOutput(r.env.Stderr)
	return flags{fs, r}
}

// parse parses args; stray positional arguments are a usage error.
func (f flags) parse(args []string) error {
	if err := f.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if f.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q; every option is a flag", ErrUsage, f.Args())
	}
	return nil
}

// target adds the overrides of the targets' defaults.
func (f flags) target() flags {
	o := &f.r.overrides
	f.StringVar(&o.Project, command.Project, "", "GCP project of the clusters, instead of the target's")
	f.StringVar(&o.Image, command.ImageRepository, "", "image repository to deploy from, instead of the target's Artifact Registry repository")
	f.StringVar(&o.ClusterName, command.ClusterName, "", "GKE cluster name, instead of the target's")
	f.StringVar(&o.ClusterLocation, command.ClusterLocation, "", "GKE cluster location (zone or region), instead of the target's")
	f.StringVar(&o.Namespace, command.Namespace, "", "Kubernetes namespace, instead of the target's")
	return f
}

// cluster adds how to reach the cluster (a kubeconfig, or GKE through Google
// credentials) and the chart.
func (f flags) cluster() flags {
	c := &f.r.conn
	f.StringVar(&c.kubeconfig, command.Kubeconfig, "", "kubeconfig file for a cluster not reached through the GKE API (or $"+EnvKubeconfig+" with its content)")
	f.StringVar(&c.kubeContext, command.Context, "", "kubeconfig context instead of its current one")
	f.StringVar(&c.server, command.Server, "", "HOST:PORT to reach every kubeconfig cluster at (a tunnel); the certificate is still checked against the kubeconfig's host")
	f.StringVar(&c.tlsServerName, command.TLSServerName, "", "name the API server certificate is checked against when --server is given")
	return f.google()
}

// google adds the Google credential options.
func (f flags) google() flags {
	c, id := &f.r.conn, &f.r.overrides.Identity
	f.StringVar(&id.Provider, command.WorkloadIdentityProvider, "", "Workload Identity provider for the GitHub OIDC token, instead of the target's (projects/N/locations/global/workloadIdentityPools/P/providers/X)")
	f.StringVar(&id.ServiceAccount, command.ServiceAccount, "", "service account to impersonate after the Workload Identity exchange, instead of the target's")
	f.StringVar(&c.accessTokenFile, command.AccessTokenFile, "", "file holding a Google access token (or $"+EnvAccessToken+")")
	f.StringVar(&c.credentialsFile, command.CredentialsJSON, "", "Google credentials JSON file: service account key, authorized_user or external_account (or $"+EnvCredentialsJSON+")")
	return f
}

// chart adds the chart directory.
func (f flags) chart() flags {
	f.StringVar(&f.r.chartDir, command.Chart, "deploy/chart", "directory of the Helm chart")
	return f
}

// output adds --json.
func (f flags) output() flags {
	f.BoolVar(&f.r.asJSON, command.JSON, false, "print JSON instead of text")
	return f
}

// duration adds a duration flag whose bad value names the flag and the fix.
func (f flags) duration(p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	f.Func(name, usage, func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return fmt.Errorf("want a positive duration such as 90s or 20m, not %q", s)
		}
		*p = d
		return nil
	})
}

// standIn adds --stand-in: the image is built from the stand-in chatbot.
func (f flags) standIn(p *bool) {
	f.BoolVar(p, command.StandIn, false, "the image is built from the stand-in chatbot (examples/chatbot): refused for a target's own repository")
}

// reproduceFlag adds --reproduce, repeatable: the commands the run's
// record prints to reproduce it (the Dagger module passes its own).
func (f flags) reproduceFlag() {
	f.Func(command.Reproduce, "a command that reproduces this run, printed in its record (repeatable; default: status and logs of the target)", func(s string) error {
		f.r.reproduce = append(f.r.reproduce, s)
		return nil
	})
}

// holder adds --holder, defaulting to ringg-ci@<host>.
func (f flags) holder(p *string) {
	f.StringVar(p, command.Holder, "", "who runs this, shown to a concurrent run that finds the release locked (default ringg-ci@<host>)")
}

func (r *runner) holderOr(h string) string {
	if h != "" {
		return h
	}
	host, err := r.env.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return pipeline.DefaultHolder + "@" + host
}

// document reads a secret document from the file a flag names or, without
// the flag, from an environment variable; "" when neither is set.
func (r *runner) document(file, envName, what string) (string, error) {
	text, given := "", false
	if file != "" {
		b, err := r.env.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", what, err)
		}
		text, given = string(b), true
	} else if r.env.LookupEnv != nil {
		text, given = r.env.LookupEnv(envName)
	} else {
		text = r.env.Getenv(envName)
		given = text != ""
	}
	if given && strings.TrimSpace(text) == "" {
		return "", fmt.Errorf("%w: %s was given but is empty (a GitHub secret missing from the job's environment expands to an empty string): "+
			"pass the document, or leave %s out to keep what the release has", ErrEmptyDocument, what, what)
	}
	return text, nil
}

// ErrEmptyDocument means a document was given empty: given and not given
// mean different things (new Secrets, or the release's current ones).
var ErrEmptyDocument = errors.New("empty document")

// targetName reads a --target value: staging, canary or stable in any case.
func targetName(s string) targets.Name { return targets.Name(strings.ToLower(strings.TrimSpace(s))) }

// print writes a verb's result to standard output.
func (r *runner) print(text string, v any) error {
	if r.asJSON {
		b, err := jsonText(v)
		if err != nil {
			return err
		}
		text = b
	}
	_, err := io.WriteString(r.env.Stdout, text)
	return err
}

// targets adds the repeatable --target of the verbs that read several
// targets (status, history).
func (f flags) targets(names *[]targets.Name) {
	f.Func(command.TargetName, "target to show, repeatable (default: all of them)", func(s string) error {
		if _, err := targets.Get(targetName(s)); err != nil {
			return err
		}
		*names = append(*names, targetName(s))
		return nil
	})
}
