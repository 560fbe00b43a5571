//! The vocabulary every Sluice schema shares: value types, PHI/PCI classes, and the severity of
//! the findings each standard's validator reports.
//!
//! Each standard's crate (`specs/hl7v2`, `specs/canonical`, ...) describes its paths with these
//! types, so the compiler can type-check expressions and trace PHI from any input standard to any
//! output schema with one set of rules.
//!
//! Invariants:
//! - A class name (`PhiClass::as_str`) is stable: specs, plans and audit records refer to it.
//! - Nothing here holds or formats a value; only names of types and classes.

use std::fmt;

/// The type of a value at a path, or of an expression.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueType {
    /// Free text.
    String,
    /// Whole number (HL7 `SI`).
    Integer,
    /// Decimal number kept as written (HL7 `NM`).
    Decimal,
    Boolean,
    /// Calendar date, rendered `YYYY-MM-DD`.
    Date,
    /// Date and time, rendered RFC 3339 when the offset is known.
    DateTime,
    /// A coded value from a value set or table (HL7 `ID`, `IS`).
    Code,
    /// An identifier (HL7 `CX` component 1, `EI`).
    Identifier,
    /// A composite value with named members.
    Struct,
    /// A list of values of one type.
    List(Box<ValueType>),
    /// The type of the literal `null`: fits any optional field.
    Null,
    /// Unknown type (an unresolved path): suppresses follow-on type errors.
    Any,
}

impl ValueType {
    /// Name used in diagnostics, plans and the spec reference.
    pub fn name(&self) -> String {
        match self {
            ValueType::String => "string".into(),
            ValueType::Integer => "integer".into(),
            ValueType::Decimal => "decimal".into(),
            ValueType::Boolean => "boolean".into(),
            ValueType::Date => "date".into(),
            ValueType::DateTime => "datetime".into(),
            ValueType::Code => "code".into(),
            ValueType::Identifier => "identifier".into(),
            ValueType::Struct => "struct".into(),
            ValueType::List(inner) => format!("list<{}>", inner.name()),
            ValueType::Null => "null".into(),
            ValueType::Any => "any".into(),
        }
    }

    /// Parses a type name as written in specs (`string`, `list<date>`).
    pub fn parse(name: &str) -> Option<ValueType> {
        let name = name.trim();
        if let Some(inner) = name.strip_prefix("list<").and_then(|s| s.strip_suffix('>')) {
            return ValueType::parse(inner).map(|t| ValueType::List(Box::new(t)));
        }
        Some(match name {
            "string" => ValueType::String,
            "integer" => ValueType::Integer,
            "decimal" => ValueType::Decimal,
            "boolean" => ValueType::Boolean,
            "date" => ValueType::Date,
            "datetime" => ValueType::DateTime,
            "code" => ValueType::Code,
            "identifier" => ValueType::Identifier,
            "struct" => ValueType::Struct,
            "null" => ValueType::Null,
            "any" => ValueType::Any,
            _ => return None,
        })
    }

    /// Whether a value of type `self` may be stored where `target` is expected.
    ///
    /// Text-like types (`code`, `identifier`) widen to `string`; `integer` widens to `decimal`;
    /// `null` fits anywhere (requiredness is checked separately); `any` never adds an error.
    pub fn fits(&self, target: &ValueType) -> bool {
        use ValueType::*;
        match (self, target) {
            (Any, _) | (_, Any) | (Null, _) => true,
            (a, b) if a == b => true,
            (Code | Identifier, String) => true,
            (String, Code | Identifier) => true,
            (Integer, Decimal) => true,
            (Date, DateTime) => false,
            (List(a), List(b)) => a.fits(b),
            _ => false,
        }
    }

