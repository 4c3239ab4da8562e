package checks

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// fakeDagger stands for the dagger CLI in the workflows' call step: it
// prints what the CLI prints for a run that succeeds, fails with the
// module's record in its error (the format of a v0.21.9 CLI's error, seen
// on the engine kit), or fails before the module ran.
const fakeDagger = `#!/bin/sh
printf '%s\n' "$@" > "$RUNNER_TEMP/dagger-args"
echo "1   : connect" >&2
echo "::warning::a line of the app's log, not a workflow command" >&2
case "$FAKE_DAGGER" in
succeeds)
	printf '### canary: release dv-pipecat-canary revision 3 deployed\n\n| pods | 2/2 ready |\n'
	exit 0 ;;
record)
	cat >&2 <<'EOF'
9   : RinggCi.deploy ERROR [41.0s]
9   : ! ringg-ci deploy: deploy canary (release dv-pipecat-canary in default) failed: 100% of 2 pods CrashLoopBackOff
9   : ! <!-- ringg-ci:record -->

Error: ringg-ci deploy: deploy canary (release dv-pipecat-canary in default) failed: 100% of 2 pods CrashLoopBackOff: last line: {"msg":"invalid configuration"}

<!-- ringg-ci:record -->
### deploy canary failed: revision 4 rolled back to revision 3 (recorded as 5)

Last lines of container dv-pipecat:

` + "```" + `
{"msg":"invalid configuration","error":"required setting REDIS_URL is not set"}
` + "```" + `
<!-- ringg-ci:end --> [traceparent:4756088762c342bdedda664d98d49e9f-d5844b5a63901856]
EOF
	exit 1 ;;
early)
	echo "Error: load module github.com/ringg/ringg-ci@x: git ref not found [traceparent:1-2]" >&2
	exit 1 ;;
esac
`

// Each of the chatbot repository's workflows, run as GitHub runs its call
// step (bash -eo pipefail) with the CLI faked: the job summary gets the
// run's record whether it succeeds or fails, a failure its annotation, and
// the module's output is folded in a group where no line is a workflow
// command.
func TestWorkflowsWriteTheRecordWhetherTheRunSucceedsOrFails(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	for _, wf := range []struct{ file, verb string }{{"github.yml", "deploy"}, {"promote-prod.yml", "promote"}} {
		run, env := callStep(t, loadWorkflow(t, wf.file))
		for _, tc := range []struct {
			name, scenario string
			code           int
			summary        []string
			annotation     string
		}{
			{"succeeds", "succeeds", 0, []string{"### canary: release dv-pipecat-canary revision 3 deployed\n\n| pods | 2/2 ready |\n"}, ""},
			{"fails with its record", "record", 1,
				[]string{"### deploy canary failed: revision 4 rolled back to revision 3 (recorded as 5)\n", `"error":"required setting REDIS_URL is not set"`},
				"::error title=ringg-ci " + wf.verb + " failed::ringg-ci deploy: deploy canary (release dv-pipecat-canary in default) failed: 100%25 of 2 pods CrashLoopBackOff: last line: {\"msg\":\"invalid configuration\"}"},
			{"fails before the module ran", "early", 1,
				[]string{"### " + wf.verb + " failed\n\n```\nload module github.com/ringg/ringg-ci@x: git ref not found\n```\n"},
				"::error title=ringg-ci " + wf.verb + " failed::load module github.com/ringg/ringg-ci@x: git ref not found"},
		} {
			t.Run(wf.file+"/"+tc.name, func(t *testing.T) {
				dir := t.TempDir()
				bin := filepath.Join(dir, "bin")
				assert.NilError(t, os.MkdirAll(bin, 0o755))
				assert.NilError(t, os.WriteFile(filepath.Join(bin, "dagger"), []byte(fakeDagger), 0o755))
				assert.NilError(t, os.WriteFile(filepath.Join(bin, "openssl"), []byte("#!/bin/sh\necho 0123456789abcdef\n"), 0o755))
				script := filepath.Join(dir, "step.sh")
				assert.NilError(t, os.WriteFile(script, []byte(run), 0o644))
				summary := filepath.Join(dir, "summary.md")
				cmd := exec.Command(bash, "--noprofile", "--norc", "-eo", "pipefail", script)
				cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin", "RUNNER_TEMP=" + dir, "GITHUB_STEP_SUMMARY=" + summary,
					"GITHUB_SERVER_URL=https://github.com", "GITHUB_REPOSITORY=ringg/dv-pipecat", "GITHUB_SHA=0123456789abcdef0123456789abcdef01234567",
					"GITHUB_RUN_ID=7", "GITHUB_RUN_ATTEMPT=1", "GITHUB_REF_NAME=dv-main", "GITHUB_ACTOR=me", "FAKE_DAGGER=" + tc.scenario}
				for k, v := range env {
					if strings.Contains(v, "${{") {
						v = "value-of-" + k
					}
					cmd.Env = append(cmd.Env, k+"="+v)
				}
				out, err := cmd.Output()
				code := 0
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				} else {
					assert.NilError(t, err)
				}
				stdout := string(out)
				assert.Equal(t, code, tc.code, stdout)

				got, err := os.ReadFile(summary)
				assert.NilError(t, err)
				for _, want := range tc.summary {
					assert.Check(t, is.Contains(string(got), want))
				}
				assert.Check(t, !strings.Contains(string(got), "ringg-ci:record"), "the markers stay out of the summary: %s", got)
				assert.Check(t, !strings.Contains(string(got), "traceparent"), "the CLI's trace id stays out of the summary: %s", got)

				// The module's output is folded, and read with workflow
				// commands stopped, then the annotation.
				lines := strings.Split(strings.TrimSpace(stdout), "\n")
				assert.Check(t, strings.HasPrefix(lines[0], "::group::dagger call "+wf.verb), lines[0])
				assert.Check(t, is.Equal(lines[1], "::stop-commands::0123456789abcdef"))
				resume := strings.Index(stdout, "::0123456789abcdef::")
				assert.Assert(t, resume > strings.Index(stdout, "::warning::a line of the app's log"), stdout)
				assert.Check(t, is.Contains(stdout[resume:], "::endgroup::"))
				if tc.annotation == "" {
					assert.Check(t, !strings.Contains(stdout, "::error"), stdout)
				} else {
					assert.Check(t, is.Contains(stdout[resume:], tc.annotation+"\n"), stdout)
				}

				args, err := os.ReadFile(filepath.Join(dir, "dagger-args"))
				assert.NilError(t, err)
				assert.Check(t, regexp.MustCompile(`(?m)^--module-ref\ngithub\.com/ringg/ringg-ci@RINGG_CI_COMMIT\n`).Match(args), "%s", args)
				assert.Check(t, is.Contains(string(args), "\n"+wf.verb+"\n"))
			})
		}
	}
}
