//! A backend-local flag raised for a scope: floe's own work marks itself (its tenant DDL, its
//! audit row moves, its `SET LOCAL` of the tenant) so that the hooks and triggers it passes
//! through let it by. The flag is put back when the scope ends, on an ERROR's unwind too
//! (pgrx turns the ERROR into a panic that runs `Drop`), else it would stay raised for the
//! rest of the session. Pure.

use std::cell::Cell;
use std::thread::LocalKey;

/// The flag raised until this is dropped; then it has its earlier value again.
#[must_use = "the flag is lowered when this is dropped"]
pub struct Raised {
    flag: &'static LocalKey<Cell<bool>>,
    before: bool,
}

/// Raises `flag` until the returned value is dropped.
pub fn raise(flag: &'static LocalKey<Cell<bool>>) -> Raised {
    Raised {
        flag,
        before: flag.replace(true),
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        self.flag.set(self.before);
    }
}

/// Runs `f` with `flag` raised.
pub fn raised<T>(flag: &'static LocalKey<Cell<bool>>, f: impl FnOnce() -> T) -> T {
    let _raised = raise(flag);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static F: Cell<bool> = const { Cell::new(false) };
    }

    #[test]
    fn raised_for_the_scope_then_put_back() {
        assert!(!F.get());
        assert!(raised(&F, || F.get()));
        assert!(!F.get());
        // Nested: the inner scope's end keeps the outer one's flag up.
        raised(&F, || {
            raised(&F, || ());
            assert!(F.get());
        });
        assert!(!F.get());
    }

    #[test]
    fn put_back_when_a_panic_unwinds() {
        let r = std::panic::catch_unwind(|| raised(&F, || panic!("an ERROR, as pgrx raises it")));
        assert!(r.is_err());
        assert!(!F.get());
    }
}
