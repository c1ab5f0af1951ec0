# pirack — `make run` starts the demo rack, `make test` checks everything CI checks.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/pirack/pirack/internal/buildinfo.version=$(VERSION)
FUZZTIME ?= 3s
DATA_DIR ?= ./pirack-data

.PHONY: all run build test deps vet unit fuzz bench clean

all: build

## run: the control center with a simulated 24-Pi rack (http://localhost:8080)
run: build
	./bin/pirack demo --data-dir $(DATA_DIR)

## build: both binaries into ./bin
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/pirack ./cmd/pirack-agent

## test: install test dependencies, vet, run every test with the race detector, fuzz briefly
test: deps vet unit fuzz

deps:
	./scripts/test-deps

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on: $$out"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 10m ./...

## fuzz: every fuzz target for FUZZTIME each (make fuzz FUZZTIME=5m for a longer run)
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
	  dir=$$(dirname $$f); \
	  for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/p' $$f); do \
	    echo "fuzz $$dir $$t ($(FUZZTIME))"; \
	    $(GO) test $$dir -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME); \
	  done; \
	done

## bench: benchmarks whose results go into docs/benchmarks.md
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin dist
