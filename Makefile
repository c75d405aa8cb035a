# mgw — run `make help` for the targets.
GO       ?= go
FUZZTIME ?= 30s
BIN      := bin/mgw
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

IMAGE    ?= mgw:$(VERSION)

.PHONY: help build image run test test-unit test-deploy test-integration race bench cpu-per-request latency reload-under-load fuzz lint fmt vet docs ci
#? help: list the targets
help:
	@sed -n 's/^#?//p' $(MAKEFILE_LIST) | column -t -s ':'

#? build: build bin/mgw, static (CGO_ENABLED=0) as in the image, with no libc mapped, about 1.5 MB less RSS per process
build:
	CGO_ENABLED=0 $(GO) build -ldflags "-X github.com/mgw-gateway/mgw/cmd/mgwcmd.version=$(VERSION)" -o $(BIN) ./cmd/mgw

#? image: build the container image deploy/Containerfile (static binary, FROM scratch) with podman or docker
image:
	rm -rf bin/image && mkdir -p bin/image/rootfs/usr/local/bin bin/image/rootfs/etc/mgw bin/image/rootfs/run/mgw bin/image/rootfs/etc/ssl/certs
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X github.com/mgw-gateway/mgw/cmd/mgwcmd.version=$(VERSION)" -o bin/image/rootfs/usr/local/bin/mgw ./cmd/mgw
	cp /etc/ssl/certs/ca-certificates.crt bin/image/rootfs/etc/ssl/certs/
	cp deploy/Containerfile bin/image/
	@engine=$$(command -v podman || command -v docker) || { echo "make image needs podman or docker"; exit 1; }; \
		echo "$$engine build -t $(IMAGE) bin/image"; $$engine build -t $(IMAGE) -f bin/image/Containerfile bin/image

#? run: run the gateway on the embedded default config (port 8000)
run: build
	$(BIN) start --processes 2

#? test: every test: unit tests with -race, then integration tests with the real binary
test: vet test-unit test-deploy test-integration

#? test-unit: unit tests with the race detector
test-unit:
	$(GO) test -race -count=1 ./ipc/... ./configs/... ./plugins/... ./worker/... ./master/... ./cmd/... ./internal/...

#? test-deploy: decode every Kubernetes manifest in deploy/ strictly (deploy/ is its own module)
test-deploy:
	cd deploy && $(GO) test -count=1 ./...

#? test-integration: build mgw and run integration/ against real processes
test-integration:
	$(GO) test -count=1 -timeout 45m ./integration/...

#? bench: side-by-side benchmark: direct vs mgw vs nginx (wrk, nginx installed if missing)
bench: build
	scripts/bench

#? reload-under-load: wrk with 64 connections while mgw reloads 20 times
reload-under-load: build
	scripts/reload-under-load

#? cpu-per-request: CPU time per proxied request, mgw vs nginx, from /proc
cpu-per-request: build
	scripts/cpu-per-request

#? latency: latency percentiles at a fixed rate, mgw vs nginx and the full chain vs nginx-plain
latency: build
	scripts/latency

#? fuzz: run every fuzz target of the repository (each func Fuzz… of a _test.go) for FUZZTIME (default 30s)
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "$(GO) test -run '^$$' -fuzz '^$$t\$$' -fuzztime $(FUZZTIME) $$(dirname $$f)"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$(dirname $$f); \
		done; \
	done

#? vet: go vet and a gofmt check
vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)

#? lint: golangci-lint (installed into bin/ if missing)
lint:
	@test -x bin/golangci-lint || GOBIN=$(CURDIR)/bin $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
	bin/golangci-lint run ./...

#? docs: regenerate docs/CLI.md from the command definitions (docs/CONFIG.md is checked by the unit tests)
docs:
	$(GO) test -count=1 -run '^TestCLIReferenceIsCurrent$$' ./cmd/mgwcmd -update

#? fmt: format the code
fmt:
	gofmt -w $$(git ls-files '*.go')

#? ci: what CI runs (.ci/run): vet, the linter, unit tests with -race, deploy/, integration tests against a -race binary
ci: lint
	MGW_RACE=1 $(MAKE) test
