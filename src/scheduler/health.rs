//! The scheduler's rows of `floe.health()` (SPI, machinery; the check itself is `checks.rs`).

use crate::error::FloeError;
use pgrx::prelude::*;

/// The scheduler's rows of `floe.health()`. Overdue means due more than five minutes ago.
pub fn health_checks(scheduler_running: bool) -> Result<Vec<crate::check::Check>, FloeError> {
    let (total, failing, overdue) = Spi::connect(|client| {
        let mut total = 0;
        let mut failing = Vec::new();
        let mut overdue = Vec::new();
        for row in client.select(
            "SELECT name, enabled AND last_status IN ('failed', 'timed out'),
                    enabled AND next_run < pg_catalog.now() - interval '5 minutes'
               FROM floe.jobs ORDER BY name",
            None,
            &[],
        )? {
            total += 1;
            let name: String = row.get(1)?.unwrap_or_default();
            if row.get::<bool>(2)?.unwrap_or(false) {
                failing.push(name.clone());
            }
            if row.get::<bool>(3)?.unwrap_or(false) {
                overdue.push(name);
            }
        }
        Ok::<_, FloeError>((total, failing, overdue))
    })?;
    Ok(vec![super::checks::jobs_check(
        total,
        &failing,
        &overdue,
        scheduler_running,
    )])
}
