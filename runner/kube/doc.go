// Package kube turns credentials into client-go configs and watches rollouts:
// a rollout fails when failure is certain (restarts, pull errors, the
// Deployment's own progress deadline), when it stops making progress for one
// wave's budget, or at an overall cap.
package kube
