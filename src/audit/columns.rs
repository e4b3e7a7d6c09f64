//! The log's columns as the direct writer (`append.rs`) fills them, and the match of a month's
//! attributes to them (pure logic). A month made by floe has them in the parent's order; one
//! attached by hand may order them differently or carry dropped columns. A month with a
//! column floe does not fill, or without one it does, is written through SQL instead
//! (`write.rs`), where its defaults and errors apply.

/// One column of `floe.audit_log`, in the parent's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Col {
    Id,
    LoggedAt,
    Xid,
    Relid,
    SchemaName,
    TableName,
    Op,
    Tenant,
    Actor,
    AppActor,
    ClientAddr,
    Pk,
    OldValues,
    NewValues,
    Redacted,
    Classification,
}

/// Every column, in the parent's order.
pub const ALL: [Col; 16] = [
    Col::Id,
    Col::LoggedAt,
    Col::Xid,
    Col::Relid,
    Col::SchemaName,
    Col::TableName,
    Col::Op,
    Col::Tenant,
    Col::Actor,
    Col::AppActor,
    Col::ClientAddr,
    Col::Pk,
    Col::OldValues,
    Col::NewValues,
    Col::Redacted,
    Col::Classification,
];

/// The column list of the SQL path's INSERTs (`write.rs`): every column, in this order.
pub fn column_list() -> String {
    ALL.map(Col::name).join(", ")
}

/// The type a column must have for the direct writer, by name (`pg_type.typname`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Int8,
    Timestamptz,
    Xid8,
    Oid,
    Name,
    Text,
    Uuid,
    Inet,
    Jsonb,
    TextArray,
}

impl Col {
    pub fn name(self) -> &'static str {
        match self {
            Col::Id => "id",
            Col::LoggedAt => "logged_at",
            Col::Xid => "xid",
            Col::Relid => "relid",
            Col::SchemaName => "schema_name",
            Col::TableName => "table_name",
            Col::Op => "op",
            Col::Tenant => "tenant",
            Col::Actor => "actor",
            Col::AppActor => "app_actor",
            Col::ClientAddr => "client_addr",
            Col::Pk => "pk",
            Col::OldValues => "old_values",
            Col::NewValues => "new_values",
            Col::Redacted => "redacted",
            Col::Classification => "classification",
        }
    }

    pub fn typ(self) -> Type {
        match self {
            Col::Id => Type::Int8,
            Col::LoggedAt => Type::Timestamptz,
            Col::Xid => Type::Xid8,
            Col::Relid => Type::Oid,
            Col::SchemaName | Col::TableName | Col::Actor => Type::Name,
            Col::Op | Col::AppActor => Type::Text,
            Col::Tenant => Type::Uuid,
            Col::ClientAddr => Type::Inet,
            Col::Pk | Col::OldValues | Col::NewValues => Type::Jsonb,
            Col::Redacted | Col::Classification => Type::TextArray,
        }
    }
}

/// One attribute of a month, as the catalog describes it.
#[derive(Clone, Copy, Debug)]
pub struct Attr<'a> {
    pub name: &'a str,
    pub typ: Option<Type>,
    pub dropped: bool,
}

/// Which column each attribute of a month holds (`None` for a dropped attribute), when every
/// live attribute is one of the log's columns with its type and every column is there once;
/// `None` otherwise (the month is written through SQL).
pub fn layout(attrs: &[Attr<'_>]) -> Option<Vec<Option<Col>>> {
    let mut seen = [false; ALL.len()];
    let mut out = Vec::with_capacity(attrs.len());
    for (n, a) in attrs.iter().enumerate() {
        if a.dropped {
            out.push(None);
            continue;
        }
        // A month made by floe has the parent's order: try the column at this place first.
        let i = match ALL.get(n) {
            Some(c) if c.name() == a.name => n,
            _ => ALL.iter().position(|c| c.name() == a.name)?,
        };
        if seen[i] || a.typ != Some(ALL[i].typ()) {
            return None;
        }
        seen[i] = true;
        out.push(Some(ALL[i]));
    }
    seen.iter().all(|&s| s).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn attrs(cols: &[Col]) -> Vec<Attr<'static>> {
        cols.iter()
            .map(|c| Attr {
                name: c.name(),
                typ: Some(c.typ()),
                dropped: false,
            })
            .collect()
    }

    #[test]
    fn the_parents_order_maps_one_to_one() {
        let l = layout(&attrs(&ALL)).unwrap();
        assert_eq!(l, ALL.iter().map(|&c| Some(c)).collect::<Vec<_>>());
    }

    #[test]
    fn dropped_attributes_are_skipped() {
        let mut a = attrs(&ALL);
        a.insert(
            3,
            Attr {
                name: "........pg.dropped.4........",
                typ: None,
                dropped: true,
            },
        );
        let l = layout(&a).unwrap();
        assert_eq!(l[3], None);
        assert_eq!(l[4], Some(Col::Relid));
    }

    #[test]
    fn an_unknown_missing_repeated_or_retyped_column_is_refused() {
        let mut extra = attrs(&ALL);
        extra.push(Attr {
            name: "note",
            typ: Some(Type::Text),
            dropped: false,
        });
        assert!(layout(&extra).is_none(), "a column floe does not fill");
        assert!(layout(&attrs(&ALL[1..])).is_none(), "a column missing");
        let mut twice = attrs(&ALL);
        twice[1] = twice[0];
        assert!(layout(&twice).is_none(), "a column twice");
        let mut retyped = attrs(&ALL);
        retyped[6].typ = Some(Type::Name);
        assert!(layout(&retyped).is_none(), "op as name, not text");
        let mut unknown_type = attrs(&ALL);
        unknown_type[0].typ = None;
        assert!(layout(&unknown_type).is_none(), "a type floe does not know");
    }

    proptest! {
        /// Any order of the columns maps each attribute to the column of its name.
        #[test]
        fn any_order_maps_by_name(perm in Just(ALL.to_vec()).prop_shuffle()) {
            let l = layout(&attrs(&perm)).unwrap();
            for (a, c) in perm.iter().zip(&l) {
                prop_assert_eq!(Some(*a), *c);
            }
        }
    }
}
