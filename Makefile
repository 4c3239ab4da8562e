# The test command of README.md. CI (.ci/run) runs `make test` after installing
# what it needs; it works the same on a laptop with Go 1.26.
GOTEST  := go test -count=1 -timeout 35m
# The Dagger module's face (dagger.json "source"): a Go module of its own
# with the Dagger SDK and the code the engine generated for it, committed.
MODULE  := ci

.PHONY: test module-check testcluster engine-test

# Build and vet the face with its real generated code (ci/dagger.gen.go,
# ci/internal/dagger): a call to an API v0.21.9 lacks, or a module the
# generated code imports that ci/go.mod does not pin, fails here. Both
# go.mod files must be tidy as committed: the engine's codegen tidies the
# face's on every load, and must find nothing to change (tools/daggerstub
# checks that the generated code is current).
module-check:
	cd $(MODULE) && go build ./... && go vet ./...
	cd $(MODULE) && go mod tidy -diff || { echo "$(MODULE)/go.mod is not tidy: run dagger develop (or go mod tidy) there and commit go.mod and go.sum"; exit 1; }
	go mod tidy -diff || { echo "go.mod is not tidy: run go mod tidy at the root"; exit 1; }

# Build (or reuse) the real kube-apiserver + etcd used by the integration tests,
# cached outside the clone by Kubernetes version and source hash.
testcluster:
	go run ./testcluster/cmd/build-testcluster

test: module-check testcluster
	go vet ./...
	cd $(MODULE) && $(GOTEST) ./...
	$(GOTEST) ./...
	cd examples/chatbot && go vet ./... && $(GOTEST) ./...
	# -trimpath reuses the packages compiled for the test-cluster binary.
	cd tools/testcluster && GOWORK=off $(GOTEST) -trimpath ./...
	cd tools/testcluster/controlplane && GOWORK=off go vet ./... && $(GOTEST) ./...

# The module on a real Dagger engine: every function, the sandbox, the cluster
# verbs against the host test cluster and a loopback registry, a scrub probe.
# Not part of test: CI has no engine. Fails at once, saying what to do, without
# one. ENGINE_TEST_FLAGS e.g. -passes 1 -only deploy.
engine-test:
	go run ./tools/enginetest -write docs/engine-run.md $(ENGINE_TEST_FLAGS)
