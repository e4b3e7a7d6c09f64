//! What a partition set should look like at a given time, and the DDL that gets it there.
//! Pure: no pgrx, no SPI. Times are microseconds since the Unix epoch, in UTC.
//!
//! A set is a parent `PARTITION BY RANGE (control)` plus children of one fixed [`Step`]
//! (hours, days, a week, months, a quarter, a year), aligned to the calendar in UTC. The plan
//! compares the children that should exist (`premake` steps ahead of now, nothing older
//! than the retention cutoff) with the children that do, and says what to create and what to
//! retire. Overlaps with children floe did not make are reported, never papered over.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};
use std::fmt;

const MICROS_PER_HOUR: i64 = 3_600_000_000;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;
/// Postgres's identifier limit (NAMEDATALEN - 1), in bytes.
pub const MAX_IDENT: usize = 63;

/// Why a set cannot be planned as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// The interval is not one floe can align to the calendar.
    Interval(String),
    /// The control column's type cannot hold this interval (hours on a `date`).
    ControlType(String),
    /// A wanted child overlaps an existing child with other bounds.
    Overlap { wanted: String, existing: String },
    /// A time outside what the calendar arithmetic supports.
    OutOfRange,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Interval(s) | PlanError::ControlType(s) => f.write_str(s),
            PlanError::Overlap { wanted, existing } => write!(
                f,
                "partition {wanted} would overlap existing partition {existing}"
            ),
            PlanError::OutOfRange => f.write_str("time out of range for partitioning"),
        }
    }
}

/// The type of the control column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    TimestampTz,
    Timestamp,
    Date,
}

impl ControlType {
    /// From `format_type()` output; `None` for types floe does not partition by.
    pub fn parse(type_name: &str) -> Option<ControlType> {
        match type_name {
            "timestamp with time zone" | "timestamptz" => Some(ControlType::TimestampTz),
            "timestamp without time zone" | "timestamp" => Some(ControlType::Timestamp),
            "date" => Some(ControlType::Date),
            _ => None,
        }
    }

    /// The short name `floe.partition_sets.control_type` stores.
    pub fn sql_name(self) -> &'static str {
        match self {
            ControlType::TimestampTz => "timestamptz",
            ControlType::Timestamp => "timestamp",
            ControlType::Date => "date",
        }
    }
}

/// The width of one child: a whole number of hours (dividing a day), days, or months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Hours(u32),
    Days(u32),
    Months(u32),
}

impl Step {
    /// From the three fields of a Postgres `interval`.
    pub fn from_interval(months: i32, days: i32, micros: i64) -> Result<Step, PlanError> {
        let bad = |why: &str| {
            Err(PlanError::Interval(format!(
                "interval of {months} months, {days} days and {micros} microseconds {why}"
            )))
        };
        match (months, days, micros) {
            (m, 0, 0) if (1..=120).contains(&m) => Ok(Step::Months(m as u32)),
            (0, d, 0) if (1..=366).contains(&d) => Ok(Step::Days(d as u32)),
            (0, 0, us) if us > 0 && us % MICROS_PER_HOUR == 0 => {
                let hours = us / MICROS_PER_HOUR;
                if 24 % hours == 0 {
                    Ok(Step::Hours(hours as u32))
                } else if hours % 24 == 0 && hours / 24 <= 366 {
                    Ok(Step::Days((hours / 24) as u32))
                } else {
                    bad("is not a whole number of hours dividing a day")
                }
            }
            _ => bad("is not supported: use whole hours dividing a day, whole days (at most 366), or whole months (at most 120), not a mix"),
        }
    }

    /// A readable name of the step, for messages and `floe.partition_sets`.
    pub fn label(self) -> String {
        match self {
            Step::Hours(1) => "hourly".into(),
            Step::Days(1) => "daily".into(),
            Step::Days(7) => "weekly".into(),
            Step::Months(1) => "monthly".into(),
            Step::Months(3) => "quarterly".into(),
            Step::Months(12) => "yearly".into(),
            Step::Hours(h) => format!("every {h} hours"),
            Step::Days(d) => format!("every {d} days"),
            Step::Months(m) => format!("every {m} months"),
        }
    }

