//! One entry as captured, waiting in the transaction's buffer (`pending.rs`) to be written
//! (`append.rs`, or the SQL path of `write.rs`).

use super::render::{Fields, TableConfig};
use pgrx::pg_sys;
use std::rc::Rc;

/// Row entries wait here until their statement ends (the statement-level trigger
/// `floe_audit_flush`), FLUSH_AT of them pile up, or the transaction commits; a
/// (sub)transaction abort drops the ones it made.
pub(super) struct Pending {
    pub(super) cfg: Rc<TableConfig>,
    pub(super) subxact: pg_sys::SubTransactionId,
    pub(super) op: &'static str,
    pub(super) tenant: Option<pgrx::Uuid>,
    pub(super) caller: pg_sys::Oid,
    pub(super) actor: Option<String>,
    pub(super) pk: Option<Fields>,
    pub(super) old: Option<Fields>,
    pub(super) new: Option<Fields>,
}
