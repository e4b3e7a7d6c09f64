//! What `floe.health()` says about registered views (SPI, machinery; the checks themselves
//! are `checks.rs`).

use super::checks::{self, ViewFacts};
use super::views::{dirty_map, load_views, state_of};
use crate::check::Check;
use crate::error::FloeError;
use crate::sqltypes::wall_clock;

/// `matview.stale` and `matview.failing` over the views the caller can see.
pub fn health_checks() -> Result<Vec<Check>, FloeError> {
    let views = load_views(None)?;
    let dirty = dirty_map(&views)?;
    let facts: Vec<ViewFacts> = views
        .into_iter()
        .map(|v| ViewFacts {
            state: state_of(&v, dirty.get(&v.oid).copied().flatten()),
            name: v.name,
            policy: v.policy,
            last_error: v.last_error,
        })
        .collect();
    Ok(checks::view_checks(&facts, wall_clock()))
}
