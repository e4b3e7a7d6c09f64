//! The enforce check: an AFTER statement trigger on the referencing table (one for INSERT,
//! one for UPDATE, both with transition tables) that looks up the keys the statement wrote in
//! the target, all at once, and rejects the statement when one is missing (SPI, machinery).
//!
//! Per statement: the distinct new keys are read from the transition table (as the writer);
//! keys this session found present less than `floe.reference_cache_ttl` ago are skipped; the
//! rest go to the target in one query per [`BATCH`] keys (as the extension's owner, whose
//! user mapping the server has), in a subtransaction, so that a target that cannot be reached
//! is an answer (`on_unreachable`) rather than an abort from inside `postgres_fdw`.
//!
//! A check, not a lock: between the check and the commit the target row can be deleted in
//! its own database, and nothing here can stop it (there is no transaction across the two).
//! The scan finds such rows afterwards.

use super::cache::Positives;
use super::registry::{self, Loaded};
use super::remote;
use super::statements::describe_key;
use crate::error::FloeError;
use crate::privileged;
use crate::sqltypes::{wall_clock, SECOND};
use crate::subxact;
use pgrx::prelude::*;
use std::cell::RefCell;

/// Most keys sent to the target in one query.
pub(super) const BATCH: usize = 10_000;

thread_local! {
    static POSITIVES: RefCell<Positives> = RefCell::new(Positives::default());
}

/// The trigger's work for one statement.
pub(super) fn statement(trigger: &PgTrigger<'_>) -> Result<(), FloeError> {
    let id = trigger
        .extra_args()
        .ok()
        .and_then(|a| a.first().and_then(|v| v.parse::<i32>().ok()))
        .ok_or_else(|| FloeError::InvalidDefinition {
            message: "floe.reference_check() needs the reference's id as its argument".into(),
            detail: None,
            hint: "floe.declare_reference creates these triggers; declare the reference again."
                .into(),
        })?;
    let Some(reference) = privileged::run(|s| registry::load(s, id))? else {
        // Dropped by a transaction this one does not see yet: nothing declared to check.
        return Ok(());
    };
    if !reference.enforce {
        return Ok(());
    }
    let new = trigger.new_transition_table_name().ok().flatten();
    let old = trigger.old_transition_table_name().ok().flatten();
    let Some(new) = new else {
        return Err(FloeError::InvalidDefinition {
            message: format!(
                "trigger {} of {} has no transition table of new rows",
                trigger.name().unwrap_or("?"),
                reference.qualified
            ),
            detail: None,
            hint: "floe.declare_reference creates these triggers; declare the reference again."
                .into(),
        });
    };
    let keys = written_keys(trigger, &reference.shape.written_keys(new, old))?;
    check_keys(&reference, keys)
}

/// The keys the statement wrote, read from its transition tables as the writer.
fn written_keys(trigger: &PgTrigger<'_>, sql: &str) -> Result<Vec<Vec<String>>, FloeError> {
    let data = std::ptr::from_ref(trigger.trigger_data()).cast_mut();
    Spi::connect(|client| {
        // SAFETY: the trigger's own TriggerData, registered on the connection just opened;
        // its transition tables live until the statement's after-trigger events are done.
        let rc = unsafe { pg_sys::SPI_register_trigger_data(data) };
        if rc != pg_sys::SPI_OK_TD_REGISTER as i32 {
            return Err(FloeError::Internal {
                message: format!("SPI_register_trigger_data returned {rc}"),
            });
        }
        let mut keys = Vec::new();
        for row in client.select(sql, None, &[])? {
            keys.extend(row.get::<Vec<String>>(1)?);
        }
        Ok(keys)
    })
}

/// Checks `keys` of `reference` against its target (see the module documentation).
pub(super) fn check_keys(reference: &Loaded, keys: Vec<Vec<String>>) -> Result<(), FloeError> {
    if keys.is_empty() {
        return Ok(());
    }
    let now = wall_clock();
    let ttl = i64::from(crate::gucs::reference_cache_ttl_secs()) * SECOND;
    let unknown: Vec<Vec<String>> = POSITIVES.with_borrow_mut(|p| {
        p.resize(crate::gucs::reference_cache_size());
        p.bind(reference.id, &reference.target_name);
        keys.into_iter()
            .filter(|k| !p.seen(reference.id, k, now, ttl))
            .collect()
    });
    for batch in unknown.chunks(BATCH) {
        let asked =
            subxact::try_run(|| privileged::run(|s| remote::missing(s, &reference.shape, batch)));
        match asked {
            Ok(Ok(missing)) if missing.is_empty() => POSITIVES.with_borrow_mut(|p| {
                for k in batch {
                    p.found(reference.id, k.clone(), now);
                }
            }),
            Ok(Ok(missing)) => return Err(dangling(reference, &missing)),
            Ok(Err(e)) => return Err(e),
            Err(caught) if remote::unreachable(caught.code) => {
                if !reference.allow_unreachable {
                    return Err(FloeError::Sql {
                        code: caught.code,
                        message: format!(
                            "cannot check reference {}: its target cannot be reached",
                            reference.describe()
                        ),
                        detail: Some(caught.describe()),
                        hint: "The write is refused (on_unreachable => 'reject'). Retry when the target's server is back, or declare the reference with on_unreachable => 'allow' to accept writes and check them at the next scan.".into(),
                    });
                }
                privileged::run(|s| registry::queue(s, reference.id, batch))?;
            }
            Err(caught) => {
                return Err(FloeError::Sql {
                    code: caught.code,
                    message: format!(
                        "cannot check reference {}: {}",
                        reference.describe(),
                        caught.message
                    ),
                    detail: caught.detail,
                    hint: "The target answered with an error: check that the target table still exists and matches the declaration (floe.declare_reference checks both).".into(),
                })
            }
        }
    }
    Ok(())
}

/// 23503 naming the first missing key, the table, the column(s) and the target.
fn dangling(reference: &Loaded, missing: &[Vec<String>]) -> FloeError {
    let first = describe_key(&reference.key_columns, &missing[0]);
    FloeError::Sql {
        code: PgSqlErrorCode::ERRCODE_FOREIGN_KEY_VIOLATION,
        message: format!(
            "insert or update on table {} violates reference {}: key {first} is not present in {}",
            reference.qualified, reference.id, reference.target_name
        ),
        detail: (missing.len() > 1).then(|| {
            format!(
                "{} keys of the statement are missing; the first is shown.",
                missing.len()
            )
        }),
        hint: format!(
            "Create the target row first, or leave the column(s) NULL. The reference is floe.declared_references id {} (mode enforce).",
            reference.id
        ),
    }
}