    /// Checks the step against the control column's type.
    pub fn check_control(self, control: ControlType) -> Result<(), PlanError> {
        match (self, control) {
            (Step::Hours(_), ControlType::Date) => Err(PlanError::ControlType(
                "a date column cannot be partitioned by hours".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The start of the child that contains `t`.
    pub fn floor(self, t: i64) -> Result<i64, PlanError> {
        let dt = to_datetime(t)?;
        let floored = match self {
            Step::Hours(h) => {
                let hour = dt.hour() - dt.hour() % h;
                dt.date()
                    .and_hms_opt(hour, 0, 0)
                    .ok_or(PlanError::OutOfRange)?
            }
            Step::Days(7) => {
                let back = dt.weekday().num_days_from_monday() as i64;
                (dt.date() - Duration::days(back))
                    .and_hms_opt(0, 0, 0)
                    .ok_or(PlanError::OutOfRange)?
            }
            Step::Days(d) => {
                let days = t.div_euclid(MICROS_PER_DAY);
                return Ok((days - days.rem_euclid(d as i64)) * MICROS_PER_DAY);
            }
            Step::Months(m) => {
                let index = dt.year() as i64 * 12 + dt.month0() as i64;
                let index = index - index.rem_euclid(m as i64);
                month_start(index)?
            }
        };
        Ok(floored.and_utc().timestamp_micros())
    }

    /// The start of the child after the one starting at `lo` (`lo` must be aligned).
    pub fn next(self, lo: i64) -> Result<i64, PlanError> {
        match self {
            Step::Hours(h) => Ok(lo + h as i64 * MICROS_PER_HOUR),
            Step::Days(d) => Ok(lo + d as i64 * MICROS_PER_DAY),
            Step::Months(m) => {
                let dt = to_datetime(lo)?;
                let index = dt.year() as i64 * 12 + dt.month0() as i64 + m as i64;
                Ok(month_start(index)?.and_utc().timestamp_micros())
            }
        }
    }

    /// The start of the child before the one starting at `lo` (`lo` must be aligned).
    pub fn prev(self, lo: i64) -> Result<i64, PlanError> {
        match self {
            Step::Hours(h) => Ok(lo - h as i64 * MICROS_PER_HOUR),
            Step::Days(d) => Ok(lo - d as i64 * MICROS_PER_DAY),
            Step::Months(m) => {
                let dt = to_datetime(lo)?;
                let index = dt.year() as i64 * 12 + dt.month0() as i64 - m as i64;
                Ok(month_start(index)?.and_utc().timestamp_micros())
            }
        }
    }

    /// The readable suffix of the child starting at `lo`: `2026_11` (month), `2026_q4`
    /// (quarter), `2026` (year), `2026_w47` (ISO week), `2026_11_22` (day), `2026_11_22_13`
    /// (hours).
    pub fn suffix(self, lo: i64) -> Result<String, PlanError> {
        let dt = to_datetime(lo)?;
        Ok(match self {
            Step::Months(12) => format!("{:04}", dt.year()),
            Step::Months(3) => format!("{:04}_q{}", dt.year(), dt.month0() / 3 + 1),
            Step::Months(_) => format!("{:04}_{:02}", dt.year(), dt.month()),
            Step::Days(7) => {
                let week = dt.iso_week();
                format!("{:04}_w{:02}", week.year(), week.week())
            }
            Step::Days(_) => format!("{:04}_{:02}_{:02}", dt.year(), dt.month(), dt.day()),
            Step::Hours(_) => format!(
                "{:04}_{:02}_{:02}_{:02}",
                dt.year(),
                dt.month(),
                dt.day(),
                dt.hour()
            ),
        })
    }
}

fn to_datetime(t: i64) -> Result<NaiveDateTime, PlanError> {
    DateTime::from_timestamp_micros(t)
        .map(|d| d.naive_utc())
        .ok_or(PlanError::OutOfRange)
}

fn month_start(index: i64) -> Result<NaiveDateTime, PlanError> {
    let year = i32::try_from(index.div_euclid(12)).map_err(|_| PlanError::OutOfRange)?;
    let month = index.rem_euclid(12) as u32 + 1;
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .ok_or(PlanError::OutOfRange)
}

/// The SQL literal text of a bound for the control column's type (UTC).
pub fn bound_text(t: i64, control: ControlType) -> Result<String, PlanError> {
    let dt = to_datetime(t)?;
    Ok(match control {
        ControlType::TimestampTz => format!("{}+00", dt.format("%Y-%m-%d %H:%M:%S")),
        ControlType::Timestamp => dt.format("%Y-%m-%d %H:%M:%S").to_string(),
        ControlType::Date => dt.format("%Y-%m-%d").to_string(),
    })
}

/// `<base>_<suffix>` within Postgres's 63-byte limit: the base is cut (at a character
/// boundary) so the suffix, which carries the meaning, always survives.
pub fn child_name(base: &str, suffix: &str) -> String {
    let room = MAX_IDENT.saturating_sub(suffix.len() + 1);
    let mut cut = base.len().min(room);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{}", &base[..cut], suffix)
}

/// The suffix of a sub-partition for a LIST value: lower-case letters, digits and `_`.
pub fn value_suffix(value: &str) -> String {
    let mut out: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        out.push_str("empty");
    }
    out.truncate(MAX_IDENT / 2);
    out
}

/// Sub-partition suffixes for the given values, or the two values that would share one.
pub fn value_suffixes(values: &[String]) -> Result<Vec<String>, (String, String)> {
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let s = value_suffix(v);
        if s == "default" {
            return Err((v.clone(), "DEFAULT".into()));
        }
        if let Some(j) = out.iter().position(|o| *o == s) {
            return Err((values[j].clone(), values[i].clone()));
        }
        out.push(s);
    }
    Ok(out)
}

/// An existing child of the parent, as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub name: String,
    /// `None` when the bound is MINVALUE; for the default partition both are `None`.
    pub lo: Option<i64>,
    /// `None` when the bound is MAXVALUE.
    pub hi: Option<i64>,
    pub is_default: bool,
}

/// A child that should exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub name: String,
    pub lo: i64,
    pub hi: i64,
}

