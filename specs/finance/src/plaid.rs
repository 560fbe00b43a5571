//! The Plaid objects a `plaid` source reads, as paths with a type and a PII class: `account`
//! (an Item's accounts with their balances, `/accounts/get`) and `transaction` (the added and
//! modified transactions of `/transactions/sync`).
//!
//! The table (`data/plaid-paths.tsv`) is derived from Plaid's published OpenAPI spec
//! (`2020-09-14.yml` of github.com/plaid/plaid-openapi; its header names the schemas each
//! object comes from). It is embedded at build time and parsed once.
//!
//! Invariants (the path syntax is [`crate::paths`]'):
//! - Amounts and balances are decimals in major units ([`Kind::Decimal`]) with Plaid's sign:
//!   a positive transaction `amount` is money out of the account. Nothing is converted here.
//! - Paths that can hold a person's name (`account_owner`, the bank's description `name`, the
//!   `payment_meta` parties) are classed `name`, so the PHI-flow proof follows them.

use std::sync::OnceLock;

use crate::paths::Table;
pub use crate::paths::{ArrayError, Checked, Field, Kind, PathError};

/// The objects of the table, as `plaid/<object>` schemas name them.
pub const OBJECTS: &[&str] = &["account", "transaction"];

/// The tables a `plaid` source reads and the object each holds.
pub const TABLES: &[(&str, &str)] = &[("accounts", "account"), ("transactions", "transaction")];

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| Table::parse(include_str!("../data/plaid-paths.tsv"), "plaid-paths.tsv"))
}

/// The fields of `object` (`transaction`), in table order; empty for an unknown object.
pub fn fields(object: &str) -> impl Iterator<Item = &'static Field> + use<'_> {
    table().fields(object)
}

/// The object named `name`, as the table spells it.
pub fn object(name: &str) -> Option<&'static str> {
    OBJECTS.iter().copied().find(|o| *o == name)
}

/// The object a table (`transactions`) holds.
pub fn table_object(table: &str) -> Option<&'static str> {
    TABLES.iter().find(|(t, _)| *t == table).map(|(_, o)| *o)
}

/// The array `text` names in `object` (`each:`), in the table's form ([`crate::paths::Table::array`]).
pub fn array(object: &str, text: &str) -> Result<String, ArrayError> {
    table().array(object, text)
}

/// Checks `text` against the paths of `object`.
pub fn check(object: &str, text: &str) -> Result<Checked, PathError> {
    table().check(object, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_spec_core::PhiClass;

    #[test]
    fn the_table_covers_both_objects_with_types_and_classes() {
        for (t, object) in TABLES {
            assert_eq!(table_object(t), Some(*object));
            assert!(fields(object).count() > 10, "{object}");
        }
        assert_eq!(check("transaction", "amount").unwrap().kind, Kind::Decimal);
        assert_eq!(check("transaction", "date").unwrap().kind, Kind::Date);
        assert_eq!(check("transaction", "iso_currency_code").unwrap().kind, Kind::Currency);
        assert_eq!(check("transaction", "account_owner").unwrap().class, Some(PhiClass::Name));
        assert_eq!(check("transaction", "location.address").unwrap().class, Some(PhiClass::Address));
        assert!(check("transaction", "category[*]").unwrap().multi);
        assert_eq!(array("transaction", "category[*]").unwrap(), "category[*]");
        assert_eq!(check("account", "balances.current").unwrap().kind, Kind::Decimal);
        assert_eq!(check("account", "mask").unwrap().class, Some(PhiClass::AccountNumber));
        let e = check("transaction", "merchant").unwrap_err();
        assert!(e.candidates.contains(&"merchant_name".to_string()), "{:?}", e.candidates);
    }
}
