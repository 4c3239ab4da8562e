package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/ringg/ringg-ci/ci/internal/dagger"
	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/release"
	"github.com/ringg/ringg-ci/ci/secrets"
	"github.com/ringg/ringg-ci/ci/targets"
)

// secretBundle validates the Secret JSON arguments and returns the bundle to
// apply with its names; both are nil when neither argument was given. Every
// string inside the JSON is registered as a Dagger secret first, so a value
// that leaks into any output is scrubbed.
func (m *RinggCi) secretBundle(ctx context.Context, appEnv, creds *dagger.Secret, namespace string) (*secrets.Bundle, *pipeline.SecretNames, error) {
	app, err := plaintext(ctx, appEnv, "--secrets-json")
	if err != nil {
		return nil, nil, err
	}
	cr, err := plaintext(ctx, creds, "--creds-json")
	if err != nil {
		return nil, nil, err
	}
	if app == "" && cr == "" {
		return nil, nil, nil
	}
	scrub(app)
	scrub(cr)
	var appData, crData []byte
	if app != "" {
		appData = []byte(app)
	}
	if cr != "" {
		crData = []byte(cr)
	}
	b, err := secrets.Build(appData, crData, secrets.DefaultNames(), namespace)
	if err != nil {
		return nil, nil, err
	}
	n := b.Names()
	return &b, &pipeline.SecretNames{AppEnv: n.AppEnv, GCPCreds: n.GCPCreds}, nil
}

// scrub registers every string leaf of a JSON document as a Dagger secret.
// Invalid JSON is left to the validation that follows.
func scrub(doc string) {
	var v any
	if json.Unmarshal([]byte(doc), &v) != nil {
		return
	}
	var walk func(any)
	n := 0
	walk = func(v any) {
		switch t := v.(type) {
		case map[string]any:
			for _, e := range t {
				walk(e)
			}
		case []any:
			for _, e := range t {
				walk(e)
			}
		case string:
			if len(t) >= 4 {
				n++
				dag.SetSecret(fmt.Sprintf("ringg-ci-scrub-%d", n), t)
			}
		}
	}
	walk(v)
}

// clients connects to the cluster of t.
func (m *RinggCi) clients(ctx context.Context, t targets.Target) (release.Clients, error) {
	cfg, err := m.restConfig(ctx, t)
	if err != nil {
		return release.Clients{}, err
	}
	return release.Clients{Config: cfg, Logger: logger()}, nil
}

// summarizer is the result of a release verb.
type summarizer interface{ Summary() string }

// execute connects to t's cluster, runs one release verb with progress
// logged at a steady pace and returns its summary.
func (m *RinggCi) execute(ctx context.Context, t targets.Target, run func(release.Clients, release.Options) (summarizer, error)) (string, error) {
	clients, err := m.clients(ctx, t)
	if err != nil {
		return "", err
	}
	res, err := run(clients, progressOptions(clients.Logger))
	if err != nil {
		return "", err
	}
	return res.Summary(), nil
}

// progressOptions logs rollout progress at a steady pace.
func progressOptions(log *slog.Logger) release.Options {
	return release.Options{
		Progress:         func(p release.Progress) { log.Info(p.String()) },
		ProgressInterval: 5 * time.Second,
	}
}

// holderOr names the runner of a verb for the release lock.
func holderOr(h string) string {
	if h != "" {
		return h
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return "ringg-ci@" + host
}

// parseDuration reads an optional duration flag; empty is zero.
func parseDuration(flag, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s %q: want a positive duration such as 90s or 20m", flag, s)
	}
	return d, nil
}

// operate prepares an operation (health, logs, scale): it reads the verb's
// duration flag and connects to the target's cluster with a clientset, for
// the operations that talk to the API directly.
func (m *RinggCi) operate(ctx context.Context, target Target, flag, value string) (targets.Target, time.Duration, release.Clients, error) {
	d, err := parseDuration(flag, value)
	if err != nil {
		return targets.Target{}, 0, release.Clients{}, err
	}
	t, err := m.target(target)
	if err != nil {
		return t, 0, release.Clients{}, err
	}
	c, err := m.clients(ctx, t)
	if err != nil {
		return t, 0, c, err
	}
	if c.Kube, err = kubernetes.NewForConfig(c.Config); err != nil {
		return t, 0, c, fmt.Errorf("connect to the cluster of %s: %w", t.Name, err)
	}
	return t, d, c, nil
}

// jsonText renders v as indented JSON.
func jsonText(v any) (string, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode JSON: %w", err)
	}
	return string(b) + "\n", nil
}
