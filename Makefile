# The test command of README.md. CI (.ci/run) runs `make test` after installing
# what it needs; it works the same on a laptop with Go 1.26.
OVERLAY := $(CURDIR)/.cache/daggerstub/overlay.json
GOTEST  := go test -count=1 -timeout 25m
# The Dagger module's face (dagger.json "source"): a Go module of its own
# with only the Dagger SDK; the release engine it runs lives in ci/.
MODULE  := ci

.PHONY: test module-check stub testcluster engine-test

# Stand-in for the code the Dagger engine generates (see tools/daggerstub):
# it declares and decodes every argument as the real dispatcher does, so a
# parameter that collides with it fails here as it fails on an engine.
stub:
	go run ./tools/daggerstub -ci $(MODULE) -out .cache/daggerstub

# Type-check and vet the module's package main against dagger.io/dagger
# v0.21.9 without an engine: a call to an API that version lacks fails here.
# Its go.mod must be tidy as committed (the engine tidies it on every load):
# checked with the stand-ins in place, then removed again. ci/go.mod too.
module-check: stub
	cd $(MODULE) && go build -overlay $(OVERLAY) -o /dev/null . && go vet -overlay $(OVERLAY) ./...
	mkdir -p $(MODULE)/internal/dagger
	cp .cache/daggerstub/internal_dagger.go $(MODULE)/internal/dagger/dagger.gen.go
	cp .cache/daggerstub/dagger_gen.go $(MODULE)/dagger.gen.go
	cd $(MODULE) && go mod tidy -diff; rc=$$?; rm -f internal/dagger/dagger.gen.go dagger.gen.go; \
	  if [ $$rc -ne 0 ]; then echo "$(MODULE)/go.mod is not tidy: run go mod tidy there with the stand-ins in place (see Makefile)"; exit 1; fi
	go mod tidy -diff || { echo "go.mod is not tidy: run go mod tidy at the root"; exit 1; }

# Build (or reuse) the real kube-apiserver + etcd used by the integration tests,
# cached outside the clone by Kubernetes version and source hash.
testcluster:
	go run ./testcluster/cmd/build-testcluster

test: module-check testcluster
	go vet ./...
	cd $(MODULE) && $(GOTEST) -overlay $(OVERLAY) ./...

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
