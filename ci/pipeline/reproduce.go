package pipeline

import (
	"strings"

	"github.com/ringg/ringg-ci/ci/targets"
)

// Call is how a run called the module, as far as reproducing it goes: a
// record prints the commands that show or replay the run on a laptop,
// with no value of a secret in them, only where the caller keeps it.
type Call struct {
	// Verb is the module's function: deploy, promote or rollback.
	Verb string
	// Target is the run's target; Branch the branch a deploy deployed.
	Target targets.Name
	Branch string
	// Commit is the app's commit the image was built from (--commit).
	Commit string
	// ModuleRef names the module as the caller did (github.com/ringg/ringg-ci@<commit>);
	// empty for a module run from a checkout of ringg-ci.
	ModuleRef string
	// SourceRef names where --source came from (https://github.com/OWNER/REPO#<commit>);
	// StandIn says the source is the stand-in chatbot: without SourceRef,
	// the module's default.
	SourceRef string
	StandIn   bool
	// SecretsURI and CredsURI are where the caller keeps the secret
	// documents (file://…, env://…); empty when not given.
	SecretsURI, CredsURI string
	// Connection is how the run reached the cluster.
	Connection Connection
	// Overrides are the module's flags that replaced a target's defaults
	// (--namespace, --image, --cluster-name…), as flag, value pairs.
	Overrides []string
}

// Connection is how a run reached its cluster.
type Connection struct {
	// KubeconfigURI is where the kubeconfig came from, when one was given.
	KubeconfigURI string
	// Tunnel says the API server was reached through --cluster.
	Tunnel bool
	// CredentialsURI is where a Google credentials JSON came from.
	CredentialsURI string
}

// Reproduce are the commands that reproduce a run on a laptop: for a
// deploy, first the replay (the app really running, and the release on fake
// nodes, with no cloud); then, with the caller's own credentials, the
// target's status and recent logs, and what the verb would change now.
func Reproduce(c Call) []string {
	module := "dagger"
	if c.ModuleRef != "" {
		module += " -m " + c.ModuleRef
	}
	var out []string
	if c.Verb == "deploy" && c.Branch != "" {
		cmd := []string{module, "call"}
		switch {
		case c.SourceRef != "":
			cmd = append(cmd, "--source", c.SourceRef)
		case c.StandIn:
		default:
			// Run in the app's checkout, at the commit.
			cmd = append(cmd, "--source", ".")
		}
		cmd = append(cmd, "replay", "--branch", c.Branch)
		if c.Commit != "" {
			cmd = append(cmd, "--commit", c.Commit)
		}
		cmd = append(cmd, secretFlag("--secrets-json", c.SecretsURI, c.Branch+"-secrets.json")...)
		cmd = append(cmd, secretFlag("--creds-json", c.CredsURI, c.Branch+"-creds.json")...)
		out = append(out, strings.Join(cmd, " "))
	}
	conn := []string{module, "call"}
	switch k := c.Connection; {
	case k.KubeconfigURI != "":
		conn = append(conn, "--kubeconfig", local(k.KubeconfigURI, "file://$HOME/.kube/config"))
		if k.Tunnel {
			conn = append(conn, "--cluster", "tcp://localhost:API_SERVER_PORT")
		}
	case strings.HasPrefix(k.CredentialsURI, "file://"):
		conn = append(conn, "--credentials-json", k.CredentialsURI)
	default:
		conn = append(conn, "--access-token", `cmd://"gcloud auth print-access-token"`)
	}
	conn = append(conn, c.Overrides...)
	at := strings.Join(conn, " ")
	target := strings.ToUpper(string(c.Target))
	if target != "" {
		out = append(out, at+" status --target "+target, at+" logs --target "+target+" --since 30m")
	}
	switch {
	case c.Verb == "deploy" && c.Branch != "":
		out = append(out, at+" plan --branch "+c.Branch)
	case c.Verb == "promote":
		out = append(out, at+" promote --dry-run")
	}
	return out
}

// secretFlag passes a secret document on: from the same file, or, for one
// the run read from its environment (GitHub's secrets), from a local copy
// named file.
func secretFlag(flag, uri, file string) []string {
	if uri == "" {
		return nil
	}
	return []string{flag, local(uri, "file://./"+file)}
}

// local is uri when a laptop can use it as it is, else instead.
func local(uri, instead string) string {
	if strings.HasPrefix(uri, "file://") {
		return uri
	}
	return instead
}
