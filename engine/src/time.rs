//! Milliseconds since the Unix epoch as calendar text, without a date crate:
//! ISO-8601 for logs and herd-inspect, Java's `Date.toString` for herd-cli's stat
//! blocks.

use crate::TimeMs;

const MS_PER_DAY: i64 = 86_400_000;

/// `time_ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, proleptic Gregorian calendar).
pub fn iso8601_utc(time_ms: TimeMs) -> String {
    let days = time_ms.div_euclid(MS_PER_DAY);
    let ms_of_day = time_ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let secs = ms_of_day / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms_of_day % 1000
    )
}

/// `time_ms` as Java's `Date.toString()` prints it in the UTC zone, as zkCli does
/// on a machine set to UTC: `Sun Nov 22 02:13:33 UTC 2026`.
pub fn java_date_utc(time_ms: TimeMs) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = time_ms.div_euclid(MS_PER_DAY);
    let secs = time_ms.rem_euclid(MS_PER_DAY) / 1000;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{} {} {day:02} {:02}:{:02}:{:02} UTC {year}",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Year, month (1-12) and day (1-31) of the day `days` after 1970-01-01.
///
/// Howard Hinnant's `civil_from_days`: shift the year to start on 1 March so the
/// leap day is the last day of the year, then split into 400-year eras of
/// 146097 days, years of the era, and days of the year.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468; // days from 0000-03-01
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per case: milliseconds, expected text, why the case matters.
    #[test]
    fn iso8601_conversion() {
        let rows = [
            (0, "1970-01-01T00:00:00.000Z", "the epoch"),
            (
                -1,
                "1969-12-31T23:59:59.999Z",
                "before the epoch rounds down",
            ),
            (
                951_782_400_000,
                "2000-02-29T00:00:00.000Z",
                "leap day of a 400-year leap year",
            ),
            (
                951_868_800_000,
                "2000-03-01T00:00:00.000Z",
                "the day after it",
            ),
            (
                4_107_542_399_999,
                "2100-02-28T23:59:59.999Z",
                "2100 is not a leap year",
            ),
            (
                4_107_542_400_000,
                "2100-03-01T00:00:00.000Z",
                "so March follows 28 February",
            ),
            (
                1_700_000_000_123,
                "2023-11-14T22:13:20.123Z",
                "an ordinary time with milliseconds",
            ),
            (1_798_761_600_000, "2027-01-01T00:00:00.000Z", "new year"),
            (
                1_798_761_599_999,
                "2026-12-31T23:59:59.999Z",
                "the last millisecond of a year",
            ),
        ];
        for (ms, text, why) in rows {
            assert_eq!(iso8601_utc(ms), text, "{why}");
        }
    }

    #[test]
    fn java_date_conversion() {
        let rows = [
            (0, "Thu Jan 01 00:00:00 UTC 1970", "the epoch, a Thursday"),
            (
                1_795_315_613_000,
                "Sun Nov 22 02:46:53 UTC 2026",
                "a Sunday in the stat block's format",
            ),
            (
                -1,
                "Wed Dec 31 23:59:59 UTC 1969",
                "the day before the epoch",
            ),
            (
                951_782_400_999,
                "Tue Feb 29 00:00:00 UTC 2000",
                "a leap day; milliseconds are dropped",
            ),
        ];
        for (ms, text, why) in rows {
            assert_eq!(java_date_utc(ms), text, "{why}");
        }
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        let mut prev = civil_from_days(-800_000);
        for days in -799_999..800_000 {
            let (y, m, d) = civil_from_days(days);
            let next_day = (y, m, d) == (prev.0, prev.1, prev.2 + 1);
            let next_month = (y, m, d) == (prev.0, prev.1 + 1, 1);
            let next_year = (y, m, d) == (prev.0 + 1, 1, 1) && prev.1 == 12 && prev.2 == 31;
            assert!(
                next_day || next_month || next_year,
                "{prev:?} -> {:?}",
                (y, m, d)
            );
            prev = (y, m, d);
        }
    }
}
