# Developer entry points. `make test` is what CI runs (see .ci/run).

.PHONY: run test unit component integration e2e lint

# The proxy on the embedded default: fs store in ./state-data, socket ./state.sock.
run:
	cargo run --release --locked -p state-proxy -- serve

# Everything: unit and in-process conformance tests, every component
# profile, every integration profile (the actor pipeline), then the E2E
# level (images, charts, the pipeline as containers from the charts).
test: unit component integration e2e

unit:
	cargo test --release --locked --workspace

component:
	$(MAKE) -C testing/component/state-proxy test

integration:
	$(MAKE) -C testing/integration/gateway-actors test

# Installs what it needs (buildah, podman, runc, helm, kubernetes-validate)
# and reuses the release binaries the steps before built.
e2e:
	$(MAKE) -C testing/e2e test

lint:
	cargo fmt --all -- --check
	cargo clippy --release --locked --workspace --all-targets -- -D warnings
