# kmt — Kafka replication tester. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
export GOTOOLCHAIN ?= local
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN := bin/kmt
# Arguments for `make run`, e.g. make run ARGS="--duration 5m --rate 5000".
ARGS ?=
TEST_TIMEOUT ?= 40m
# Fuzzing budget per target: an execution count, not a duration. Go 1.26's
# fuzz coordinator can fail a target with a bare "context deadline exceeded"
# when a duration runs out while a worker is busy (go.dev/issue/75804); a
# count has no deadline to race. A duration (FUZZTIME=1m) works too.
FUZZTIME ?= 300000x

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets with one line each.
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-22s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build bin/kmt.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/kmt

.PHONY: run
run: build ## Run a two-region replication test on embedded clusters (kmt local).
	./$(BIN) --log-level warn local $(ARGS)

.PHONY: run-monitored
run-monitored: build ## Run kmt local with a Prometheus scraping it (alert rules loaded); prints the URLs.
	@bash scripts/run-monitored.sh ./$(BIN) $(ARGS)

# Scenario for `make scenario`, e.g. make scenario NAME=kill-source-broker SCALE=0.1
NAME ?= kill-source-broker
SCALE ?= 1
.PHONY: scenario
scenario: build ## Run scenarios/$(NAME).yaml on the local target (SCALE=0.1 runs it 10x faster).
	./$(BIN) --log-level warn controller run --scenario scenarios/$(NAME).yaml --target local --time-scale $(SCALE) $(ARGS)

.PHONY: test-deps
test-deps: ## Install the Debian tools the tests use (prometheus, kcat, chromium) when missing.
	@bash scripts/test-deps.sh

.PHONY: test
test: test-deps ## Run every test tier: race-enabled packages, the scenario library, real Kafka and MirrorMaker 2, a real API server, fuzzing (scripts/test.sh).
	@GO=$(GO) TEST_TIMEOUT=$(TEST_TIMEOUT) bash scripts/test.sh

# The tests against a real Kubernetes control plane: every test named
# *RealAPIServer*, in the packages that have them.
K8S_TEST_PKGS := ./deploy/ ./controller/kubernetes/ ./cmd/kmt/
K8S_TEST_TIMEOUT ?= 10m
.PHONY: k8s-testbin
k8s-testbin: ## Build kube-apiserver, controller manager, scheduler, etcd and kwok into a cache outside git (once per machine, 10-20 min cold at nice 19); prints its folder last.
	@bash scripts/k8s-testbin.sh

.PHONY: test-k8s
test-k8s: test-deps ## Run the tests against a real Kubernetes API server (overlays, RBAC, k8s.mk targets, kmt controller --target kubernetes); builds the binaries first when missing.
	@set -euo pipefail; dir=$$(bash scripts/k8s-testbin.sh | tail -1); \
	  echo "KMT_K8S_TESTBIN=$$dir"; \
	  KMT_K8S_TESTBIN=$$dir $(GO) test -race -count 1 -timeout $(K8S_TEST_TIMEOUT) -run RealAPIServer $(K8S_TEST_PKGS)

# A real Kafka for `make test-kafka`, e.g. make test-kafka BROKERS=kafka-1:9092,kafka-2:9092
BROKERS ?=
.PHONY: test-kafka
test-kafka: ## Run the end-to-end tests against a real Kafka: make test-kafka BROKERS=host:9092 (topics kmt-*, copy.kmt-*, orders-*, alpha-*, beta-*).
	@if [ -z "$(BROKERS)" ]; then echo "make test-kafka: give BROKERS=host:port[,host:port...]"; exit 2; fi
	KMT_TEST_BROKERS=$(BROKERS) $(GO) test -count 1 -v -run '$(REAL_KAFKA_TESTS)' $(REAL_KAFKA_PKGS)

# The end-to-end tests that run against a real Kafka (KMT_TEST_BROKERS).
REAL_KAFKA_TESTS := EndToEnd|TestProduceReadBack|TestMirrorReplicatesEveryRecordIdentically|TestFaultsInjectExactlyTheConfiguredNumbers
REAL_KAFKA_PKGS := ./cmd/kmt/ ./producer/ ./consumer/ ./mirror/
.PHONY: test-real-kafka
test-real-kafka: ## Run the end-to-end tests against a real one-broker Apache Kafka it starts and stops itself (make kafka first when missing).
	@set -o pipefail; kh=$$(bash scripts/kafka.sh | tail -1) && \
	$(GO) run ./scripts/realkafka -kafka-home "$$kh" -- \
		$(GO) test -race -count 1 -timeout 15m -run '$(REAL_KAFKA_TESTS)' $(REAL_KAFKA_PKGS)

.PHONY: perf-real-kafka
perf-real-kafka: build ## Compare kmt produce/consume with Kafka's ProducerPerformance/ConsumerPerformance on one real broker (ROUNDS=3; figures in docs/performance.md).
	@set -o pipefail; kh=$$(bash scripts/kafka.sh | tail -1) && \
	$(GO) run ./scripts/realkafka -kafka-home "$$kh" -- bash scripts/perf-real-kafka.sh ./$(BIN) "$$kh"

.PHONY: test-processes
test-processes: ## Run the scenario set on real Kafka clusters and MirrorMaker 2 (processes target), every count checked against both clusters read back.
	KMT_TEST_PROCESSES=1 $(GO) test -count 1 -p 1 -v -timeout 60m -run TestProcessesLibrary ./scenarios/

.PHONY: startup-time
startup-time: build ## Time kmt local --kafka-home to its first status line (RUNS=3; figures in docs/performance.md).
	@kh=$$(bash scripts/kafka.sh | tail -1) && bash scripts/startup-time.sh $(BIN) "$$kh" $${RUNS:-3}

.PHONY: kafka
kafka: ## Assemble Apache Kafka (brokers, MirrorMaker 2, perf tools) from Maven Central into a cache outside git; prints its folder last.
	@bash scripts/kafka.sh

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 300000 executions).
	@bash scripts/fuzz.sh $(FUZZTIME)

.PHONY: bench
bench: ## Run the benchmarks (results go in docs/performance.md).
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./...

.PHONY: lint
lint: ## gofmt, go vet, staticcheck and govulncheck (each when it installs and can run).
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if $(GO) run honnef.co/go/tools/cmd/staticcheck@2025.1.1 -version >/dev/null 2>&1; then \
		$(GO) run honnef.co/go/tools/cmd/staticcheck@2025.1.1 ./...; \
	else echo "staticcheck unavailable here; skipped"; fi
	@GO=$(GO) bash scripts/vulncheck.sh

SOAK_DURATION ?= 30m
SOAK_RATE ?= 2000
.PHONY: soak
soak: build ## Soak kmt local for SOAK_DURATION at SOAK_RATE msgs/s: heap, goroutines, open fds each minute (not in CI).
	$(GO) run ./scripts/soak -kmt ./$(BIN) -duration $(SOAK_DURATION) -rate $(SOAK_RATE)

.PHONY: tidy-check
tidy-check: ## Fail when go mod tidy would change go.mod or go.sum.
	$(GO) mod tidy -diff

# Kubernetes: clusters, Kafka, replicator, kmt fleet, chaos (see docs/kubernetes.md).
include k8s.mk
