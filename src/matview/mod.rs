//! Materialized-view refresh (issue #8, in progress): on change (debounced by
//! `min_interval`), on schedule, within `max_staleness`, in dependency order.
//!
//! Landed so far: the pure decision and ordering logic (`plan.rs`), tested with unit tests,
//! proptest (dependency order over random DAGs) and a simulation of bursty writes. The SQL
//! surface (registry, change triggers with shared-memory dirtiness, the refresh job, status,
//! history, health) comes with the rest of the issue.

pub mod plan;
