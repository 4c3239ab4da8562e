# The test command of README.md. CI (.ci/run) runs `make test` after installing
# what it needs; it works the same on a laptop with Go 1.26.
OVERLAY := $(CURDIR)/.cache/daggerstub/overlay.json
GOTEST  := go test -count=1 -timeout 25m

.PHONY: test module-check stub testcluster

# Stand-in for the code the Dagger engine generates (see tools/daggerstub).
stub:
	go run ./tools/daggerstub -ci ci -out .cache/daggerstub

# Type-check and vet the Dagger module's package main against dagger.io/dagger
# v0.21.9 without an engine: a call to an API that version lacks fails here.
# ci/go.mod must be tidy as committed (the engine tidies it on every load):
# checked with the stand-ins in place, then removed again.
module-check: stub
	cd ci && go build -overlay $(OVERLAY) -o /dev/null . && go vet -overlay $(OVERLAY) ./...
	cp .cache/daggerstub/internal_dagger.go ci/internal/dagger/dagger.gen.go
	cp .cache/daggerstub/dagger_gen.go ci/dagger.gen.go
	cd ci && go mod tidy -diff; rc=$$?; rm -f internal/dagger/dagger.gen.go dagger.gen.go; \
	  if [ $$rc -ne 0 ]; then echo "ci/go.mod is not tidy: run go mod tidy in ci/ with the stand-ins in place (see Makefile)"; exit 1; fi

# Build (or reuse) the real kube-apiserver + etcd used by the integration tests,
# cached outside the clone by Kubernetes version and source hash.
testcluster:
	go run ./testcluster/cmd/build-testcluster

test: module-check testcluster
	go vet ./...
	cd ci && $(GOTEST) -overlay $(OVERLAY) ./...
	$(GOTEST) ./...
	cd examples/chatbot && go vet ./... && $(GOTEST) ./...
	# -trimpath reuses the packages compiled for the test-cluster binary.
	cd tools/testcluster && GOWORK=off $(GOTEST) -trimpath ./...
