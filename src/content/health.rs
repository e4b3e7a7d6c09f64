//! What `floe.health()` says about the content store: the garbage-collection and tiering
//! backlogs (SPI, as the extension's owner, machinery).

use super::maintenance::gc_grace;
use crate::check::Check;
use crate::error::FloeError;
use crate::privileged;

const BACKLOG: &str = "
    SELECT (SELECT count(*) FROM floe.content
             WHERE refs = 0 AND released_at < pg_catalog.now() - $1::pg_catalog.interval - interval '1 hour'),
           (SELECT count(*) FROM floe.content_tier_targets x
             WHERE x.target <> x.tier
               AND x.last_read + CASE x.target WHEN 'archive' THEN x.archive_after
                                               WHEN 'cold' THEN x.cold_after
                                               WHEN 'warm' THEN x.warm_after
                                               ELSE interval '0' END
                   < pg_catalog.now() - interval '1 hour')";

pub fn health_checks() -> Result<Vec<Check>, FloeError> {
    let (gc_late, tier_late) = privileged::run(|s| {
        let row = s.run(BACKLOG, &[gc_grace().into()])?;
        let row = row.first();
        Ok((
            row.get::<i64>(1)?.unwrap_or(0),
            row.get::<i64>(2)?.unwrap_or(0),
        ))
    })?;
    let gc = if gc_late == 0 {
        Check::ok(
            "content.gc_backlog",
            "no released body is overdue for removal".into(),
        )
    } else {
        Check::warn(
            "content.gc_backlog",
            format!("{gc_late} released bodies are more than an hour past floe.content_gc_grace"),
            "Is the scheduler running floe.content_maintenance? Run SELECT floe.content_gc(); and look at floe.job_runs.",
        )
    };
    let tiering = if tier_late == 0 {
        Check::ok(
            "content.tiering_backlog",
            "every body is in the tier its last read calls for".into(),
        )
    } else {
        Check::warn(
            "content.tiering_backlog",
            format!("{tier_late} bodies have waited more than an hour for their tier"),
            "Raise floe.content_tier_batch, or run SELECT floe.content_tier(); until it returns 0.",
        )
    };
    Ok(vec![gc, tiering])
}
