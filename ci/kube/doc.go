// Package kube turns credentials into client-go configs and watches rollouts.
package kube