    pub const SCALAR_NAMES: [&'static str; 10] =
        ["string", "integer", "decimal", "boolean", "date", "datetime", "code", "identifier", "struct", "any"];
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

macro_rules! phi_classes {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// A protected-data class: the 18 HIPAA Safe Harbor identifiers plus PCI and secret classes.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum PhiClass { $(#[doc = $doc] $variant,)* }

        impl PhiClass {
            pub const ALL: &'static [PhiClass] = &[$(PhiClass::$variant,)*];

            /// Stable name used in specs, plans and audit records.
            pub fn as_str(self) -> &'static str {
                match self { $(PhiClass::$variant => $name,)* }
            }

            pub fn parse(name: &str) -> Option<PhiClass> {
                match name { $($name => Some(PhiClass::$variant),)* _ => None }
            }

            pub fn description(self) -> &'static str {
                match self { $(PhiClass::$variant => $doc,)* }
            }
        }
    };
}

phi_classes! {
    Name => "name", "Names of a person (Safe Harbor A).";
    Address => "address", "Geographic subdivisions smaller than a state: street, city, ZIP (B).";
    Dob => "dob", "Date of birth (C).";
    Date => "date", "Other dates tied to an individual: admission, discharge, death (C).";
    Phone => "phone", "Telephone numbers (D).";
    Fax => "fax", "Fax numbers (E).";
    Email => "email", "Electronic mail addresses (F).";
    Ssn => "ssn", "Social Security numbers (G).";
    Mrn => "mrn", "Medical record numbers and other patient identifiers (H).";
    HealthPlanId => "health_plan_id", "Health plan beneficiary numbers (I).";
    AccountNumber => "account_number", "Account numbers, including bank accounts (J).";
    LicenseNumber => "license_number", "Certificate and license numbers (K).";
    VehicleId => "vehicle_id", "Vehicle identifiers and serial numbers (L).";
    DeviceId => "device_id", "Device identifiers and serial numbers (M).";
    Url => "url", "Web addresses (N).";
    IpAddress => "ip_address", "IP addresses (O).";
    Biometric => "biometric", "Biometric identifiers (P).";
    Photo => "photo", "Full-face photographs and comparable images (Q).";
    OtherId => "other_id", "Any other unique identifying number, characteristic or code (R).";
    CardNumber => "card_number", "Payment card numbers (PCI DSS).";
    RoutingNumber => "routing_number", "Bank routing numbers.";
    ApiToken => "api_token", "API keys, access and refresh tokens.";
}

impl fmt::Display for PhiClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// Types and classes serialize as their stable names, so plans read `"dob"` and `"list<string>"`.
macro_rules! serde_by_name {
    ($ty:ty, $to:expr, $from:expr, $what:literal) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&$to(self))
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = String::deserialize(d)?;
                $from(&name).ok_or_else(|| serde::de::Error::custom(format!(concat!("unknown ", $what, " `{}`"), name)))
            }
        }
    };
}
serde_by_name!(ValueType, ValueType::name, ValueType::parse, "type");
serde_by_name!(PhiClass, |c: &PhiClass| c.as_str().to_string(), PhiClass::parse, "PHI class");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_round_trip() {
        for class in PhiClass::ALL {
            assert_eq!(PhiClass::parse(class.as_str()), Some(*class));
        }
        assert_eq!(PhiClass::parse("nope"), None);
    }

    #[test]
    fn type_names_round_trip() {
        for t in [ValueType::Date, ValueType::List(Box::new(ValueType::String))] {
            assert_eq!(ValueType::parse(&t.name()), Some(t));
        }
    }

    #[test]
    fn widening_rules() {
        assert!(ValueType::Code.fits(&ValueType::String));
        assert!(ValueType::Integer.fits(&ValueType::Decimal));
        assert!(!ValueType::Decimal.fits(&ValueType::Integer));
        assert!(!ValueType::Date.fits(&ValueType::String));
        assert!(ValueType::Null.fits(&ValueType::Date));
    }
}

/// How bad a finding of a standard's validator is (HL7 v2, X12, FHIR); ordered from `Info` to
/// `Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    /// Parses `error`, `warning` or `info`.
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "error" => Some(Severity::Error),
            "warning" => Some(Severity::Warning),
            "info" => Some(Severity::Info),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
