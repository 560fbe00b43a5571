//! Resolving HL7 v2 paths against the schema of one version plus a profile's Z-segments.
//!
//! Gives each path its value type, its PHI class and whether it yields several values, or
//! reports exactly what is wrong (unknown segment, field beyond the segment, component beyond the
//! datatype) with did-you-mean help.

use sluice_hl7v2::path::{Index, Path};
use sluice_hl7v2::schema::{self, Schema};
use sluice_spec_core::{PhiClass, ValueType};

use crate::codes;
use crate::diagnostics::{Diagnostic, did_you_mean};
use crate::plan::ZSegmentPlan;
use crate::source::Span;

/// What paths are checked against: one HL7 version and the Z-segments a profile declares.
#[derive(Clone, Copy)]
pub struct Hl7Env<'a> {
    pub schema: &'static Schema,
    pub z_segments: &'a [ZSegmentPlan],
}

/// What a path addresses.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub path: Path,
    pub value_type: ValueType,
    pub phi: Option<PhiClass>,
    /// The path has `[*]` and yields a list.
    pub multi: bool,
    /// Datatype of the addressed field (for iteration variables).
    pub field_datatype: String,
    pub field_repeating: bool,
}

/// The value type of a datatype used as a value: primitives map directly; a composite used
/// without a component means its first component (the HL7 convention: `PID-5` is `PID-5.1`).
/// The datatype of fields whose datatype another field names (OBX-5 by OBX-2): any component
/// may be read, as text.
const VARIES: &str = "varies";

pub fn leaf_type(schema: &Schema, datatype: &str) -> ValueType {
    let mut dt = datatype.to_string();
    for _ in 0..4 {
        let t = schema::value_type(&dt);
        if t != ValueType::Struct {
            return t;
        }
        match schema.datatype(&dt).and_then(|d| d.components.first()) {
            Some(first) => dt = first.datatype.clone(),
            None => return ValueType::String,
        }
    }
    ValueType::String
}

/// Whether component `component` of a classed field of `datatype` carries the field's PHI
/// class. Codes that describe an identifier (its type, assigning authority, check digit scheme)
/// do not identify anyone; everything not listed here conservatively does.
pub fn component_carries_class(datatype: &str, component: usize) -> bool {
    match datatype {
        // ID number; the rest describe it (check digit, scheme, authority, type code, facility...).
        "CX" | "EI" | "CK" | "CN" | "XON" => component == 1 || (datatype == "XON" && component == 10),
        // Address type (7), address representation code (8) and validity dates are not places.
        "XAD" | "SAD" => !matches!(component, 7 | 8 | 12 | 13 | 14),
        // Name type and representation codes, validity dates, professional suffix codes.
        "XPN" => !matches!(component, 7 | 8 | 10 | 11 | 12 | 13),
        // Use code (2) and equipment type (3) of a phone number.
        "XTN" => !matches!(component, 2 | 3),
        _ => true,
    }
}

struct FieldInfo {
    datatype: String,
    repeating: bool,
    phi: Option<PhiClass>,
}

