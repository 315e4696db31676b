# Netwatch — build, test and run. `make help` lists the targets.
SHELL      := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
MODULES    := proto sensor collector webui deploy
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -s -w -X main.version=$(VERSION)
GOBUILD    := CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)'
TOOLS      := $(CURDIR)/bin/tools
BUF_VERSION              := v1.75.0
PROTOC_GEN_GO_VERSION    := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GATEWAY_VERSION          := v2.33.0
FUZZTIME   ?= 30s
export PATH := $(TOOLS):$(PATH)

.DEFAULT_GOAL := help

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /' | column -t -s ':'

## build: netwatch-sensor and netwatch-collector in bin/ (static, CGO off, version stamped)
build: bin/netwatch-sensor bin/netwatch-collector

bin/netwatch-sensor: FORCE
	cd sensor && $(GOBUILD) -o ../bin/netwatch-sensor ./cmd/netwatch-sensor

bin/netwatch-collector: FORCE
	cd collector && $(GOBUILD) -o ../bin/netwatch-collector ./cmd/netwatch-collector

FORCE:

## run: build, start the collector on 127.0.0.1 and a sensor on the default-route interface
run: build
	@deploy/local/run.sh

## demo: no privilege needed: the collector plus a sensor replaying a bundled capture in a loop
demo: build
	@deploy/local/run.sh demo

## release: static linux/amd64 and linux/arm64 binaries with checksums in dist/
release:
	rm -rf dist && mkdir -p dist
	@for arch in amd64 arm64; do for b in sensor collector; do \
		echo "build netwatch-$$b $(VERSION) linux/$$arch"; \
		(cd $$b && GOOS=linux GOARCH=$$arch $(GOBUILD) -o ../dist/netwatch-$$b-$(VERSION)-linux-$$arch ./cmd/netwatch-$$b); \
	done; done
	cd dist && sha256sum netwatch-* > SHA256SUMS && cat SHA256SUMS

## deps: install what the tests need (as root: apt-get; otherwise names what is missing)
deps:
	@.ci/deps.sh

## test: all tests (installs what it lacks when run as root)
test: deps test-unit test-integration check-sensor-lean test-e2e fuzz-ci

## test-unit: the Go tests of every module, without the live-capture tests (-short)
test-unit:
	@for m in $(MODULES); do echo "== go test $$m"; (cd $$m && go test -short -count=1 ./...); done
	cd collector && go test -short -count=1 -race ./...

## test-integration: the live-capture tests in network namespaces (root; they skip, saying why, otherwise)
test-integration:
	cd sensor && go test -count=1 -run 'Live' ./...

## test-e2e: dashboard JS unit tests, then the browser tests (real collector and sensors, Debian's chromium via playwright-core)
test-e2e: bin/netwatch-collector bin/netwatch-sensor
	cd webui && npm test
	cd webui && NETWATCH_BIN=$(CURDIR)/bin npm run test:e2e

## check-sensor-lean: the sensor binary must not contain grpc-gateway, WebSocket or UI code
check-sensor-lean: bin/netwatch-sensor
	@if go version -m bin/netwatch-sensor | grep -E 'grpc-gateway|websocket|netwatch.dev/webui|netwatch.dev/collector'; then \
		echo "FAIL: bin/netwatch-sensor links code it must not (above)"; exit 1; fi
	@echo "ok: bin/netwatch-sensor has no gateway, WebSocket or UI code"

## bench: the comparative benchmark (root; about 10 min): pcaps, Netwatch vs softflowd/nfdump/argus/pmacct/tcpdump offline and live, the collector under load; writes bench/RESULTS.md
bench:
	bench/run.sh

## bench-go: the Go benchmarks (sensor: decode, aggregate, read path; collector: ingest, store, queries at 1M flows)
bench-go:
	cd sensor && go test -run '^$$' -bench . -benchmem ./...
	cd collector && go test -run '^$$' -bench . -benchmem ./...

