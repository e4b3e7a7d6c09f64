//! Tenant routing on Citus (pure): what floe's planner hook does with a relation whose
//! row-level security is floe's tenant policy.
//!
//! On a Citus coordinator, a query on a distributed table isolated by floe carries the policy
//! `tenant_id = floe.current_tenant()` as a security qual. Citus prunes shards only on
//! `column = constant`, so without a tenant filter written by the application the query fans
//! out to every shard (the workers' copies of the policy then filter). floe's hook runs ahead
//! of Citus's and adds the constant form, `tenant_id = '<the current tenant>'`, to the same
//! relation's security quals: the rows are exactly those the policy lets through (it is the
//! same condition with the function evaluated), so no result changes, and Citus routes the
//! query to the tenant's one shard.

use super::context::ContextError;

/// What the hook does with one relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Add `column = tenant`.
    Pin(uuid::Uuid),
    /// Leave it: the policy does not apply as floe's alone (admin mode shows every tenant).
    Leave,
    /// Refuse the query as `floe.current_tenant()` would (no valid tenant): the workers must
    /// never be the only ones to judge the tenant, since they do not know who may claim which.
    Refuse(ContextError),
}

/// The security quals of a relation, as far as floe's policies go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policies {
    /// `column = floe.current_tenant()`, alone or OR'ed with floe's admin policy only.
    FloeTenant,
    /// Anything else: another policy OR'ed in (it may let more rows through), or none of floe's.
    Other,
}

/// The route for a relation with `policies`, in a transaction whose tenant context reads as
/// `context`, with admin mode `admin`.
pub fn decide(policies: Policies, context: Result<uuid::Uuid, ContextError>, admin: bool) -> Route {
    if policies == Policies::Other || admin {
        return Route::Leave;
    }
    match context {
        Ok(tenant) => Route::Pin(tenant),
        Err(e) => Route::Refuse(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unset() -> ContextError {
        ContextError::Unset {
            setting: "app.current_tenant_id".into(),
        }
    }

    #[test]
    fn pins_the_tenant_of_the_context() {
        let t = uuid::Uuid::from_u128(7);
        assert_eq!(decide(Policies::FloeTenant, Ok(t), false), Route::Pin(t));
        assert_eq!(
            decide(Policies::FloeTenant, Err(unset()), false),
            Route::Refuse(unset())
        );
        assert_eq!(decide(Policies::FloeTenant, Ok(t), true), Route::Leave);
        assert_eq!(
            decide(Policies::FloeTenant, Err(unset()), true),
            Route::Leave
        );
        assert_eq!(decide(Policies::Other, Ok(t), false), Route::Leave);
    }

    proptest! {
        /// Never a tenant other than the context's; nothing pinned without floe's policy.
        #[test]
        fn pins_only_the_context(bits in any::<u128>(), set in any::<bool>(), admin in any::<bool>(), floe in any::<bool>()) {
            let t = uuid::Uuid::from_u128(bits);
            let ctx = if set { Ok(t) } else { Err(unset()) };
            let policies = if floe { Policies::FloeTenant } else { Policies::Other };
            match decide(policies, ctx, admin) {
                Route::Pin(p) => prop_assert!(p == t && set && floe && !admin),
                Route::Refuse(_) => prop_assert!(!set && floe && !admin),
                Route::Leave => prop_assert!(!floe || admin),
            }
        }
    }
}
