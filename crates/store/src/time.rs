//! Wall-clock time as the store keeps it: milliseconds (database columns) or
//! microseconds (audit records) since the Unix epoch, and RFC 3339 text in UTC.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch now (0 if the clock is before 1970).
pub fn now_micros() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch now (the unit of the database's `*_ms` columns).
pub fn now_ms() -> i64 {
    now_micros() / 1000
}

/// `micros` since the epoch as RFC 3339 in UTC with microseconds:
/// `2025-06-01T12:34:56.789012Z`. Times before 1970 are clamped to the epoch.
pub fn rfc3339_micros(micros: i64) -> String {
    let micros = micros.max(0);
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let (y, m, d) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `ms` since the epoch as RFC 3339 in UTC, to the second: `2025-06-01T12:34:56Z`.
pub fn rfc3339_secs(ms: i64) -> String {
    let mut s = rfc3339_micros(ms.max(0) / 1000 * 1_000_000);
    s.truncate(19);
    s.push('Z');
    s
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (H. Hinnant's `civil_from_days`), for non-negative days.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29 (a leap day in a century year divisible by 400).
        assert_eq!(rfc3339_micros(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(rfc3339_micros(1_709_251_199_999_999), "2024-02-29T23:59:59.999999Z");
        assert_eq!(rfc3339_micros(4_102_444_800_000_000), "2100-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339_secs(1_709_251_199_999), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339_micros(-5), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn now_is_after_2024() {
        assert!(now_ms() > 1_704_067_200_000);
    }
}
