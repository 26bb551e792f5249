//! Pipeline benchmark (placeholder).
use std::path::Path;

use crate::profile::Profile;
use crate::stack::Options;

pub async fn run(
    _profile: &Profile,
    _options: &Options,
    _tasks: usize,
    _concurrency: usize,
    _results: Option<&Path>,
) -> Result<(), String> {
    Err("not yet".into())
}
