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
#[path = "plan_tests.rs"]
mod tests;
