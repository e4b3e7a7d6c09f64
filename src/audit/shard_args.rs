//! What floe's audit triggers on a Citus table carry (pure): the table's audit settings, as
//! trigger arguments. Citus copies a distributed table's triggers, arguments included, to
//! every shard in its own distributed transaction, so a worker learns how to audit a shard
//! from the trigger that fires there, with no registry of its own to keep in step (see
//! `distributed.rs`). A table on one node carries no arguments: its settings are in
//! `floe.audit_tables`.
//!
//! The arguments: `'citus'`, then the redacted columns and the classification flags, each a
//! JSON array of strings (column names may hold any character).

/// The first argument of a Citus table's audit triggers.
pub const MARK: &str = "citus";

/// The audit settings a Citus table's triggers carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardArgs {
    pub redact: Vec<String>,
    pub classification: Vec<String>,
}

/// What a trigger's arguments say.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// No arguments: a table audited on this node (settings in `floe.audit_tables`).
    Local,
    /// A Citus table's trigger: the settings it carries.
    Distributed(ShardArgs),
}

impl ShardArgs {
    /// The trigger arguments, in order (each to be quoted as a SQL literal).
    pub fn encode(&self) -> [String; 3] {
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        [
            MARK.to_string(),
            json(&self.redact),
            json(&self.classification),
        ]
    }
}

/// Reads a trigger's arguments; `Err` names what is wrong with them.
pub fn decode(args: &[String]) -> Result<Decoded, String> {
    match args {
        [] => Ok(Decoded::Local),
        [mark, redact, classification] if mark == MARK => {
            let list = |what: &str, text: &str| {
                serde_json::from_str::<Vec<String>>(text)
                    .map_err(|e| format!("its {what} argument is not a JSON array of strings: {e}"))
            };
            Ok(Decoded::Distributed(ShardArgs {
                redact: list("redact", redact)?,
                classification: list("classification", classification)?,
            }))
        }
        _ => Err(format!(
            "unexpected arguments ({} of them): floe's audit triggers carry none, or '{MARK}' and two JSON arrays",
            args.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn no_arguments_is_a_local_table() {
        assert_eq!(decode(&[]), Ok(Decoded::Local));
    }

    #[test]
    fn wrong_arguments_are_refused() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(decode(&s(&["citus"])).is_err());
        assert!(decode(&s(&["other", "[]", "[]"])).is_err());
        assert!(decode(&s(&["citus", "{email}", "[]"])).is_err());
        assert!(decode(&s(&["citus", "[]", "[1]"])).is_err());
        assert!(decode(&s(&["citus", "[]", "[]", "x"])).is_err());
    }

    proptest! {
        #[test]
        fn encoding_round_trips(redact in proptest::collection::vec(".*", 0..4),
                                classification in proptest::collection::vec("[a-z_]{1,8}", 0..3)) {
            let a = ShardArgs { redact, classification };
            let args = a.encode();
            prop_assert_eq!(decode(&args), Ok(Decoded::Distributed(a)));
        }
    }
}