# FUZZ_TARGETS: module:package:target, one per fuzz target; fuzz-ci fails if a Fuzz
# function exists that this list lacks.
FUZZ_TARGETS := \
	sensor:./internal/bpf:FuzzCompile \
	sensor:./internal/decode:FuzzDecode \
	sensor:./internal/flow:FuzzTable \
	sensor:./internal/pcapfile:FuzzReader \
	collector:./internal/query:FuzzParseFlowQuery \
	collector:./internal/query:FuzzParseSearch \
	collector:./internal/ingest:FuzzIngest

## fuzz-ci: run every fuzz target for FUZZTIME (default 30s) each; a crasher lands in the package's testdata/fuzz
fuzz-ci:
	@listed="$(foreach t,$(FUZZ_TARGETS),$(lastword $(subst :, ,$(t))))"; \
	for f in $$(grep -rhoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' sensor collector | sed 's/^func //' | sort -u); do \
		case " $$listed " in *" $$f "*) ;; *) echo "FAIL: $$f is not in FUZZ_TARGETS (Makefile)"; exit 1;; esac; \
	done
	@for t in $(FUZZ_TARGETS); do IFS=: read -r mod pkg fn <<< "$$t"; \
		echo "== fuzz $$fn ($$mod/$${pkg#./}) for $(FUZZTIME)"; \
		(cd $$mod && go test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s $$pkg) || exit 1; \
	done

## fuzz: alias of fuzz-ci
fuzz: fuzz-ci

SOAK_DURATION ?= 30m
SOAK_TIMEOUT  ?= 3h
## soak: SOAK_DURATION (default 30m) of a sensor looping a capture at 20x into a collector; RSS, threads, fds every 10 s into bench/out/soak.csv; fails on growth after warm-up
soak:
	@mkdir -p bench/out
	cd sensor && NETWATCH_SOAK_DURATION=$(SOAK_DURATION) NETWATCH_SOAK_CSV=$(CURDIR)/bench/out/soak.csv \
		go test -count=1 -run '^TestSoak$$' -timeout $(SOAK_TIMEOUT) -v ./cmd/netwatch-sensor

## tools: install buf and the protoc plugins (pinned) into bin/tools
tools: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc $(TOOLS)/protoc-gen-grpc-gateway $(TOOLS)/protoc-gen-openapiv2

$(TOOLS)/buf:
	GOBIN=$(TOOLS) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(TOOLS)/protoc-gen-grpc-gateway:
	GOBIN=$(TOOLS) go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GATEWAY_VERSION)
$(TOOLS)/protoc-gen-openapiv2:
	GOBIN=$(TOOLS) go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GATEWAY_VERSION)

## generate: regenerate Go, gRPC, gateway and OpenAPI code from proto/ (offline)
generate: tools
	buf generate

## check-generate: fail when `make generate` changes anything
check-generate: generate
	@if [ -n "$$(git status --porcelain -- proto)" ]; then git status --porcelain -- proto; git diff --stat -- proto; \
		echo "FAIL: generated code is stale: run make generate and commit"; exit 1; fi
	@echo "ok: generated code is up to date"

## lint: buf lint (STANDARD) and go vet on every module
lint: tools
	buf lint
	@for m in $(MODULES); do echo "== go vet $$m"; (cd $$m && go vet ./...); done
	@test -z "$$(gofmt -l $(MODULES))" || { gofmt -l $(MODULES); echo "FAIL: gofmt"; exit 1; }

## fmt: gofmt and buf format
fmt: tools
	gofmt -w $(MODULES)
	buf format -w proto/netwatch

## clean: remove build output
clean:
	rm -rf bin dist


.PHONY: help build run demo release deps test test-unit test-integration test-e2e check-sensor-lean bench bench-go fuzz fuzz-ci soak tools generate check-generate lint fmt clean FORCE
