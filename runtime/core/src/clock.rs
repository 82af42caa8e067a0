//! Wall-clock time as records carry it: RFC 3339, UTC, whole seconds. Its own module so
//! that reports, the journal and the state directory can all stamp records without
//! depending on one another.

/// The current time as RFC 3339 (UTC, seconds).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
