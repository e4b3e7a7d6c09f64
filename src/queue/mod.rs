//! The job queue (issue #7, in progress): five priority tiers with aging that needs no
//! UPDATE, a max-wait guarantee, per-tenant fairness.
//!
//! Landed so far: the pure ordering logic (`priority.rs`), tested with proptest and a
//! simulation. The SQL surface (queues, enqueue/dequeue, retries, dead letters, archive,
//! health) comes with the rest of the issue.

pub mod priority;
