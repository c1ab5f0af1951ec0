# pirack — `make run` starts the demo rack, `make test` checks everything CI checks.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/pirack/pirack/internal/buildinfo.version=$(VERSION)
# make test fuzzes each target for a number of runs, not a duration: a duration can end with a
# spurious "context deadline exceeded" on Go 1.26 (golang/go#75804, fixed in Go 1.27). The
# broker's target goes over TCP and runs about 100 times slower than the others.
FUZZ_EXECS      ?= 20000
FUZZ_EXECS_SLOW ?= 150
SLOW_FUZZ       := FuzzBrokerPacket
FUZZTIME        ?=
DATA_DIR ?= ./pirack-data

.PHONY: all run build test deps vet cross unit fuzz bench bench-quick bench-go hostile dist package clean

all: build

## run: the control center with a simulated 24-Pi rack (http://localhost:8080)
run: build
	./bin/pirack demo --data-dir $(DATA_DIR)

## build: both binaries into ./bin
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/pirack ./cmd/pirack-agent

## test: install test dependencies, vet, cross-compile for the Pis, run every test with the race detector, fuzz briefly
test: deps vet cross unit fuzz

deps:
	./scripts/test-deps

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on: $$out"; exit 1; fi
	$(GO) vet ./...

# Pure Go, static builds for every board: Pi 1 and Zero (ARMv6), Pi 2/3 on 32-bit OS (ARMv7),
# 64-bit Pi OS on Pi 3/4/5 (arm64), and the control host (amd64).
DIST_TARGETS := linux/arm/6 linux/arm/7 linux/arm64 linux/amd64
CROSS_TARGETS := linux/arm/6 linux/arm64
BUILD_ENV = CGO_ENABLED=0 GOOS=$(word 1,$(subst /, ,$(1))) GOARCH=$(word 2,$(subst /, ,$(1))) GOARM=$(word 3,$(subst /, ,$(1)))
DIST_DIR = dist/$(word 1,$(subst /, ,$(1)))-$(word 2,$(subst /, ,$(1)))$(if $(word 3,$(subst /, ,$(1))),v$(word 3,$(subst /, ,$(1))))

## cross: prove both binaries build and link for ARMv6 (Pi 1, Zero) and arm64 (same flags as dist, so dist reuses the cache)
cross:
	@set -e; $(foreach t,$(CROSS_TARGETS),echo "cross $(t)"; $(call BUILD_ENV,$(t)) $(GO) build -trimpath -o /dev/null ./cmd/...;)

## dist: static release binaries for every board into dist/<os>-<arch>[v<arm>]/, with dist/SHA256SUMS
dist:
	rm -rf dist
	@set -e; $(foreach t,$(DIST_TARGETS),echo "dist $(call DIST_DIR,$(t))"; mkdir -p $(call DIST_DIR,$(t)); \
	  $(call BUILD_ENV,$(t)) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(call DIST_DIR,$(t))/ ./cmd/pirack ./cmd/pirack-agent;)
	cd dist && sha256sum */pirack */pirack-agent > SHA256SUMS
	@cat dist/SHA256SUMS

## package: .deb packages of pirack (control host) and pirack-agent for armhf (ARMv6: Pi 1 and
##          Zero up), arm64 and amd64 into dist/pkg, with nfpm (pinned in tools/go.mod); docs/deploy.md
package:
	rm -rf dist/pkg
	./scripts/package dist/pkg

# PIRACK_BROWSER_TESTS=require: a missing Chromium fails the browser tests instead of skipping them;
# PIRACK_MOSQUITTO_TESTS=require does the same for a missing mosquitto, PIRACK_NODERED_TESTS=require
# for a missing Node-RED, PIRACK_SMTP_TESTS=require for a missing python3-aiosmtpd,
# PIRACK_PROMETHEUS_TESTS=require for a missing prometheus or promtool, PIRACK_PACKAGE_TESTS=require
# for missing dpkg, qemu-user-static or systemd-analyze (scripts/test-deps installs them all).
unit:
	PIRACK_BROWSER_TESTS=require PIRACK_MOSQUITTO_TESTS=require PIRACK_NODERED_TESTS=require PIRACK_SMTP_TESTS=require \
		PIRACK_PROMETHEUS_TESTS=require PIRACK_PACKAGE_TESTS=require $(GO) test -race -count=1 -timeout 10m ./...

## fuzz: every fuzz target, FUZZ_EXECS runs each (make fuzz FUZZTIME=5m for a longer run)
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
	  dir=$$(dirname $$f); \
	  for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/p' $$f); do \
	    n="$(FUZZTIME)"; \
	    if [ -z "$$n" ]; then n=$(FUZZ_EXECS)x; case " $(SLOW_FUZZ) " in *" $$t "*) n=$(FUZZ_EXECS_SLOW)x;; esac; fi; \
	    echo "fuzz $$dir $$t ($$n)"; \
	    $(GO) test $$dir -run '^$$' -fuzz "^$$t\$$" -fuzztime $$n; \
	  done; \
	done

## bench: pirack serve against Mosquitto and pirack-agent against node_exporter, side by side,
##        interleaved, 3 runs each (about 15 minutes on 2 cores): a table, and bench-results.json.
##        Installs mosquitto and prometheus-node-exporter when missing (scripts/bench-deps).
##        docs/benchmarks.md. Flags: make bench COMPARE_FLAGS='--only qos1-saturation --reps 5'
## bench-quick: the same, smaller and once (under 3 minutes), into bench-quick.json
COMPARE_FLAGS ?=
bench: build
	./scripts/bench-deps
	./bin/pirack bench compare --json bench-results.json --commit "$$(git rev-parse --short HEAD 2>/dev/null)" $(COMPARE_FLAGS)

bench-quick: build
	./scripts/bench-deps
	./bin/pirack bench compare --quick --json bench-quick.json --commit "$$(git rev-parse --short HEAD 2>/dev/null)" $(COMPARE_FLAGS)

## bench-go: the Go micro-benchmarks whose results are in docs/benchmarks.md, the rack page in
##           Chromium with 1,000 Pis among them (about a minute; it needs Chromium, which make
##           test installs). Only that one: make bench-go BENCH=BrowserRack1000Pis BENCH_PKGS=./e2e
BENCH      ?= .
BENCH_PKGS ?= ./...
bench-go:
	PIRACK_BROWSER_TESTS=require $(GO) test -run '^$$' -bench '$(BENCH)' -benchmem $(BENCH_PKGS)

## hostile: pirack bench hostile at its default size (about a minute on 2 cores): slow consumers,
##          pre-CONNECT flood, session flood, SIGKILLs of pirack serve under pressing agents;
##          figures in docs/reliability.md#hostile-clients-pirack-bench-hostile. Flags: make hostile HOSTILE_FLAGS='--kills 20'
HOSTILE_FLAGS ?=
hostile: build
	./bin/pirack bench hostile $(HOSTILE_FLAGS)

clean:
	rm -rf bin dist
