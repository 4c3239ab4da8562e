// Package gcpauth gets Google access tokens without gcloud: from GitHub
// Actions OIDC through Workload Identity Federation and service-account
// impersonation, from a credentials JSON file, or from a plain access token.
// It also turns a token into Artifact Registry credentials and reads a GKE
// cluster's endpoint and CA certificate from the GKE API.
//
// Every token source it returns caches its token, refreshes it by itself
// before it expires (OIDC tokens live about 5 minutes, federated tokens up to
// 10, impersonated tokens 1 hour) and serialises refreshes, so many
// concurrent callers cause one exchange. Errors name the likely fix and never
// contain a token or credential.
package gcpauth
