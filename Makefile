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
module-check: stub
	cd ci && go build -overlay $(OVERLAY) -o /dev/null . && go vet -overlay $(OVERLAY) ./...

# Build (or reuse) the real kube-apiserver + etcd used by the integration tests.
testcluster:
	go run ./testcluster/cmd/build-testcluster

test: module-check testcluster
	go vet ./...
	cd ci && $(GOTEST) -overlay $(OVERLAY) ./...
	$(GOTEST) ./...
	cd examples/chatbot && go vet ./... && $(GOTEST) ./...
