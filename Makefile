# The two commands of the README: `make demo` and `make test`.
.PHONY: demo test lint bench

demo:
	./scripts/ensure-data.sh
	cargo run --release -- demo --resume

test:
	./scripts/ensure-data.sh
	cargo test

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

bench:
	cargo bench --bench throughput
