package main

import "context"

// Mod has arguments without help.
type Mod struct{}

// Deploy a branch.
func (m *Mod) Deploy(
	ctx context.Context,
	// Branch and commit to deploy.
	branch, commit string,
	image string,
	// Wait for the rollout.
	// +optional
	wait bool,
) error {
	return nil
}
