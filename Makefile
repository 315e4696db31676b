# Netwatch — build, test and run. `make help` lists the targets.
SHELL      := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
MODULES    := proto common sensor collector webui deploy bench .ci/testsum
# the modules test-unit runs a second time with -race (-short keeps it in CI time)
RACE_MODULES := sensor collector
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
# make test: every run writes one result record per test into RESULTS (testsum's
# JSON lines); testsum total then prints the one summary line.
RESULTS    := $(CURDIR)/bin/test-results
TESTSUM    := $(CURDIR)/bin/testsum
# node_reporters NAME: the dashboard's tests print as usual (spec) and write their
# records to RESULTS/NAME.jsonl. node --test takes no option after its file
# arguments (npm appends there), so they go in through NODE_OPTIONS.
node_reporters = NODE_OPTIONS='--test-reporter=spec --test-reporter-destination=stdout --test-reporter=$(CURDIR)/.ci/testsum/reporter.mjs --test-reporter-destination=$(RESULTS)/$(1).jsonl'

.DEFAULT_GOAL := help

## help: list the targets
help:
	@awk '/^## [A-Za-z0-9_.-]+: / { t = $$2; sub(/:$$/, "", t); d = $$0; sub(/^## [^:]+: /, "", d); \
		printf "  %-18s %s\n", t, d }' $(MAKEFILE_LIST)

## build: static, version-stamped sensor and collector in bin/
build: bin/netwatch-sensor bin/netwatch-collector

bin/netwatch-sensor: FORCE
	cd sensor && $(GOBUILD) -o ../bin/netwatch-sensor ./cmd/netwatch-sensor

bin/netwatch-collector: FORCE
	cd collector && $(GOBUILD) -o ../bin/netwatch-collector ./cmd/netwatch-collector

FORCE:

## run: collector on 127.0.0.1, sensor on the default-route NIC
run: build
	@deploy/local/run.sh

## demo: collector and a sensor looping a bundled capture (no root)
demo: build
	@deploy/local/run.sh demo

## release: linux amd64 and arm64 binaries, SHA256SUMS, in dist/
release:
	rm -rf dist && mkdir -p dist
	@for arch in amd64 arm64; do for b in sensor collector; do \
		echo "build netwatch-$$b $(VERSION) linux/$$arch"; \
		(cd $$b && GOOS=linux GOARCH=$$arch $(GOBUILD) -o ../dist/netwatch-$$b-$(VERSION)-linux-$$arch ./cmd/netwatch-$$b); \
	done; done
	cd dist && sha256sum netwatch-* > SHA256SUMS && cat SHA256SUMS

## deps: install what the tests need (root) or name what is missing
deps:
	@.ci/deps.sh

## test: all of the below; ends "tests: N passed, N failed, N skipped"
# Every step runs even when one fails (make -k), so the count is complete; the
# skipped and failed tests are listed just before the summary line.
TEST_STEPS := test-unit test-integration check-sensor-lean test-e2e fuzz-ci
test: deps $(TESTSUM)
	@rm -rf $(RESULTS)
	@rc=0; $(MAKE) --no-print-directory -k $(TEST_STEPS) || rc=$$?; $(TESTSUM) total $(RESULTS) $$rc

$(TESTSUM): FORCE
	@cd .ci/testsum && go build -o $(TESTSUM) .

## test-unit: Go tests of all modules (-short); sensor, collector -race
test-unit: $(TESTSUM)
	@mkdir -p $(RESULTS); rc=0; \
	for m in $(MODULES); do echo "== go test -short $$m"; \
		(cd $$m && $(TESTSUM) go -name "go test -short $$m" -out $(RESULTS)/unit-$$(echo $$m | tr / _).jsonl -- \
			go test -json -short -count=1 ./...) || rc=1; done; \
	for m in $(RACE_MODULES); do echo "== go test -short -race $$m"; \
		(cd $$m && $(TESTSUM) go -name "go test -short -race $$m" -out $(RESULTS)/race-$$m.jsonl -- \
			go test -json -short -race -count=1 ./...) || rc=1; done; \
	exit $$rc

## test-integration: live-capture tests in network namespaces (root)
test-integration: $(TESTSUM)
	@mkdir -p $(RESULTS); echo "== go test -run Live sensor"; cd sensor && \
		$(TESTSUM) go -name "go test -run Live sensor" -out $(RESULTS)/integration-sensor.jsonl -- go test -json -count=1 -run 'Live' ./...

