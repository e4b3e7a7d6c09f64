//! When a job runs next. Pure: times are microseconds since the Unix epoch, UTC.
//!
//! A schedule is either a 5-field cron expression (minute hour day-of-month month
//! day-of-week, parsed by `croner`, evaluated in UTC) or a fixed interval such as
//! `'30 seconds'` (parsed by Postgres into microseconds by the glue; anything that is not five
//! fields is an interval).

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use std::fmt;

/// Shortest interval a job may repeat at.
pub const MIN_INTERVAL_US: i64 = 1_000_000;

#[derive(Debug, Clone)]
pub enum Schedule {
    Cron(Box<Cron>),
    Every { micros: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleError {
    /// Five fields, but not a valid cron expression.
    BadCron { text: String, why: String },
    /// An interval shorter than a second (or not positive).
    IntervalTooShort { micros: i64 },
    /// An interval with months: their length varies, cron says what is meant.
    IntervalWithMonths,
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleError::BadCron { text, why } => {
                write!(
                    f,
                    "\"{text}\" is not a valid 5-field cron expression: {why}"
                )
            }
            ScheduleError::IntervalTooShort { micros } => {
                write!(
                    f,
                    "an interval schedule must be at least 1 second (got {micros} microseconds)"
                )
            }
            ScheduleError::IntervalWithMonths => {
                write!(f, "an interval schedule cannot count months or years")
            }
        }
    }
}

/// Whether `text` is meant as a cron expression: exactly five blank-separated fields.
pub fn looks_like_cron(text: &str) -> bool {
    text.split_whitespace().count() == 5
}

/// Parses a 5-field cron expression (no seconds, no year field).
pub fn parse_cron(text: &str) -> Result<Schedule, ScheduleError> {
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    parser
        .parse(text.trim())
        .map(|c| Schedule::Cron(Box::new(c)))
        .map_err(|e| ScheduleError::BadCron {
            text: text.trim().to_string(),
            why: e.to_string(),
        })
}

/// An interval schedule from Postgres's parse of the text (months, days, microseconds).
pub fn every(months: i32, days: i32, micros: i64) -> Result<Schedule, ScheduleError> {
    if months != 0 {
        return Err(ScheduleError::IntervalWithMonths);
    }
    let total = i64::from(days)
        .checked_mul(86_400_000_000)
        .and_then(|d| d.checked_add(micros))
        .unwrap_or(i64::MAX);
    if total < MIN_INTERVAL_US {
        return Err(ScheduleError::IntervalTooShort { micros: total });
    }
    Ok(Schedule::Every { micros: total })
}

fn to_datetime(us: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
}

