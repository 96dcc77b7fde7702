//! The clock every record's times are read from: microseconds since the Unix epoch, UTC.

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}
