//! Reading the mesh's configuration from the environment: every process
//! is configured by environment only (the names Asya uses), so a setting
//! that is missing or malformed stops it at start with a one-line message
//! naming the variable.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A configuration error: the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingError(pub String);

pub type Result<T, E = SettingError> = std::result::Result<T, E>;

/// A variable's value; unset and empty are the same.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

pub fn required(name: &str) -> Result<String> {
    var(name).ok_or_else(|| SettingError(format!("{name} must be set")))
}

pub fn or(name: &str, default: &str) -> String {
    var(name).unwrap_or_else(|| default.to_owned())
}

pub fn path_or(name: &str, default: &str) -> PathBuf {
    PathBuf::from(or(name, default))
}

/// A number (or anything `FromStr`), `default` when unset.
pub fn parsed<T: FromStr>(name: &str, default: T) -> Result<T> {
    match var(name) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| SettingError(format!("{name}={text:?} is not a valid value"))),
    }
}

/// A count that must be at least 1 (a concurrency, a cap), `default`
/// when unset.
pub fn at_least_one<T: FromStr + PartialEq + From<u8>>(name: &str, default: T) -> Result<T> {
    let value = parsed(name, default)?;
    if value == T::from(0) {
        return Err(SettingError(format!("{name} must be at least 1")));
    }
    Ok(value)
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`), `default` when unset.
pub fn flag(name: &str, default: bool) -> Result<bool> {
    match var(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => Ok(true),
        Some(v) if matches!(v.as_str(), "false" | "0" | "no") => Ok(false),
        Some(v) => Err(SettingError(format!("{name}={v:?} is not true or false"))),
    }
}

/// A duration: plain seconds (`30`, `0.5`) or with a unit (`500ms`,
/// `5s`, `2m`), as Asya's Go sidecar accepts them.
pub fn duration(name: &str, default: Duration) -> Result<Duration> {
    match var(name) {
        None => Ok(default),
        Some(text) => parse_duration(&text)
            .ok_or_else(|| SettingError(format!("{name}={text:?} is not a duration"))),
    }
}

pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_or_a_unit() {
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_duration("-1"), None);
    }
}
