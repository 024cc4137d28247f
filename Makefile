# torwrt: reproducible, signed OpenWrt images for Tor routers.
#
#   make demo    the main job: build and sign both profiles against the
#                SIMULATED ImageBuilder in podman, offline (see README.md)
#   make test    the whole test suite (what CI runs)

SHELL := /bin/bash
GO ?= go
BIN := bin
DIST ?= dist
CACHE ?= .cache
FUZZTIME ?= 20s
export GOTOOLCHAIN := local
.DEFAULT_GOAL := all

deps:
	@./scripts/install-deps.sh

.PHONY: all deps build test lint fuzz demo real real-ib bench bench-build bench-build-sim release clean

all: build

build:
	$(GO) build -trimpath -o $(BIN)/imgbuild ./cmd/imgbuild
	CGO_ENABLED=0 GOOS=linux GOARCH=mips GOMIPS=softfloat $(GO) build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' -o $(BIN)/verify-mips ./cmd/verify
	CGO_ENABLED=0 GOOS=linux GOARCH=mipsle GOMIPS=softfloat $(GO) build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' -o $(BIN)/verify-mipsle ./cmd/verify
	$(GO) build -trimpath -o $(BIN)/verify ./cmd/verify

# The test command README.md gives and .ci/run runs: the main command
# (make demo) and the real-ImageBuilder flow on empty podman stores
# (scripts/ci-e2e.sh), then every Go test. Tests that need root, podman,
# tor, nft, qemu or signify fail (never skip) when those are absent.
test: deps lint
	./scripts/ci-e2e.sh
	$(GO) test -count=1 -timeout 30m ./...

# Only the real-ImageBuilder flow (import, lock, two podman builds, cmp).
real-ib:
	./scripts/real-ib-e2e.sh

lint:
	@unformatted=$$(gofmt -l cmd internal ci *.go); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff
	$(GO) tool staticcheck ./...
	@dead=$$($(GO) tool deadcode -test ./...); if [ -n "$$dead" ]; then echo "unreachable code (deadcode -test):"; echo "$$dead"; exit 1; fi

# Each fuzz target for a bounded time.
fuzz:
	@set -e; while read -r pkg target; do \
	  [ -z "$$pkg" ] && continue; \
	  echo "== $$pkg $$target"; \
	  $(GO) test -run='^$$' -fuzz="^$$target$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done < scripts/fuzz-targets.txt

# The main job: both profiles, simulated ImageBuilder, podman, throwaway key.
demo: deps
	./scripts/demo.sh

# The same against the real upstream ImageBuilder (needs network and a lock).
real:
	$(GO) run ./cmd/imgbuild build --all --key $(KEY) --out $(DIST)

bench: 
	$(GO) test -run='^$$' -bench=. -benchmem ./internal/imagesig ./internal/squashfs

bench-build:
	./scripts/bench-build.sh

# The step cache and --all against the simulated ImageBuilder.
bench-build-sim:
	MODE=simulated ./scripts/bench-build.sh

release:
	./ci/release.sh

clean:
	rm -rf $(BIN) $(DIST)
