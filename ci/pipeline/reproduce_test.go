package pipeline_test

import (
	"strings"
	"testing"

	"gotest.tools/v3/golden"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
)

func TestReproduce(t *testing.T) {
	tests := []struct {
		name string
		call pipeline.Call
	}{
		{"deploy-from-github-actions", pipeline.Call{Verb: "deploy", Target: targets.Canary, Branch: "dv-main", Commit: "0123456789abcdef0123456789abcdef01234567",
			ModuleRef: "github.com/ringg/ringg-ci@89abcdef0123456789abcdef0123456789abcdef", SourceRef: "https://github.com/ringg/dv-pipecat#0123456789abcdef0123456789abcdef01234567",
			SecretsURI: "env://SECRETS_JSON", CredsURI: "env://CREDS_JSON"}},
		{"deploy-of-the-stand-in-from-a-checkout", pipeline.Call{Verb: "deploy", Target: targets.Staging, Branch: "dv-stage", Commit: "c1", StandIn: true,
			SecretsURI: "file:///tmp/enginetest/missing-key.json", Connection: pipeline.Connection{KubeconfigURI: "file:///tmp/kubeconfig", Tunnel: true},
			Overrides: []string{"--namespace", "enginetest-stage", "--image", "localhost:5001/enginetest/dv-pipecat"}}},
		{"deploy-of-a-local-source", pipeline.Call{Verb: "deploy", Target: targets.Staging, Branch: "dv-stage",
			Connection: pipeline.Connection{CredentialsURI: "file:///home/me/creds.json"}}},
		{"promote", pipeline.Call{Verb: "promote", Target: targets.Stable, ModuleRef: "github.com/ringg/ringg-ci@89abcdef0123456789abcdef0123456789abcdef"}},
		{"rollback", pipeline.Call{Verb: "rollback", Target: targets.Canary}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			golden.Assert(t, strings.Join(pipeline.Reproduce(tc.call), "\n")+"\n", "reproduce-"+tc.name+".golden")
		})
	}
}
