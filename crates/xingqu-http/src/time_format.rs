//! Timestamps on the wire: RFC 3339 in UTC, from the unix milliseconds the store keeps.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn rfc3339(unix_ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Unix milliseconds of an RFC 3339 time (any offset), if it parses.
pub fn parse_rfc3339(raw: &str) -> Option<i64> {
    let time = OffsetDateTime::parse(raw, &Rfc3339).ok()?;
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).ok()
}

/// A request field holding an RFC 3339 time, as unix milliseconds, or the field's 422.
pub fn time_field(field: &'static str, raw: &str) -> Result<i64, xingqu_domain::Invalid> {
    parse_rfc3339(raw).ok_or_else(|| {
        xingqu_domain::Invalid::new(field, "invalid_time", "must be an RFC 3339 time such as 2026-11-11T00:00:00+08:00")
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_milliseconds() {
        assert_eq!(super::rfc3339(1_764_115_200_123), "2025-11-26T00:00:00.123Z");
        assert_eq!(super::parse_rfc3339("2025-11-26T08:00:00.123+08:00"), Some(1_764_115_200_123));
        assert_eq!(super::parse_rfc3339("yesterday"), None);
    }
}
