# Developer entry points. `make test` is what CI runs (see .ci/run).

.PHONY: run test unit component integration lint

# The proxy on the embedded default: fs store in ./state-data, socket ./state.sock.
run:
	cargo run --release --locked -p state-proxy -- serve

# Everything: unit and in-process conformance tests, every component
# profile, then every integration profile (the actor pipeline).
test: unit component integration

unit:
	cargo test --release --locked --workspace

component:
	$(MAKE) -C testing/component/state-proxy test

integration:
	$(MAKE) -C testing/integration/gateway-actors test

lint:
	cargo fmt --all -- --check
	cargo clippy --release --locked --workspace --all-targets -- -D warnings
