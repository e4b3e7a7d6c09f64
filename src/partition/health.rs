//! The facts of every partition set that `checks.rs` judges for `floe.health()`.

use super::checks::{self, SetFacts};
use super::children::{children, default_partition_of};
use super::plan::{self, ControlType};
use crate::check::Check;
use crate::error::FloeError;
use crate::subxact;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// The facts `floe.health()` needs about each set the caller can see.
pub fn health_checks() -> Result<Vec<Check>, FloeError> {
    let (now, sets) = Spi::connect(|client| {
        let now = client
            .select(
                "SELECT (extract(epoch FROM pg_catalog.now()) * 1000000)::int8",
                None,
                &[],
            )?
            .first()
            .get::<i64>(1)?
            .unwrap_or(0);
        let mut out = Vec::new();
        for row in client.select(
            "SELECT parent, pg_catalog.to_regclass(parent)::oid, premake, last_error, control_type
               FROM floe.partition_sets ORDER BY parent",
            None,
            &[],
        )? {
            out.push((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<pg_sys::Oid>(2)?,
                row.get::<i32>(3)?.unwrap_or(0) as i64,
                row.get::<String>(4)?,
                ControlType::parse(&row.get::<String>(5)?.unwrap_or_default()),
            ));
        }
        Ok::<_, FloeError>((now, out))
    })?;
    let mut facts = Vec::with_capacity(sets.len());
    for (parent, oid, premake, last_error, control_type) in sets {
        let mut f = SetFacts {
            parent,
            parent_exists: oid.is_some(),
            premake,
            last_error,
            ..Default::default()
        };
        if let (Some(oid), Some(control_type)) = (oid, control_type) {
            let (kids, _) = children(oid, control_type)?;
            (f.future_children, f.has_current) = plan::reach(&kids, now);
            if let Some(default) = default_partition_of(&kids) {
                let any = subxact::run(|| {
                    Spi::get_one::<bool>(&format!("SELECT EXISTS (SELECT 1 FROM {default})"))
                });
                // A default partition the caller may not read is reported as unknown (no rows).
                f.default_has_rows = matches!(any, Ok(Ok(Some(true))));
            }
        }
        facts.push(f);
    }
    Ok(vec![
        checks::premake_check(&facts),
        checks::default_rows_check(&facts),
        checks::maintenance_check(&facts),
    ])
}
