// Package gcpauth gets Google access tokens without gcloud (GitHub Actions
// OIDC through Workload Identity Federation, a credentials file, or a plain
// token), turns them into Artifact Registry credentials and reads a GKE
// cluster's endpoint; see NewTokenSource.
package gcpauth
