//! floe's own custody of the audit log: the backend-local flag under which floe itself moves
//! or retires audit rows (default-partition drain, retention), which no SQL can set.

use std::cell::Cell;

thread_local! {
    /// Set while floe itself moves or expires audit rows (default-partition drain, seal
    /// expiry). Backend-local and not reachable from SQL.
    static INTERNAL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the append-only triggers standing aside (floe's own row moves).
pub fn internal<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            INTERNAL.set(self.0);
        }
    }
    let _reset = Reset(INTERNAL.replace(true));
    f()
}

/// Whether floe itself is moving or retiring audit rows in this backend right now.
pub(super) fn is_internal() -> bool {
    INTERNAL.get()
}
