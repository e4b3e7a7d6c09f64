//! Every `floe.*` setting lives here: private statics, one [`init`], typed accessors.
//!
//! Modules never touch the statics; they call the accessors, so a setting's name, default,
//! range and context are stated once. `init` also reserves the `floe.` prefix, so a typo such
//! as `SET floe.tenant_settng = ...` is an error instead of a silently ignored placeholder.
//!
//! The foundation defines no settings of its own yet; each module adds its settings here as
//! it lands (and the README's settings table with them).

use pgrx::pg_sys;

/// The prefix every floe setting uses.
pub const PREFIX: &std::ffi::CStr = c"floe";

/// Registers every floe setting. Called once from `_PG_init`.
pub fn init() {
    reserve_prefix();
}

fn reserve_prefix() {
    // SAFETY: called from _PG_init in the main backend thread with a static C string.
    #[cfg(not(any(feature = "pg13", feature = "pg14")))]
    unsafe {
        pg_sys::MarkGUCPrefixReserved(PREFIX.as_ptr());
    }
    // Before PostgreSQL 15 the closest equivalent only warns about unknown placeholders.
    #[cfg(any(feature = "pg13", feature = "pg14"))]
    unsafe {
        pg_sys::EmitWarningsOnPlaceholders(PREFIX.as_ptr());
    }
}