## test-e2e: dashboard JS unit tests, then browser tests (chromium)
test-e2e: bin/netwatch-collector bin/netwatch-sensor
	@mkdir -p $(RESULTS); rc=0; cd webui; \
	echo "== webui unit (npm test)"; TESTSUM_RUN="webui unit" $(call node_reporters,webui-unit) npm test || rc=1; \
	echo "== webui e2e (npm run test:e2e)"; TESTSUM_RUN="webui e2e" NETWATCH_BIN=$(CURDIR)/bin $(call node_reporters,webui-e2e) npm run test:e2e || rc=1; \
	exit $$rc

## check-sensor-lean: the sensor binary links no gateway, WebSocket or UI code
check-sensor-lean: bin/netwatch-sensor
	@if go version -m bin/netwatch-sensor | grep -E 'grpc-gateway|websocket|netwatch.dev/webui|netwatch.dev/collector'; then \
		echo "FAIL: bin/netwatch-sensor links code it must not (above)"; exit 1; fi
	@echo "ok: bin/netwatch-sensor has no gateway, WebSocket or UI code"

## bench: Netwatch vs softflowd, nfdump, argus... (root, ~10 min)
bench:
	bench/run.sh

## bench-go: Go benchmarks of the sensor and the collector
bench-go:
	cd sensor && go test -run '^$$' -bench . -benchmem ./...
	cd collector && go test -run '^$$' -bench . -benchmem ./...

# FUZZ_TARGETS: module:package:target, one per fuzz target; fuzz-ci fails if a Fuzz
# function exists that this list lacks.
FUZZ_TARGETS := \
	sensor:./internal/bpf:FuzzCompile \
	sensor:./internal/decode:FuzzDecode \
	sensor:./internal/flow:FuzzTable \
	sensor:./internal/inspect:FuzzClientHello \
	sensor:./internal/inspect:FuzzDNSResponse \
	sensor:./internal/inspect:FuzzInspect \
	sensor:./internal/pcapfile:FuzzReader \
	collector:./internal/query:FuzzParseFlowQuery \
	collector:./internal/query:FuzzParseSearch \
	collector:./internal/ingest:FuzzIngest \
	collector:./internal/ingest:FuzzScanFrames \
	collector:./internal/ingest:FuzzValidateBatch \
	proto:./restjson:FuzzFlowEncoding

## fuzz-ci: each fuzz target for FUZZTIME (30s); crashers: testdata/ (.ci/fuzz-one.sh)
fuzz-ci:
	@listed="$(foreach t,$(FUZZ_TARGETS),$(lastword $(subst :, ,$(t))))"; \
	for f in $$(grep -rhoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' sensor collector common proto | sed 's/^func //' | sort -u); do \
		case " $$listed " in *" $$f "*) ;; *) echo "FAIL: $$f is not in FUZZ_TARGETS (Makefile)"; exit 1;; esac; \
	done
	@for t in $(FUZZ_TARGETS); do IFS=: read -r mod pkg fn <<< "$$t"; \
		echo "== fuzz $$fn ($$mod/$${pkg#./}) for $(FUZZTIME)"; \
		.ci/fuzz-one.sh $$mod $$pkg $$fn $(FUZZTIME) || exit 1; \
	done

## fuzz: alias of fuzz-ci
fuzz: fuzz-ci

SOAK_DURATION   ?= 30m
FAULTS_DURATION ?= 10m
SOAK_TIMEOUT    ?= 3h
# FAULTS_SEED: reproduce the fault choices of an earlier run (its log prints the seed)
FAULTS_SEED     ?=
## soak: SOAK_DURATION (30m) replay, fails on RSS, thread, fd growth; then FAULTS_DURATION (10m) of random collector faults
soak:
	@mkdir -p bench/out
	cd sensor && NETWATCH_SOAK_DURATION=$(SOAK_DURATION) NETWATCH_SOAK_CSV=$(CURDIR)/bench/out/soak.csv \
		NETWATCH_FAULTS_DURATION=$(FAULTS_DURATION) NETWATCH_FAULTS_SEED=$(FAULTS_SEED) \
		go test -count=1 -run '^(TestSoak|TestCollectorFaults)$$' -timeout $(SOAK_TIMEOUT) -v ./cmd/netwatch-sensor

## tools: install pinned buf and protoc plugins into bin/tools
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

## generate: regenerate Go, gRPC, gateway and OpenAPI code (offline)
generate: tools
	buf generate

## check-generate: fail when `make generate` changes anything
check-generate: generate
	@if [ -n "$$(git status --porcelain -- proto)" ]; then git status --porcelain -- proto; git diff --stat -- proto; \
		echo "FAIL: generated code is stale: run make generate and commit"; exit 1; fi
	@echo "ok: generated code is up to date"

## lint: buf lint, go vet and gofmt on every module
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
