//! The Asya state proxy: actors' state as files, served over a Unix
//! socket, stored in a backend with a chosen consistency.
//!
//! A request goes one way, `http` (the wire protocol) → `mode`
//! (consistency) → `store` (backend), and so do the dependencies: a
//! module uses only modules of the groups below its own. The groups, top
//! to bottom, are listed here; docs/design.md draws the tree and the
//! crate's `dependency_rule` test keeps it true.

// The command line and its configuration.
pub mod commands;
pub mod config;
pub mod logging;

// The composition root: store, wrappers, mode and application, built once.
pub mod connector;

// The wire protocol.
pub mod http;

// What the proxy tells operators: capabilities, metrics, readiness,
// backend time, the backend self-test.
pub mod capabilities;
pub mod metrics;
pub mod readiness;
pub mod selftest;
pub mod timing;

// Consistency and queries, the same over every store.
pub mod mode;
pub mod query;

// The backends.
pub mod store;

// What every layer shares.
pub mod error;
pub mod key;

#[cfg(test)]
mod dependency_rule;

pub use error::{Error, Result};