/// What one maintenance pass does to a set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Children to create, oldest first.
    pub create: Vec<Range>,
    /// Children to retire (detach, then drop or archive), oldest first.
    pub retire: Vec<String>,
    /// The child covering `as_of` exists or is planned, and so are the premade ones: only
    /// then may anything be retired.
    pub complete: bool,
}

/// The inputs of one pass.
#[derive(Debug, Clone)]
pub struct SetState<'a> {
    pub base: &'a str,
    pub step: Step,
    pub premake: u32,
    /// The oldest child the set was created with (aligned).
    pub start: i64,
    /// Children whose upper bound is at or before this are retired.
    pub retain_after: Option<i64>,
    pub children: &'a [Child],
}

/// Plans one pass at time `as_of`: create every missing child from the oldest one still
/// retained through `premake` steps past the one containing `as_of`; retire children that
/// end at or before the retention cutoff. A wanted range that overlaps an existing child
/// with other bounds is an error (nothing is planned).
pub fn plan(state: &SetState<'_>, as_of: i64) -> Result<Plan, PlanError> {
    let step = state.step;
    let current = step.floor(as_of)?;
    let mut last = current;
    for _ in 0..state.premake {
        last = step.next(last)?;
    }
    let mut lo = step.floor(state.start)?;
    // Fill from the newest existing child on (a gap after missed runs is filled; children
    // someone removed by hand before it are not brought back).
    if let Some(newest) = state
        .children
        .iter()
        .filter(|c| !c.is_default)
        .filter_map(|c| c.hi)
        .max()
    {
        lo = lo.max(step.floor(newest)?.min(current));
    }
    if let Some(cutoff) = state.retain_after {
        // The oldest child to keep is the one whose end is after the cutoff.
        let keep_from = step.floor(cutoff)?;
        lo = lo.max(keep_from);
    }
    // The current child is always wanted, whatever `start` said.
    lo = lo.min(current);
    let mut out = Plan::default();
    while lo <= last {
        let hi = step.next(lo)?;
        let name = child_name(state.base, &step.suffix(lo)?);
        let mut exists = false;
        for c in state.children.iter().filter(|c| !c.is_default) {
            if c.lo == Some(lo) && c.hi == Some(hi) {
                exists = true;
                break;
            }
            let c_lo = c.lo.unwrap_or(i64::MIN);
            let c_hi = c.hi.unwrap_or(i64::MAX);
            if c_lo < hi && lo < c_hi {
                return Err(PlanError::Overlap {
                    wanted: name,
                    existing: c.name.clone(),
                });
            }
        }
        if !exists {
            out.create.push(Range { name, lo, hi });
        }
        lo = hi;
    }
    out.complete = true;
    if let Some(cutoff) = state.retain_after {
        // Only children that are exactly one period of the set: a partition someone attached
        // by hand with other bounds (an archive of old years, say) is never retired.
        let mut old: Vec<&Child> = state
            .children
            .iter()
            .filter(|c| !c.is_default && matches!(c.hi, Some(hi) if hi <= cutoff))
            .filter(|c| match (c.lo, c.hi) {
                (Some(lo), Some(hi)) => step.floor(lo) == Ok(lo) && step.next(lo) == Ok(hi),
                _ => false,
            })
            .collect();
        old.sort_by_key(|c| c.hi);
        out.retire = old.into_iter().map(|c| c.name.clone()).collect();
    }
    Ok(out)
}

