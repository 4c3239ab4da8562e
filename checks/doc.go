// Package checks holds tests of repository-wide properties that no single
// package owns: the GitHub workflows and the rules Dagger's codegen imposes on
// the module's package main.
package checks
