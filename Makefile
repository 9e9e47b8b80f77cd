# Gatehouse build. `make help` lists the targets.
GO        ?= go
DATA_DIR  ?= ./data
# The demo's own data dir, apart from `make run`'s.
DEMO_DATA_DIR ?= ./demo-data
BIN_DIR   ?= ./bin
# Packages whose tests always run under the race detector.
RACE_PKGS := ./lib/backend/...
# How much each fuzz target runs inside `make test`: a count of inputs, not a duration, because
# Go 1.26's fuzz coordinator can fail a duration-bounded run with a spurious "context deadline
# exceeded" at the deadline (go.dev/issue/75804, fixed in Go 1.27). `make fuzz FUZZTIME=5m` (or
# FUZZTIME=1000000x) runs longer on demand.
FUZZTIME  ?= 2000x

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build gatehouse, gatectl and the demo's okta-standin into ./bin.
	@mkdir -p $(BIN_DIR)
	@for cmd in gatehouse gatectl okta-standin; do $(GO) build -o $(BIN_DIR)/$$cmd ./cmd/$$cmd || exit 1; done

.PHONY: run
run: build ## Build and start Gatehouse on SQLite in ./data (web https://localhost:3080, auth localhost:3025).
	@mkdir -p $(DATA_DIR)
	$(BIN_DIR)/gatehouse start --data-dir $(DATA_DIR) --storage sqlite \
	  --public-addr localhost:3080 --web-addr 127.0.0.1:3080 \
	  --auth-addr 127.0.0.1:3025 --ssh-addr 127.0.0.1:3022 --diag-addr 127.0.0.1:3000

.PHONY: demo
demo: build ## Gatehouse in ./demo-data plus a local Okta stand-in (SAML, SCIM) to try it all; Ctrl-C stops both (docs/demo.md).
	@mkdir -p $(DEMO_DATA_DIR)
	$(BIN_DIR)/okta-standin --data-dir $(DEMO_DATA_DIR) --start-gatehouse $(BIN_DIR)/gatehouse \
	  --web-addr 127.0.0.1:3080 --auth-addr 127.0.0.1:3025 --ssh-addr 127.0.0.1:3022 --listen 127.0.0.1:3090

.PHONY: test
test: ## Run every test (backend packages under -race), then a short pass of each fuzz target.
	$(GO) test -race -count=1 -timeout 15m $(RACE_PKGS)
	$(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v '/lib/backend')
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME)

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 2000x: 2,000 inputs).
	@for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for fz in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //'); do \
	    echo "fuzz $$pkg $$fz ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$fz$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

.PHONY: lint
lint: ## gofmt check, go vet, golangci-lint (.golangci.yml: the layer rule of docs/architecture.md, errorlint, staticcheck, ...) and buf lint.
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool golangci-lint run ./...
	$(GO) tool buf lint

.PHONY: proto
proto: ## Regenerate Go code from the .proto files.
	$(GO) tool buf generate

.PHONY: verify-proto
verify-proto: proto ## Fail if the committed generated code differs from the .proto files.
	@git diff --exit-code -- proto || (echo "generated code is out of date: run make proto and commit"; exit 1)
	@untracked=$$(git ls-files --others --exclude-standard proto); \
	  if [ -n "$$untracked" ]; then echo "untracked generated files: $$untracked"; exit 1; fi

.PHONY: bench
bench: ## Run the benchmarks of docs/benchmarks.md (backend on 100,000 keys; SCIM load and its scaling curve at 10,000 and 100,000 users, SCIM_BENCH_USERS=1000000 adds a million; the floor; etcd; HA).
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./lib/backend/lite/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./lib/backend/etcdbk/
	$(GO) test -run '^$$' -bench DeprovisionToDisconnect -benchtime 3x -timeout 10m ./integration/
	$(GO) test -run '^$$' -bench 'BenchmarkSCIMScaling$$' -benchtime 1x -timeout 180m ./integration/
	$(GO) test -run '^$$' -bench 'BenchmarkSCIMFloor$$' -benchtime 1x -timeout 30m ./integration/
	$(GO) test -run '^$$' -bench 'BenchmarkSCIMLoadEtcd$$' -benchtime 1x -timeout 30m ./integration/
	$(GO) test -run '^$$' -bench BenchmarkHADeprovisionLatency -benchtime 1x -timeout 30m ./integration/
	$(GO) test -run '^$$' -bench BenchmarkHALookups -benchtime 1x -timeout 30m ./integration/