impl Schedule {
    /// The first run strictly after `now`.
    ///
    /// For an interval, runs stay on the grid `anchor + k * interval` (anchor: when the job
    /// was last due, or created): a late or missed run is not caught up in a burst, and the
    /// schedule does not drift by the time each run takes.
    pub fn next_after(&self, now: i64, anchor: i64) -> Option<i64> {
        match self {
            Schedule::Every { micros } => {
                if anchor > now {
                    return Some(anchor);
                }
                let steps = (now - anchor) / micros + 1;
                anchor.checked_add(steps.checked_mul(*micros)?)
            }
            Schedule::Cron(cron) => {
                let from = to_datetime(now)?;
                let next = cron.find_next_occurrence(&from, false).ok()?;
                Some(next.timestamp_micros())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    #[test]
    fn cron_next_runs() {
        let every5 = parse_cron("*/5 * * * *").unwrap();
        assert_eq!(
            every5.next_after(at("2026-11-22T10:02:30Z"), 0),
            Some(at("2026-11-22T10:05:00Z"))
        );
        assert_eq!(
            every5.next_after(at("2026-11-22T10:05:00Z"), 0),
            Some(at("2026-11-22T10:10:00Z")),
            "strictly after"
        );
        let nightly = parse_cron("30 3 * * *").unwrap();
        assert_eq!(
            nightly.next_after(at("2026-11-22T04:00:00Z"), 0),
            Some(at("2026-11-23T03:30:00Z"))
        );
        let mondays = parse_cron("0 9 * * MON").unwrap();
        assert_eq!(
            mondays.next_after(at("2026-11-22T10:00:00Z"), 0),
            Some(at("2026-11-23T09:00:00Z"))
        );
    }

    /// Cron is UTC: the calendar layer's edges, and no trace of a time zone's DST switch.
    #[test]
    fn cron_at_calendar_edges() {
        let next = |cron: &str, now: &str| parse_cron(cron).unwrap().next_after(at(now), 0);
        // The turn of a year fires a monthly job once: at the edge, then a month later.
        assert_eq!(
            next("0 0 1 * *", "2027-12-31T23:59:59.900Z"),
            Some(at("2028-01-01T00:00:00Z"))
        );
        assert_eq!(
            next("0 0 1 * *", "2028-01-01T00:00:00Z"),
            Some(at("2028-02-01T00:00:00Z"))
        );
        // A leap day exists in 2028 only.
        assert_eq!(
            next("0 0 29 2 *", "2027-01-01T00:00:00Z"),
            Some(at("2028-02-29T00:00:00Z"))
        );
        assert_eq!(
            next("0 0 * * *", "2028-02-28T23:59:30Z"),
            Some(at("2028-02-29T00:00:00Z"))
        );
        assert_eq!(
            next("0 0 * * *", "2027-02-28T23:59:30Z"),
            Some(at("2027-03-01T00:00:00Z"))
        );
        assert_eq!(
            next("0 0 1 * *", "2027-02-28T23:59:30Z"),
            Some(at("2027-03-01T00:00:00Z"))
        );
        // Europe/Berlin's switches (01:00 UTC) are ordinary hours: 02:00 UTC once a day.
        for (now, due) in [
            ("2027-03-28T00:59:30Z", "2027-03-28T02:00:00Z"),
            ("2027-03-28T02:00:00Z", "2027-03-29T02:00:00Z"),
            ("2027-10-31T00:59:30Z", "2027-10-31T02:00:00Z"),
            ("2027-10-31T02:00:00Z", "2027-11-01T02:00:00Z"),
        ] {
            assert_eq!(next("0 2 * * *", now), Some(at(due)), "{now}");
        }
        assert_eq!(
            next("0 1 * * *", "2027-10-31T00:59:30Z"),
            Some(at("2027-10-31T01:00:00Z"))
        );
    }

    #[test]
    fn bad_cron_is_an_error() {
        for bad in ["61 * * * *", "* * * * * *", "a b c d e", "* 25 * * *"] {
            if looks_like_cron(bad) {
                assert!(
                    matches!(parse_cron(bad), Err(ScheduleError::BadCron { .. })),
                    "{bad}"
                );
            }
        }
        assert!(!looks_like_cron("30 seconds"));
        assert!(looks_like_cron(" 0  3 * * * "));
    }

    #[test]
    fn intervals() {
        assert!(matches!(
            every(0, 0, 30_000_000),
            Ok(Schedule::Every { micros: 30_000_000 })
        ));
        assert!(matches!(
            every(0, 1, 0),
            Ok(Schedule::Every {
                micros: 86_400_000_000
            })
        ));
        assert_eq!(
            every(1, 0, 0).unwrap_err(),
            ScheduleError::IntervalWithMonths
        );
        assert!(matches!(
            every(0, 0, 999_999),
            Err(ScheduleError::IntervalTooShort { .. })
        ));
        assert!(matches!(
            every(0, 0, -5),
            Err(ScheduleError::IntervalTooShort { .. })
        ));
        let s = every(0, 0, 10).unwrap_or(Schedule::Every { micros: 10 });
        assert_eq!(s.next_after(100, 0), Some(110));
        assert_eq!(
            s.next_after(5, 20),
            Some(20),
            "an anchor in the future is the next run"
        );
    }

    proptest! {
        /// An interval's next run is after now, at most one interval later, on the grid.
        #[test]
        fn interval_runs_stay_on_the_grid(
            secs in 1i64..100_000, anchor in 0i64..1_000_000_000_000, ahead in 0i64..1_000_000_000_000,
        ) {
            let micros = secs * 1_000_000;
            let s = every(0, 0, micros).unwrap();
            let now = anchor + ahead;
            let next = s.next_after(now, anchor).unwrap();
            prop_assert!(next > now);
            prop_assert!(next - now <= micros);
            prop_assert_eq!((next - anchor) % micros, 0);
        }

        /// A cron job's next run is strictly later and on a whole minute.
        #[test]
        fn cron_runs_are_later_whole_minutes(
            minute in 0u32..60, hour in 0u32..24, now in 0i64..4_000_000_000_000_000,
        ) {
            let s = parse_cron(&format!("{minute} {hour} * * *")).unwrap();
            let next = s.next_after(now, 0).unwrap();
            prop_assert!(next > now);
            prop_assert_eq!(next % 60_000_000, 0);
            prop_assert!(next - now <= 86_400_000_000);
        }

        #[test]
        fn parsing_never_panics(text in "\\PC{0,40}") {
            let _ = parse_cron(&text);
            let _ = looks_like_cron(&text);
        }
    }
}
