//! The per-transaction buffer of entries: filled by `capture.rs`, flushed at the end of a
//! statement, when it is full, or before commit, emptied by a (sub)transaction abort
//! (machinery: transaction callbacks; the INSERTs are `write.rs`).

use super::entry::Pending;
use super::render::{json_text, Fields};
use super::write::{ensure_target, month_target, run_on_target};
use crate::error::FloeError;
use crate::privileged;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};

pub(super) const FLUSH_AT: usize = 1000;

thread_local! {
    pub(super) static PENDING: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
    static CALLBACKS: Cell<bool> = const { Cell::new(false) };
}

#[pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    match event {
        // Entries of a statement whose flush trigger did not run (a write straight into a
        // partition of an audited table): written before the commit, or no commit.
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_PRE_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE
            if PENDING.with_borrow(|p| !p.is_empty()) =>
        {
            // SAFETY: commit has released the statement's snapshot; SPI needs one. An ERROR
            // aborts the transaction, which cleans the snapshot stack.
            unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot()) };
            let flushed = flush();
            unsafe { pg_sys::PopActiveSnapshot() };
            if let Err(e) = flushed {
                e.raise();
            }
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
        | pg_sys::XactEvent::XACT_EVENT_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PREPARE => {
            PENDING.with_borrow_mut(Vec::clear);
        }
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    my_subid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        PENDING.with_borrow_mut(|p| p.retain(|e| e.subxact < my_subid));
    }
}

pub(super) fn ensure_callbacks() {
    if !CALLBACKS.get() {
        // SAFETY: registered once per backend, for its life.
        unsafe {
            pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
        }
        CALLBACKS.set(true);
    }
}

/// Writes every pending entry: straight into the month (`append.rs`), or else one INSERT
/// per run of entries of one table.
pub(super) fn flush() -> Result<(), FloeError> {
    let pending = PENDING.with_borrow_mut(std::mem::take);
    if pending.is_empty() {
        return Ok(());
    }
    ensure_target()?;
    if let Some((month, seq)) = month_target() {
        if privileged::as_owner(|| super::append::append(month, seq, &pending))? {
            return Ok(());
        }
    }
    privileged::run_qualified(|s| {
        for group in pending.chunk_by(|a, b| a.cfg.root == b.cfg.root) {
            let cfg = &group[0].cfg;
            let mut args: Vec<pgrx::datum::DatumWithOid<'_>> = vec![
                cfg.log_relid.into(),
                cfg.schema.as_str().into(),
                cfg.table.as_str().into(),
                cfg.redact.clone().into(),
                cfg.classification.clone().into(),
            ];
            if let [e] = group {
                args.extend([
                    e.op.into(),
                    e.tenant.into(),
                    e.caller.into(),
                    e.actor.clone().into(),
                    e.pk.as_ref().map(|f| json_text(cfg, f)).into(),
                    e.old.as_ref().map(|f| json_text(cfg, f)).into(),
                    e.new.as_ref().map(|f| json_text(cfg, f)).into(),
                ]);
            } else {
                let col =
                    |f: fn(&Pending) -> Option<String>| group.iter().map(f).collect::<Vec<_>>();
                let json = |f: fn(&Pending) -> &Option<Fields>| {
                    group
                        .iter()
                        .map(|e| f(e).as_ref().map(|x| json_text(cfg, x)))
                        .collect::<Vec<_>>()
                };
                args.extend([
                    col(|e| Some(e.op.to_string())).into(),
                    group.iter().map(|e| e.tenant).collect::<Vec<_>>().into(),
                    group.iter().map(|e| e.caller).collect::<Vec<_>>().into(),
                    col(|e| e.actor.clone()).into(),
                    json(|e| &e.pk).into(),
                    json(|e| &e.old).into(),
                    json(|e| &e.new).into(),
                ]);
            }
            run_on_target(s, group.len() > 1, &args)?;
        }
        Ok(())
    })
}
