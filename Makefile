# The two commands of the README:
#   make dev    run Nurture on embedded defaults with the demo
#   make test   run every test (starts what it needs; see scripts/test.sh)
.PHONY: dev test test-short build vet

build:
	go build -o bin/nurture ./cmd/nurture

dev:
	go run ./cmd/nurture dev --demo

test:
	./scripts/test.sh

test-short:
	TEST_SHORT=1 TEST_RACE=0 ./scripts/test.sh

vet:
	go vet ./...
