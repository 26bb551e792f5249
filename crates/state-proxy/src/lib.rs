//! The Asya state proxy: actors' state as files, served over a Unix
//! socket, stored in a backend with a chosen consistency.
//!
//! Three layers, one direction (see DESIGN.md):
//! `http` (the wire protocol) → `mode` (consistency) → `store` (backend).

pub mod bench;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod key;
pub mod logging;
pub mod metrics;
pub mod mode;
pub mod query;
pub mod readiness;
pub mod selftest;
pub mod serve;
pub mod store;
pub mod timing;

pub use error::{Error, Result};
