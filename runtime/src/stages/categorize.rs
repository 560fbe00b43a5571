//! Categorization: rules by merchant, merchant category code (MCC), description pattern and
//! amount range give a record a category and tags.
//!
//! Invariants:
//! - The first rule whose conditions all hold gives the category; every rule that holds adds
//!   its tags (deduplicated, in rule order). A rule with no condition holds for every record.
//! - Pure: the same record and rules give the same answer (patterns were checked by the
//!   compiler; one that still fails to build holds for nothing rather than panicking).

use regex::Regex;
use sluice_compiler::spec::reconcile::CategoryRule;

/// What categorization reads of a record.
pub struct Facts<'a> {
    pub merchant: Option<&'a str>,
    pub mcc: Option<&'a str>,
    pub description: Option<&'a str>,
    /// Signed, in minor units (normalized sign).
    pub amount: i64,
    /// Decimal places of the record's currency, to compare with ranges in major units.
    pub digits: u32,
}

pub struct Categorizer {
    rules: Vec<(CategoryRule, Option<Regex>)>,
}

/// A category and its tags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Category {
    pub category: Option<String>,
    pub tags: Vec<String>,
}

impl Categorizer {
    pub fn new(rules: &[CategoryRule]) -> Categorizer {
        Categorizer {
            rules: rules
                .iter()
                .map(|r| (r.clone(), r.description.as_deref().and_then(|p| Regex::new(p).ok())))
                .collect(),
        }
    }

    pub fn categorize(&self, f: &Facts<'_>) -> Category {
        let mut out = Category::default();
        for (rule, pattern) in &self.rules {
            if !holds(rule, pattern.as_ref(), f) {
                continue;
            }
            if out.category.is_none() {
                out.category = Some(rule.category.clone());
            }
            for t in &rule.tags {
                if !out.tags.contains(t) {
                    out.tags.push(t.clone());
                }
            }
        }
        out
    }
}

fn holds(rule: &CategoryRule, pattern: Option<&Regex>, f: &Facts<'_>) -> bool {
    if !rule.merchants.is_empty()
        && !f.merchant.is_some_and(|m| rule.merchants.iter().any(|r| r.trim().eq_ignore_ascii_case(m.trim())))
    {
        return false;
    }
    if !rule.mccs.is_empty() && !f.mcc.is_some_and(|m| rule.mccs.iter().any(|r| r.trim() == m.trim())) {
        return false;
    }
    if rule.description.is_some() && !matches!((pattern, f.description), (Some(p), Some(d)) if p.is_match(d)) {
        return false;
    }
    // Ranges are written with two places; scale the record's amount to match.
    let scaled = |v: i64| -> i128 {
        let v = i128::from(v);
        match f.digits {
            0 => v * 100,
            1 => v * 10,
            2 => v,
            d => v * 100 / 10_i128.pow(d),
        }
    };
    let amount = scaled(f.amount);
    if rule.amount_min.is_some_and(|lo| amount < i128::from(lo)) {
        return false;
    }
    if rule.amount_max.is_some_and(|hi| amount > i128::from(hi)) {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(category: &str) -> CategoryRule {
        CategoryRule {
            category: category.into(),
            tags: vec![],
            merchants: vec![],
            mccs: vec![],
            description: None,
            amount_min: None,
            amount_max: None,
        }
    }

    #[test]
    fn first_rule_gives_the_category_and_every_rule_its_tags() {
        let mut software = rule("Software");
        software.description = Some("(?i)github".into());
        software.tags = vec!["subscription".into()];
        let mut small = rule("Small");
        small.amount_min = Some(-5000);
        small.amount_max = Some(0);
        small.tags = vec!["small".into(), "subscription".into()];
        let mut coffee = rule("Food and Drink");
        coffee.mccs = vec!["5814".into()];
        let c = Categorizer::new(&[software, small, coffee]);
        let f = |d: &'static str, amount, mcc| Facts { merchant: None, mcc, description: Some(d), amount, digits: 2 };
        assert_eq!(
            c.categorize(&f("GITHUB INC", -700, None)),
            Category { category: Some("Software".into()), tags: vec!["subscription".into(), "small".into()] }
        );
        assert_eq!(c.categorize(&f("Coffee", -450, Some("5814"))).category.as_deref(), Some("Small"));
        assert_eq!(c.categorize(&f("Coffee", -9000, Some("5814"))).category.as_deref(), Some("Food and Drink"));
        assert_eq!(c.categorize(&f("Rent", -900_000, None)), Category::default());
    }

    #[test]
    fn ranges_compare_in_major_units_whatever_the_currency() {
        let mut r = rule("Big");
        r.amount_min = Some(100_000); // 1000.00
        let c = Categorizer::new(&[r]);
        let yen = Facts { merchant: None, mcc: None, description: None, amount: 1000, digits: 0 };
        assert_eq!(c.categorize(&yen).category.as_deref(), Some("Big"));
        let cents = Facts { merchant: None, mcc: None, description: None, amount: 1000, digits: 2 };
        assert_eq!(c.categorize(&cents).category, None);
    }
}