impl Hl7Env<'_> {
    pub fn has_segment(&self, id: &str) -> bool {
        self.schema.segment(id).is_some() || self.z_segments.iter().any(|z| z.id == id)
    }

    fn segment_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.schema.segment_ids().collect();
        names.extend(self.z_segments.iter().map(|z| z.id.as_str()));
        names
    }

    fn field(&self, segment: &str, seq: usize) -> Result<FieldInfo, (usize, Vec<String>)> {
        if let Some(z) = self.z_segments.iter().find(|z| z.id == segment) {
            return match z.fields.iter().find(|f| f.seq == seq) {
                Some(f) => Ok(FieldInfo { datatype: f.datatype.clone(), repeating: false, phi: f.phi }),
                None => {
                    Err((z.fields.len(), z.fields.iter().map(|f| format!("{}-{} {}", z.id, f.seq, f.name)).collect()))
                }
            };
        }
        let Some(seg) = self.schema.segment(segment) else {
            return Err((0, vec![]));
        };
        match seg.field(seq) {
            Some(f) => Ok(FieldInfo { datatype: f.datatype.clone(), repeating: f.repeating, phi: f.phi }),
            None => Err((seg.fields.len(), vec![])),
        }
    }

    /// Resolves `text` (written at `span`). Diagnostics are returned, not pushed, so callers
    /// decide how to attach them.
    pub fn resolve(&self, text: &str, span: Span) -> Result<Resolved, Diagnostic> {
        let path = Path::parse(text).map_err(|e| {
            Diagnostic::error(codes::INVALID_PATH, format!("`{text}` is not a valid HL7 v2 path: {}", e.message))
                .label(span.sub(e.offset, e.len.max(1)), "here")
                .help("write paths like `PID-5`, `PID-5.1`, `PID-3[*].1` or `OBX[*]-5`")
        })?;
        let version = self.schema.version();
        let seg_span = span.sub(0, path.segment.len());
        if !self.has_segment(&path.segment) {
            let d =
                Diagnostic::error(codes::UNKNOWN_SEGMENT, format!("HL7 v{version} has no segment `{}`", path.segment))
                    .label(seg_span, "unknown segment");
            let names = self.segment_names();
            let d = match did_you_mean(&path.segment, names.iter().copied()) {
                Some(best) => d.help(format!("did you mean `{best}`?")),
                None if path.segment.starts_with('Z') => {
                    d.help("declare Z-segments in the parser profile under `z_segments`")
                }
                None => d,
            };
            return Err(d);
        }
        let field_text = format!("{}", path.field);
        let field_at = text.find('-').map_or(0, |i| i + 1);
        let field_span = span.sub(field_at, field_text.len());
        let info = self.field(&path.segment, path.field).map_err(|(count, _)| {
            Diagnostic::error(
                codes::UNKNOWN_FIELD,
                format!("segment {} has no field {} in HL7 v{version}", path.segment, path.field),
            )
            .label(field_span, format!("{} defines fields 1 to {count}", path.segment))
            .help(format!("{} has {count} fields in v{version}; check the field number", path.segment))
        })?;
        let phi = info.phi.filter(|_| path.component.is_none_or(|c| component_carries_class(&info.datatype, c)));
        let mut value_type = leaf_type(self.schema, &info.datatype);
        if info.datatype == VARIES {
            // OBX-5 and the like: the datatype is named by another field (OBX-2), so any
            // component may be there; its values are read as text.
            value_type = ValueType::String;
        } else if let Some(c) = path.component {
            let dt = self.schema.datatype(&info.datatype);
            let comp = dt.and_then(|d| d.component(c));
            let Some(comp) = comp else {
                let n = dt.map_or(0, |d| d.components.len());
                let comp_span = span.sub(text.rfind('.').map_or(0, |i| i + 1), 1);
                return Err(Diagnostic::error(
                    codes::UNKNOWN_COMPONENT,
                    format!("{}-{} ({}) has no component {c}", path.segment, path.field, info.datatype),
                )
                .label(
                    comp_span,
                    if n == 0 {
                        format!("{} has no components", info.datatype)
                    } else {
                        format!("{} has components 1 to {n}", info.datatype)
                    },
                )
                .help(if n == 0 {
                    format!("address the field itself: `{}-{}`", path.segment, path.field)
                } else {
                    format!("use a component between 1 and {n}")
                }));
            };
            value_type = leaf_type(self.schema, &comp.datatype);
            if let Some(s) = path.subcomponent {
                let sub_dt = self.schema.datatype(&comp.datatype);
                match sub_dt.and_then(|d| d.component(s)) {
                    Some(sub) => value_type = leaf_type(self.schema, &sub.datatype),
                    None => {
                        let n = sub_dt.map_or(0, |d| d.components.len());
                        return Err(Diagnostic::error(
                            codes::UNKNOWN_COMPONENT,
                            format!(
                                "component {c} of {}-{} ({}) has no subcomponent {s}",
                                path.segment, path.field, comp.datatype
                            ),
                        )
                        .label(
                            span.sub(text.rfind('.').map_or(0, |i| i + 1), 1),
                            format!("{} has {n} subcomponents", comp.datatype),
                        )
                        .help(format!("address the component itself: `{}-{}.{c}`", path.segment, path.field)));
                    }
                }
            }
        }
        let multi = matches!(path.occurrence, Index::All) || matches!(path.repetition, Index::All);
        Ok(Resolved { multi, value_type, phi, field_datatype: info.datatype, field_repeating: info.repeating, path })
    }

    /// Type of component `component`(.`sub`) of a value of `datatype` (an iteration variable).
    pub fn component_type(
        &self,
        datatype: &str,
        component: Option<usize>,
        sub: Option<usize>,
    ) -> Result<ValueType, String> {
        let Some(c) = component else {
            return Ok(leaf_type(self.schema, datatype));
        };
        if datatype == VARIES {
            return Ok(ValueType::String);
        }
        let dt = self.schema.datatype(datatype);
        let comp = dt.and_then(|d| d.component(c)).ok_or_else(|| {
            let n = dt.map_or(0, |d| d.components.len());
            format!("{datatype} has components 1 to {n}, not {c}")
        })?;
        let Some(s) = sub else {
            return Ok(leaf_type(self.schema, &comp.datatype));
        };
        let sub_dt = self.schema.datatype(&comp.datatype);
        sub_dt
            .and_then(|d| d.component(s))
            .map(|sc| leaf_type(self.schema, &sc.datatype))
            .ok_or_else(|| format!("component {c} ({}) of {datatype} has no subcomponent {s}", comp.datatype))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_varies_field_takes_any_component_as_text_others_are_checked() {
        let env = Hl7Env { schema: schema::schema(sluice_hl7v2::schema::Version::V2_5_1), z_segments: &[] };
        let span = Span::new(crate::source::FileId(0), 0, 10);
        for path in ["OBX-5.1", "OBX-5.9", "OBX-5.3.2"] {
            let r = env.resolve(path, span).unwrap_or_else(|d| panic!("{path}: {}", d.message));
            assert_eq!(r.value_type, ValueType::String, "{path}");
        }
        assert_eq!(env.component_type("varies", Some(4), Some(1)), Ok(ValueType::String));
        // OBX-3 is a CE/CWE: its components are known, and a tenth is not one.
        assert!(env.resolve("OBX-3.2", span).is_ok());
        assert_eq!(env.resolve("OBX-3.30", span).unwrap_err().code, codes::UNKNOWN_COMPONENT);
    }
}