/// How far a set reaches at `now`: how many children start after it, and whether one
/// covers it (the default partition and MINVALUE/MAXVALUE bounds count for neither).
pub fn reach(children: &[Child], now: i64) -> (i64, bool) {
    let bounded = || children.iter().filter(|c| !c.is_default);
    let ahead = bounded()
        .filter(|c| matches!(c.lo, Some(lo) if lo > now))
        .count() as i64;
    let covered =
        bounded().any(|c| matches!((c.lo, c.hi), (Some(lo), Some(hi)) if lo <= now && now < hi));
    (ahead, covered)
}

/// Where retired children go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionMode {
    Detach,
    Drop,
    Archive,
}

impl RetentionMode {
    pub fn parse(s: &str) -> Option<RetentionMode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "detach" => Some(RetentionMode::Detach),
            "drop" => Some(RetentionMode::Drop),
            "archive" => Some(RetentionMode::Archive),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RetentionMode::Detach => "detach",
            RetentionMode::Drop => "drop",
            RetentionMode::Archive => "archive",
        }
    }
}

/// How long to wait before retry `attempt` (0-based) of a DDL step that hit `lock_timeout`:
/// 50 ms doubling, at most 2 s, so writers queued behind a failed attempt get through.
pub fn lock_retry_delay_ms(attempt: u32) -> u64 {
    (50u64 << attempt.min(6)).min(2000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> i64 {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp_micros()
    }

    #[test]
    fn intervals() {
        assert_eq!(Step::from_interval(1, 0, 0), Ok(Step::Months(1)));
        assert_eq!(Step::from_interval(0, 7, 0), Ok(Step::Days(7)));
        assert_eq!(
            Step::from_interval(0, 0, 6 * MICROS_PER_HOUR),
            Ok(Step::Hours(6))
        );
        assert_eq!(
            Step::from_interval(0, 0, 48 * MICROS_PER_HOUR),
            Ok(Step::Days(2))
        );
        assert!(Step::from_interval(1, 1, 0).is_err());
        assert!(Step::from_interval(0, 0, 5 * MICROS_PER_HOUR).is_err());
        assert!(Step::from_interval(0, 0, 90_000_000).is_err());
        assert!(Step::from_interval(-1, 0, 0).is_err());
        assert!(Step::from_interval(0, 0, 0).is_err());
        assert!(Step::Hours(1).check_control(ControlType::Date).is_err());
        assert!(Step::Days(1).check_control(ControlType::Date).is_ok());
    }

    #[test]
    fn names_per_interval() {
        let t = at("2026-11-22 13:45:00");
        let name = |s: Step| child_name("events", &s.suffix(s.floor(t).unwrap()).unwrap());
        assert_eq!(name(Step::Months(1)), "events_2026_11");
        assert_eq!(name(Step::Months(3)), "events_2026_q4");
        assert_eq!(name(Step::Months(12)), "events_2026");
        assert_eq!(name(Step::Days(7)), "events_2026_w47");
        assert_eq!(name(Step::Days(1)), "events_2026_11_22");
        assert_eq!(name(Step::Hours(1)), "events_2026_11_22_13");
        assert_eq!(name(Step::Hours(6)), "events_2026_11_22_12");
        assert_eq!(name(Step::Months(6)), "events_2026_07");
        // ISO week years differ from calendar years around New Year.
        let s = Step::Days(7);
        let lo = s.floor(at("2027-01-01 00:00:00")).unwrap();
        assert_eq!(s.suffix(lo).unwrap(), "2026_w53");
        assert_eq!(lo, at("2026-12-28 00:00:00"));
    }

    /// The calendar layer's edges, to the microsecond: the last instant before the edge and
    /// the first after it belong to adjacent periods, in UTC.
    #[test]
    fn calendar_edges() {
        let us = 1i64;
        for (edge, step, before, after) in [
            (
                "2028-01-01 00:00:00",
                Step::Months(1),
                "events_2027_12",
                "events_2028_01",
            ),
            (
                "2028-01-01 00:00:00",
                Step::Months(12),
                "events_2027",
                "events_2028",
            ),
            (
                "2028-01-01 00:00:00",
                Step::Months(3),
                "events_2027_q4",
                "events_2028_q1",
            ),
            (
                "2028-02-29 00:00:00",
                Step::Days(1),
                "events_2028_02_28",
                "events_2028_02_29",
            ),
            (
                "2028-03-01 00:00:00",
                Step::Days(1),
                "events_2028_02_29",
                "events_2028_03_01",
            ),
            (
                "2027-03-01 00:00:00",
                Step::Days(1),
                "events_2027_02_28",
                "events_2027_03_01",
            ),
            (
                "2027-03-01 00:00:00",
                Step::Months(1),
                "events_2027_02",
                "events_2027_03",
            ),
            (
                "2027-03-28 01:00:00",
                Step::Hours(1),
                "events_2027_03_28_00",
                "events_2027_03_28_01",
            ),
            (
                "2027-10-31 01:00:00",
                Step::Hours(1),
                "events_2027_10_31_00",
                "events_2027_10_31_01",
            ),
        ] {
            let t = at(edge);
            let name = |x: i64| child_name("events", &step.suffix(step.floor(x).unwrap()).unwrap());
            assert_eq!(name(t - us), before, "{edge} {step:?}");
            assert_eq!(name(t), after, "{edge} {step:?}");
            assert_eq!(
                step.floor(t),
                Ok(t),
                "{edge} {step:?}: the edge starts a period"
            );
            assert_eq!(
                step.next(step.floor(t - us).unwrap()),
                Ok(t),
                "{edge} {step:?}"
            );
        }
        // A leap February has 29 days, another 28.
        let m = Step::Months(1);
        assert_eq!(
            m.next(at("2028-02-01 00:00:00")),
            Ok(at("2028-03-01 00:00:00"))
        );
        assert_eq!(
            (at("2028-03-01 00:00:00") - at("2028-02-01 00:00:00")) / (24 * MICROS_PER_HOUR),
            29
        );
        assert_eq!(
            m.next(at("2027-02-01 00:00:00")),
            Ok(at("2027-03-01 00:00:00"))
        );
    }

    #[test]
    fn long_names_keep_their_suffix() {
        let base = "é".repeat(40);
        let n = child_name(&base, "2026_11");
        assert!(n.len() <= MAX_IDENT);
        assert!(n.ends_with("_2026_11"));
    }

    #[test]
    fn bounds_render_per_type() {
        let t = at("2026-11-01 00:00:00");
        assert_eq!(
            bound_text(t, ControlType::TimestampTz).unwrap(),
            "2026-11-01 00:00:00+00"
        );
        assert_eq!(
            bound_text(t, ControlType::Timestamp).unwrap(),
            "2026-11-01 00:00:00"
        );
        assert_eq!(bound_text(t, ControlType::Date).unwrap(), "2026-11-01");
        for c in [
            ControlType::TimestampTz,
            ControlType::Timestamp,
            ControlType::Date,
        ] {
            assert_eq!(ControlType::parse(c.sql_name()), Some(c));
        }
    }

    #[test]
    fn value_suffixes_are_distinct() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            value_suffixes(&v(&["send", "Process-Bounce"])).unwrap(),
            vec!["send", "process_bounce"]
        );
        assert!(value_suffixes(&v(&["a b", "a-b"])).is_err());
        assert!(value_suffixes(&v(&["default"])).is_err());
        assert_eq!(value_suffix(""), "empty");
    }

    fn monthly(children: &[Child], start: &str, retain: Option<&str>) -> SetState<'static> {
        SetState {
            base: "events",
            step: Step::Months(1),
            premake: 2,
            start: at(start),
            retain_after: retain.map(at),
            children: Box::leak(children.to_vec().into_boxed_slice()),
        }
    }

    fn child(name: &str, lo: &str, hi: &str) -> Child {
        Child {
            name: name.into(),
            lo: Some(at(lo)),
            hi: Some(at(hi)),
            is_default: false,
        }
    }

    #[test]
    fn premake_after_time_passes() {
        let s = monthly(&[], "2026-11-01 00:00:00", None);
        let p = plan(&s, at("2026-11-22 00:00:00")).unwrap();
        let names: Vec<_> = p.create.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["events_2026_11", "events_2026_12", "events_2027_01"]
        );
        // A month later one more is due; the existing ones are kept.
        let have: Vec<Child> = p
            .create
            .iter()
            .map(|r| Child {
                name: r.name.clone(),
                lo: Some(r.lo),
                hi: Some(r.hi),
                is_default: false,
            })
            .collect();
        let s = monthly(&have, "2026-11-01 00:00:00", None);
        let p = plan(&s, at("2026-12-05 00:00:00")).unwrap();
        let names: Vec<_> = p.create.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["events_2027_02"]);
        assert!(p.retire.is_empty());
    }

    #[test]
    fn retention_and_overlap() {
        let have = [
            child(
                "events_2026_09",
                "2026-09-01 00:00:00",
                "2026-10-01 00:00:00",
            ),
            child(
                "events_2026_10",
                "2026-10-01 00:00:00",
                "2026-11-01 00:00:00",
            ),
            child(
                "events_2026_11",
                "2026-11-01 00:00:00",
                "2026-12-01 00:00:00",
            ),
            Child {
                name: "events_default".into(),
                lo: None,
                hi: None,
                is_default: true,
            },
        ];
        let s = monthly(&have, "2026-09-01 00:00:00", Some("2026-10-15 00:00:00"));
        let p = plan(&s, at("2026-11-22 00:00:00")).unwrap();
        assert_eq!(p.retire, ["events_2026_09"]);
        assert_eq!(p.create.len(), 2);
        assert!(p.complete);

        // A hand-made child with other bounds is never retired.
        let mut with_archive = have.to_vec();
        with_archive.push(Child {
            name: "events_before_2026".into(),
            lo: None,
            hi: Some(at("2026-09-01 00:00:00")),
            is_default: false,
        });
        with_archive.push(child(
            "events_two_months",
            "2026-07-01 00:00:00",
            "2026-09-01 00:00:00",
        ));
        let s = monthly(
            &with_archive,
            "2026-09-01 00:00:00",
            Some("2026-10-15 00:00:00"),
        );
        assert_eq!(
            plan(&s, at("2026-11-22 00:00:00")).unwrap().retire,
            ["events_2026_09"]
        );

        let odd = [child("mine", "2026-11-15 00:00:00", "2026-12-15 00:00:00")];
        let s = monthly(&odd, "2026-11-01 00:00:00", None);
        assert_eq!(
            plan(&s, at("2026-11-22 00:00:00")),
            Err(PlanError::Overlap {
                wanted: "events_2026_11".into(),
                existing: "mine".into()
            })
        );
    }

    #[test]
    fn reach_counts_children_ahead_and_the_current_one() {
        let kids = [
            child(
                "events_2026_10",
                "2026-10-01 00:00:00",
                "2026-11-01 00:00:00",
            ),
            child(
                "events_2026_11",
                "2026-11-01 00:00:00",
                "2026-12-01 00:00:00",
            ),
            child(
                "events_2026_12",
                "2026-12-01 00:00:00",
                "2027-01-01 00:00:00",
            ),
            child(
                "events_2027_01",
                "2027-01-01 00:00:00",
                "2027-02-01 00:00:00",
            ),
            Child {
                name: "events_default".into(),
                lo: None,
                hi: None,
                is_default: true,
            },
        ];
        assert_eq!(reach(&kids, at("2026-11-22 00:00:00")), (2, true));
        assert_eq!(reach(&kids, at("2027-03-01 00:00:00")), (0, false));
        assert_eq!(reach(&[], at("2026-11-22 00:00:00")), (0, false));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Children tile time: each is aligned, next(floor(t)) > t >= floor(t), and
        /// prev(next(lo)) == lo.
        #[test]
        fn steps_tile_time(t in -2_000_000_000_000_000i64..4_000_000_000_000_000i64,
                           kind in 0usize..9) {
            let step = [Step::Hours(1), Step::Hours(6), Step::Days(1), Step::Days(7),
                        Step::Days(10), Step::Months(1), Step::Months(3), Step::Months(12),
                        Step::Months(5)][kind];
            let lo = step.floor(t).unwrap();
            let hi = step.next(lo).unwrap();
            prop_assert!(lo <= t && t < hi);
            prop_assert_eq!(step.floor(lo).unwrap(), lo);
            prop_assert_eq!(step.prev(hi).unwrap(), lo);
            prop_assert_eq!(step.floor(hi).unwrap(), hi);
            // Distinct children have distinct names.
            prop_assert_ne!(step.suffix(lo).unwrap(), step.suffix(hi).unwrap());
        }

        /// Planned children are contiguous, start no later than the current one, reach
        /// `premake` steps past it, and never overlap what exists.
        #[test]
        fn plans_are_contiguous(now in 0i64..3_000_000_000_000_000i64, premake in 0u32..12,
                                back in 0u32..6) {
            let step = Step::Months(1);
            let mut start = step.floor(now).unwrap();
            for _ in 0..back { start = step.prev(start).unwrap(); }
            let s = SetState { base: "t", step, premake, start, retain_after: None, children: &[] };
            let p = plan(&s, now).unwrap();
            prop_assert_eq!(p.create.len() as u32, back + premake + 1);
            for w in p.create.windows(2) { prop_assert_eq!(w[0].hi, w[1].lo); }
            prop_assert!(p.create[0].lo <= now);
            let have: Vec<Child> = p.create.iter().map(|r| Child {
                name: r.name.clone(), lo: Some(r.lo), hi: Some(r.hi), is_default: false }).collect();
            let s2 = SetState { children: &have, ..s };
            prop_assert!(plan(&s2, now).unwrap().create.is_empty());
        }
    }
}
