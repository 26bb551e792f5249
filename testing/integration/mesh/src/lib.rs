//! The actor mesh around the state proxy, as the integration and E2E
//! levels run it: a gateway takes tasks, sidecars move envelopes between
//! actors over a message transport, runtimes run built-in handlers, and
//! the crew actors x-sink and x-sump checkpoint the final envelope
//! through a state proxy into real storage.
//!
//! Test infrastructure, but real programs: every piece is one subcommand
//! of the `asya-mesh` binary, configured by environment only (Asya's
//! names), logging to stderr. See docs/integration.md.

pub mod envelope;
pub mod gateway;
pub mod logging;
pub mod probe;
pub mod report;
pub mod runtime;
pub mod settings;
pub mod setup;
pub mod sidecar;
pub mod sse;
pub mod transport;
pub mod transport_bench;
pub mod web;
