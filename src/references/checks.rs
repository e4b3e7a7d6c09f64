//! What `floe.health()` says about declared references (pure: no pgrx, no SPI).

use crate::check::{Check, Status};
use crate::queue::checks::human;

/// Microseconds.
pub type Micros = i64;

/// One declared reference, as the glue collects it.
#[derive(Debug, Clone, Default)]
pub struct ReferenceFacts {
    /// `app.email_messages (lead_id) -> app.leads on tier_oltp`.
    pub name: String,
    /// Orphan keys recorded, and the rows they stand for.
    pub orphan_keys: i64,
    pub orphan_rows: i64,
    /// How long the oldest recorded orphan has been known.
    pub oldest_orphan: Option<Micros>,
    /// Keys written while the target could not be reached, not yet checked.
    pub pending: i64,
    /// Since the last completed scan pass (None: never completed).
    pub since_pass: Option<Micros>,
    /// Since the reference was declared.
    pub declared: Micros,
    /// The last scan's error, when it failed after the last pass that completed.
    pub error: Option<String>,
}

/// `references.orphans`: no recorded orphan.
pub fn orphans_check(refs: &[ReferenceFacts]) -> Check {
    let with: Vec<String> = refs
        .iter()
        .filter(|r| r.orphan_keys > 0)
        .map(|r| {
            format!(
                "{}: {} key(s), {} row(s), the oldest found {} ago",
                r.name,
                r.orphan_keys,
                r.orphan_rows,
                human(r.oldest_orphan.unwrap_or(0))
            )
        })
        .collect();
    if with.is_empty() {
        return Check::ok(
            "references.orphans",
            format!("{} reference(s); no orphan found", refs.len()),
        );
    }
    Check {
        name: "references.orphans",
        status: Status::Warn,
        detail: format!("rows pointing at nothing: {}", with.join("; ")),
        hint: Some(
            "floe.reference_orphans lists them; floe.repair_references(tbl) reports them by row, and with action => 'null', 'delete' or 'archive' (and dry_run => false) repairs them."
                .into(),
        ),
    }
}

/// `references.scan`: every reference was scanned within twice the scan interval, the last
/// scan reached its target, and no key written during an outage waits.
pub fn scan_check(refs: &[ReferenceFacts], interval: Micros) -> Check {
    let late = 2 * interval;
    let mut problems = Vec::new();
    for r in refs {
        if let Some(e) = &r.error {
            problems.push(format!("{}: the last scan failed: {e}", r.name));
        }
        match r.since_pass {
            Some(age) if age > late => problems.push(format!(
                "{}: last full scan {} ago (interval {})",
                r.name,
                human(age),
                human(interval)
            )),
            None if r.declared > late => problems.push(format!(
                "{}: never fully scanned, declared {} ago",
                r.name,
                human(r.declared)
            )),
            _ => {}
        }
        if r.pending > 0 {
            problems.push(format!(
                "{}: {} key(s) written while the target was unreachable wait for a scan",
                r.name, r.pending
            ));
        }
    }
    if problems.is_empty() {
        return Check::ok(
            "references.scan",
            format!(
                "{} reference(s), each scanned within {}",
                refs.len(),
                human(late)
            ),
        );
    }
    Check {
        name: "references.scan",
        status: Status::Warn,
        detail: problems.join("; "),
        hint: Some(
            "The built-in job floe.reference_scan scans every floe.reference_scan_interval; floe.reference_scans shows each reference's progress and last error, and SELECT * FROM floe.scan_references(tbl) runs one now. A scan that cannot reach its target deletes nothing."
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Micros = 60_000_000;

    fn fine() -> ReferenceFacts {
        ReferenceFacts {
            name: "app.m (lead_id) -> app.leads on oltp".into(),
            since_pass: Some(10 * MIN),
            declared: 100 * MIN,
            ..Default::default()
        }
    }

    #[test]
    fn no_reference_is_ok() {
        assert_eq!(orphans_check(&[]).status, Status::Ok);
        assert_eq!(scan_check(&[], 60 * MIN).status, Status::Ok);
    }

    #[test]
    fn orphans_warn_with_their_count() {
        assert_eq!(orphans_check(&[fine()]).status, Status::Ok);
        let mut r = fine();
        r.orphan_keys = 2;
        r.orphan_rows = 5;
        r.oldest_orphan = Some(3 * MIN);
        let c = orphans_check(&[fine(), r]);
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.detail
                .contains("2 key(s), 5 row(s), the oldest found 3 min ago"),
            "{}",
            c.detail
        );
    }

    #[test]
    fn a_scan_is_overdue_after_twice_the_interval() {
        let mut r = fine();
        r.since_pass = Some(120 * MIN);
        assert_eq!(scan_check(&[r.clone()], 60 * MIN).status, Status::Ok);
        r.since_pass = Some(121 * MIN);
        let c = scan_check(&[r], 60 * MIN);
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.detail.contains("last full scan 2 h 1 min ago"),
            "{}",
            c.detail
        );
    }

    #[test]
    fn a_new_reference_has_time_for_its_first_pass() {
        let mut r = fine();
        r.since_pass = None;
        r.declared = 30 * MIN;
        assert_eq!(scan_check(&[r.clone()], 60 * MIN).status, Status::Ok);
        r.declared = 121 * MIN;
        assert!(scan_check(&[r], 60 * MIN)
            .detail
            .contains("never fully scanned"));
    }

    #[test]
    fn an_unreachable_target_and_pending_keys_warn() {
        let mut r = fine();
        r.error = Some("could not connect to server \"oltp\"".into());
        let c = scan_check(&[r.clone()], 60 * MIN);
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.detail.contains("the last scan failed: could not connect"),
            "{}",
            c.detail
        );
        r.error = None;
        r.pending = 4;
        assert!(scan_check(&[r], 60 * MIN)
            .detail
            .contains("4 key(s) written while the target was unreachable"));
    }
}
