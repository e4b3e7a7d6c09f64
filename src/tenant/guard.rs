//! What the tenant guard trigger does with one row. Pure.
//!
//! The guard runs BEFORE INSERT (every row) and AFTER UPDATE OF the tenant column (only
//! UPDATEs whose SET list names it, and of those only rows whose tenant column changed, thanks
//! to the trigger's WHEN clause; raising there aborts the statement). Row level security already filters what a
//! tenant can see and write; the guard adds what a policy cannot: a missing tenant column is
//! filled from the context, and the tenant of an existing row never changes, for anyone.

use super::context::ContextError;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
}

/// What the trigger does with the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Store the row as it is.
    Keep,
    /// Set the tenant column to this value, then store.
    Fill(Uuid),
    /// Reject the statement (SQLSTATE 42501).
    Reject(GuardError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardError {
    /// No usable tenant context for an insert.
    NoContext(ContextError),
    /// The row names another tenant than the context.
    ForeignRow { row: Uuid, current: Uuid },
    /// An update changes the tenant column.
    TenantChanged {
        old: Option<Uuid>,
        new: Option<Uuid>,
    },
    /// Admin mode may write any tenant's rows, but must say which.
    AdminWithoutTenant,
}

/// Decides one row.
///
/// `context` is the parsed tenant context; `admin` is true when cross-tenant admin mode is
/// active for a member of the admin role (then any explicit tenant may be written).
pub fn decide(
    op: Op,
    old: Option<Uuid>,
    new: Option<Uuid>,
    context: &Result<Uuid, ContextError>,
    admin: bool,
) -> Decision {
    match op {
        Op::Update if old != new => Decision::Reject(GuardError::TenantChanged { old, new }),
        Op::Update => Decision::Keep,
        Op::Insert => match (new, context) {
            (None, Ok(current)) => Decision::Fill(*current),
            (None, Err(_)) if admin => Decision::Reject(GuardError::AdminWithoutTenant),
            (None, Err(e)) => Decision::Reject(GuardError::NoContext(e.clone())),
            (Some(_), _) if admin => Decision::Keep,
            (Some(row), Ok(current)) if row == *current => Decision::Keep,
            (Some(row), Ok(current)) => Decision::Reject(GuardError::ForeignRow {
                row,
                current: *current,
            }),
            (Some(_), Err(e)) => Decision::Reject(GuardError::NoContext(e.clone())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unset() -> Result<Uuid, ContextError> {
        Err(ContextError::Unset {
            setting: "app.current_tenant_id".into(),
        })
    }

    #[test]
    fn insert_cases() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        assert_eq!(
            decide(Op::Insert, None, None, &Ok(a), false),
            Decision::Fill(a)
        );
        assert_eq!(
            decide(Op::Insert, None, Some(a), &Ok(a), false),
            Decision::Keep
        );
        assert_eq!(
            decide(Op::Insert, None, Some(b), &Ok(a), false),
            Decision::Reject(GuardError::ForeignRow { row: b, current: a })
        );
        assert!(matches!(
            decide(Op::Insert, None, Some(a), &unset(), false),
            Decision::Reject(GuardError::NoContext(_))
        ));
        assert!(matches!(
            decide(Op::Insert, None, None, &unset(), false),
            Decision::Reject(GuardError::NoContext(_))
        ));
        assert_eq!(
            decide(Op::Insert, None, Some(b), &unset(), true),
            Decision::Keep
        );
        assert_eq!(
            decide(Op::Insert, None, None, &unset(), true),
            Decision::Reject(GuardError::AdminWithoutTenant)
        );
    }

    #[test]
    fn update_cases() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        assert_eq!(
            decide(Op::Update, Some(a), Some(a), &Ok(a), false),
            Decision::Keep
        );
        for admin in [false, true] {
            assert!(matches!(
                decide(Op::Update, Some(a), Some(b), &Ok(a), admin),
                Decision::Reject(GuardError::TenantChanged { .. })
            ));
            assert!(matches!(
                decide(Op::Update, Some(a), None, &Ok(a), admin),
                Decision::Reject(GuardError::TenantChanged { .. })
            ));
        }
    }

    proptest! {
        /// Whatever the inputs, a stored row ends up with the context's tenant unless admin
        /// mode wrote an explicit one; nothing ever stores a NULL or a foreign tenant.
        #[test]
        fn stored_rows_belong_to_the_context(
            new in prop::option::of(0u128..4),
            ctx in prop::option::of(0u128..4),
            admin in any::<bool>(),
        ) {
            let new = new.map(Uuid::from_u128);
            let context = ctx.map(Uuid::from_u128).ok_or(ContextError::Unset { setting: "s".into() });
            let stored = match decide(Op::Insert, None, new, &context, admin) {
                Decision::Keep => new,
                Decision::Fill(t) => Some(t),
                Decision::Reject(_) => None,
            };
            if let Some(t) = stored {
                prop_assert!(admin || context.as_ref().ok() == Some(&t));
            }
        }

        #[test]
        fn tenant_never_changes(old in prop::option::of(0u128..3), new in prop::option::of(0u128..3), admin in any::<bool>()) {
            let (old, new) = (old.map(Uuid::from_u128), new.map(Uuid::from_u128));
            let d = decide(Op::Update, old, new, &Ok(Uuid::from_u128(0)), admin);
            prop_assert_eq!(matches!(d, Decision::Keep), old == new);
        }
    }
}
