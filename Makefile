# Inland's entry points. Build output and downloaded servers live outside the clone
# (INLAND_CACHE), so a second run is fast and the work tree stays clean.
INLAND_CACHE ?= $(HOME)/.cache/inland
export INLAND_CACHE
export CARGO_TARGET_DIR ?= $(INLAND_CACHE)/target
KAFKA_BOOTSTRAP ?= 127.0.0.1:9092

.PHONY: run test lint services-up services-down kafka-up kafka-down bench-gateway bootstrap

## The whole pipeline on embedded defaults, with a simulated fleet.
run: bootstrap
	cargo run --release -p inland-cli --bin inland -- run --simulate

## Every test, including those against the real servers this starts.
test: bootstrap services-up
	INLAND_KAFKA_BOOTSTRAP=$(KAFKA_BOOTSTRAP) cargo test --workspace -- --include-ignored

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bootstrap:
	@scripts/bootstrap.sh

services-up: kafka-up
services-down: kafka-down

kafka-up:
	@scripts/kafka.sh start >/dev/null

kafka-down:
	@scripts/kafka.sh stop --wipe

## Gateway throughput over mTLS into the real broker, beside a bare rdkafka producer.
bench-gateway: bootstrap kafka-up
	cargo build --release -p inland-cli
	INLAND_BIN=$(CARGO_TARGET_DIR)/release/inland INLAND_KAFKA_BOOTSTRAP=$(KAFKA_BOOTSTRAP) cargo bench -p inland-benches --bench gateway
