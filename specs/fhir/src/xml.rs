//! FHIR XML into the same [`Node`] tree FHIR JSON reads into, following the R4 schema: each
//! element becomes the JSON member of the same name, repeating elements become arrays,
//! primitives take their `value` attribute (numbers and booleans by their type), a
//! primitive's `id` attribute and `extension` children go into `_name` (arrays aligned with
//! `null`s for repeating ones), `id` attributes and `Extension.url` become members, resource
//! containers (`<contained><Patient>`) become resources with `resourceType`, and the narrative
//! `<div>` becomes its XHTML text exactly as written in the source.
//!
//! Invariants:
//! - No input panics or overflows the stack: the XML parser (roxmltree) builds its tree without
//!   recursion and refuses DTDs (so no entity expansion attacks); the conversion counts depth
//!   and refuses input past [`Limits::max_depth`] before recursing; size is checked first.
//! - Content the schema does not know is converted generically (a `value` attribute becomes a
//!   string, anything else an object) so the validator can report it; nothing is dropped
//!   silently except XML comments, whitespace and attributes in other namespaces
//!   (`xsi:schemaLocation`), which FHIR gives no meaning.
//! - Errors carry a registered code, a byte offset and a message that quotes no content.

use roxmltree::{Document, Node as XNode, ParsingOptions};

use crate::codes;
use crate::json::{CodecError, Limits};
use crate::model::{self, JsonKind, ValueKind};
use crate::schema::{Schema, schema};
use crate::tree::{Name, Node};

const FHIR_NS: &str = "http://hl7.org/fhir";

/// Reads one FHIR XML resource into a tree.
pub fn parse(input: &[u8]) -> Result<Node, CodecError> {
    parse_with(input, Limits::default())
}

/// Reads one FHIR XML resource into a tree with these limits.
pub fn parse_with(input: &[u8], limits: Limits) -> Result<Node, CodecError> {
    limits.check_size(input.len())?;
    let text = std::str::from_utf8(input).map_err(|e| CodecError {
        code: codes::NOT_UTF8,
        offset: e.valid_up_to(),
        message: "the text is not valid UTF-8".into(),
    })?;
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let text = &text[bom..];
    let options = ParsingOptions { allow_dtd: false, ..ParsingOptions::default() };
    let doc = Document::parse_with_options(text, options).map_err(|e| {
        let pos = e.pos();
        CodecError {
            code: codes::XML_SYNTAX,
            offset: bom + byte_offset(text, pos.row, pos.col),
            message: xml_error(&e),
        }
    })?;
    let root = doc.root_element();
    if root.tag_name().namespace() != Some(FHIR_NS) {
        return Err(CodecError {
            code: codes::NOT_A_RESOURCE,
            offset: bom + root.range().start,
            message: format!("the root element is not in the FHIR namespace `{FHIR_NS}`"),
        });
    }
    let mut c = Converter { schema: schema(), bom, max_depth: limits.max_depth };
    c.resource(root, 1)
}

/// A message for an XML error without the document's text (roxmltree's messages name tags and
/// entities, which are markup, but a text position is all a user needs).
fn xml_error(e: &roxmltree::Error) -> String {
    let kind = match e {
        roxmltree::Error::DtdDetected => "a DTD, which FHIR forbids",
        roxmltree::Error::UnexpectedCloseTag(..) => "a closing tag that does not match its opening tag",
        roxmltree::Error::UnexpectedEndOfStream => "the end of the input inside an element",
        roxmltree::Error::UnknownEntityReference(..) => "an unknown entity reference",
        roxmltree::Error::UnknownNamespace(..) => "an undeclared namespace prefix",
        roxmltree::Error::DuplicatedAttribute(..) => "an attribute given twice",
        roxmltree::Error::NoRootNode => "no root element",
        _ => "malformed XML",
    };
    format!("not well-formed XML: {kind} (line {}, column {})", e.pos().row, e.pos().col)
}

/// The byte offset of a 1-based row and column (in chars).
fn byte_offset(text: &str, row: u32, col: u32) -> usize {
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if i + 1 == row as usize {
            return offset + line.char_indices().nth(col.saturating_sub(1) as usize).map_or(line.len(), |(b, _)| b);
        }
        offset += line.len();
    }
    text.len()
}

struct Converter<'s> {
    schema: &'s Schema,
    bom: usize,
    max_depth: usize,
}

/// One converted child: its value and, for a primitive, its `_name` object (id, extensions).
struct Item {
    value: Option<Node>,
    extra: Option<Node>,
}

impl Converter<'_> {
    fn err(&self, code: &'static str, at: XNode<'_, '_>, message: String) -> CodecError {
        CodecError { code, offset: self.bom + at.range().start, message }
    }

    fn check_depth(&self, at: XNode<'_, '_>, depth: usize) -> Result<(), CodecError> {
        if depth > self.max_depth {
            return Err(self.err(
                codes::TOO_DEEP,
                at,
                format!("elements are nested more than {} deep", self.max_depth),
            ));
        }
        Ok(())
    }

    /// A resource element (`<Patient>`): `resourceType`, then its elements.
    fn resource(&mut self, e: XNode<'_, '_>, depth: usize) -> Result<Node, CodecError> {
        self.check_depth(e, depth)?;
        let name = e.tag_name().name();
        let mut members: Vec<(Name, Node)> = vec![("resourceType".into(), Node::String(name.to_string()))];
        if let Some(a) = e.attributes().find(|a| a.namespace().is_none()) {
            return Err(self.err(
                codes::XML_SHAPE,
                e,
                format!("a resource element takes no attributes; `{}` found", a.name()),
            ));
        }
        // An unknown type has no children in the schema: everything converts generically.
        self.children(e, name, depth, &mut members)?;
        Ok(Node::Object(members))
    }

    /// Converts the element children of `e` (looked up in `context`) into `members`.
    fn children(
        &mut self,
        e: XNode<'_, '_>,
        context: &str,
        depth: usize,
        members: &mut Vec<(Name, Node)>,
    ) -> Result<(), CodecError> {
        // Group children by name, in order of first appearance (FHIR XML keeps repetitions
        // together; JSON has one member per name).
        let mut groups: Vec<(String, Vec<XNode<'_, '_>>)> = Vec::new();
        for child in e.children() {
            if child.is_text() {
                if child.text().is_some_and(|t| !t.trim().is_empty()) {
                    return Err(self.err(
                        codes::XML_SHAPE,
                        child,
                        "text directly inside a FHIR element; values go in `value` attributes".into(),
                    ));
                }
                continue;
            }
            if !child.is_element() {
                continue;
            }
            let name = child.tag_name().name();
            match groups.iter_mut().find(|(n, _)| n == name) {
                Some((_, list)) => list.push(child),
                None => groups.push((name.to_string(), vec![child])),
            }
        }
        for (name, elements) in groups {
            let found = model::child(self.schema, context, &name);
            let list = found.is_some_and(|f| f.def.is_list()) || elements.len() > 1;
            let mut items = Vec::with_capacity(elements.len());
            for x in &elements {
                items.push(self.element(*x, found, depth + 1)?);
            }
            let has_extra = items.iter().any(|i| i.extra.is_some());
            let has_value = items.iter().any(|i| i.value.is_some());
            if list {
                if has_value {
                    let values = items.iter_mut().map(|i| i.value.take().unwrap_or(Node::Null)).collect();
                    members.push((name.clone().into(), Node::Array(values)));
                }
                if has_extra {
                    let extras = items.iter_mut().map(|i| i.extra.take().unwrap_or(Node::Null)).collect();
                    members.push((format!("_{name}").into(), Node::Array(extras)));
                }
            } else if let Some(item) = items.pop() {
                if let Some(v) = item.value {
                    members.push((name.clone().into(), v));
                }
                if let Some(x) = item.extra {
                    members.push((format!("_{name}").into(), x));
                }
            }
        }
        Ok(())
    }

    /// One child element, as the value of `found` (or generically when unknown).
    fn element(&mut self, e: XNode<'_, '_>, found: Option<model::Found<'_>>, depth: usize) -> Result<Item, CodecError> {
        self.check_depth(e, depth)?;
        let Some(found) = found else { return self.generic(e, depth) };
        match model::value_kind(self.schema, found) {
            ValueKind::Resource => {
                let inner: Vec<_> = e.children().filter(|c| c.is_element()).collect();
                if inner.len() != 1 {
                    return Err(self.err(
                        codes::XML_SHAPE,
                        e,
                        format!("`{}` must hold exactly one resource element", found.def.name),
                    ));
                }
                Ok(Item { value: Some(self.resource(inner[0], depth + 1)?), extra: None })
            }
            ValueKind::Primitive(_) if found.type_code == "xhtml" => {
                let mut xhtml = String::new();
                self.xhtml(e, depth, true, &mut xhtml)?;
                Ok(Item { value: Some(Node::String(xhtml)), extra: None })
            }
            ValueKind::Primitive(kind) => self.primitive(e, kind, depth),
            ValueKind::Complex if e.attribute("value").is_some() && !e.children().any(|c| c.is_element()) => {
                // A primitive where FHIR R4 has a complex element (STU3 content, for one):
                // kept as a string for the validator to report.
                self.generic(e, depth)
            }
            ValueKind::Complex => {
                let context = model::context_of(self.schema, found).to_string();
                let mut members = Vec::new();
                for a in e.attributes().filter(|a| a.namespace().is_none()) {
                    match a.name() {
                        "id" | "url" => {
                            members.push((a.name().to_string().into(), Node::String(a.value().to_string())))
                        }
                        other => {
                            return Err(self.err(
                                codes::XML_SHAPE,
                                e,
                                format!("unexpected attribute `{other}` on `{}`", found.def.name),
                            ));
                        }
                    }
                }
                self.children(e, &context, depth, &mut members)?;
                Ok(Item { value: Some(Node::Object(members)), extra: None })
            }
        }
    }

    /// Writes the narrative XHTML the way FHIR JSON carries it: elements and attributes as in
    /// the source (the root `div` with its XHTML namespace), character and entity references
    /// resolved, and only `&`, `<`, `>` and `"` escaped (as the FHIR publisher writes them); empty elements as
    /// `<br/>`. Comments and processing instructions are dropped.
    fn xhtml(&self, e: XNode<'_, '_>, depth: usize, root: bool, out: &mut String) -> Result<(), CodecError> {
        self.check_depth(e, depth)?;
        out.push('<');
        out.push_str(&qualified(e));
        let declares = root || e.parent_element().and_then(|p| p.tag_name().namespace()) != e.tag_name().namespace();
        if declares && let Some(ns) = e.tag_name().namespace() {
            out.push_str(" xmlns=\"");
            escape_xml(ns, out);
            out.push('"');
        }
        for a in e.attributes() {
            out.push(' ');
            match a.namespace() {
                Some("http://www.w3.org/XML/1998/namespace") => out.push_str("xml:"),
                Some(ns) => {
                    if let Some(prefix) = e.lookup_prefix(ns) {
                        out.push_str(prefix);
                        out.push(':');
                    }
                }
                None => {}
            }
            out.push_str(a.name());
            out.push_str("=\"");
            escape_xml(a.value(), out);
            out.push('"');
        }
        let mut children = e.children().filter(|c| c.is_element() || c.is_text()).peekable();
        if children.peek().is_none() {
            out.push_str("/>");
            return Ok(());
        }
        out.push('>');
        for c in children {
            if c.is_text() {
                escape_xml(c.text().unwrap_or_default(), out);
            } else {
                self.xhtml(c, depth + 1, false, out)?;
            }
        }
        out.push_str("</");
        out.push_str(&qualified(e));
        out.push('>');
        Ok(())
    }

    /// A primitive element: `value` attribute, and `id`/`extension` into `_name`.
    fn primitive(&mut self, e: XNode<'_, '_>, kind: JsonKind, depth: usize) -> Result<Item, CodecError> {
        let mut value = None;
        let mut extra = Vec::new();
        for a in e.attributes().filter(|a| a.namespace().is_none()) {
            match a.name() {
                "value" => value = Some(typed(a.value(), kind)),
                "id" => extra.push(("id".into(), Node::String(a.value().to_string()))),
                other => {
                    return Err(self.err(
                        codes::XML_SHAPE,
                        e,
                        format!("unexpected attribute `{other}` on a primitive"),
                    ));
                }
            }
        }
        // Children of a primitive are its extensions (Element's children: `extension`).
        self.children(e, "Element", depth, &mut extra)?;
        Ok(Item { value, extra: (!extra.is_empty()).then_some(Node::Object(extra)) })
    }

    /// An element the schema does not know: a `value` attribute alone is a string, otherwise
    /// an object of its attributes and children. The validator reports it as unknown.
    fn generic(&mut self, e: XNode<'_, '_>, depth: usize) -> Result<Item, CodecError> {
        let has_children = e.children().any(|c| c.is_element());
        let attrs: Vec<_> = e.attributes().filter(|a| a.namespace().is_none()).collect();
        if !has_children && attrs.len() == 1 && attrs[0].name() == "value" {
            return Ok(Item { value: Some(Node::String(attrs[0].value().to_string())), extra: None });
        }
        let mut members: Vec<(Name, Node)> =
            attrs.iter().map(|a| (a.name().to_string().into(), Node::String(a.value().to_string()))).collect();
        self.children(e, "", depth, &mut members)?;
        Ok(Item { value: Some(Node::Object(members)), extra: None })
    }
}

/// The element's name with the prefix it was written with.
fn qualified(e: XNode<'_, '_>) -> String {
    let name = e.tag_name();
    match name.namespace().and_then(|ns| e.lookup_prefix(ns)) {
        Some(prefix) if !prefix.is_empty() => format!("{prefix}:{}", name.name()),
        _ => name.name().to_string(),
    }
}

fn escape_xml(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// A `value` attribute as the JSON type of its primitive; text that is not a valid number or
/// boolean stays a string, which the validator then reports.
fn typed(text: &str, kind: JsonKind) -> Node {
    match kind {
        JsonKind::Bool if text == "true" => Node::Bool(true),
        JsonKind::Bool if text == "false" => Node::Bool(false),
        JsonKind::Number if is_json_number(text) => Node::Number(text.to_string()),
        _ => Node::String(text.to_string()),
    }
}

/// Whether `text` is a JSON number (which FHIR's decimal and integer lexical forms are).
/// The text itself, without surrounding whitespace or a BOM (which the JSON reader would skip
/// but which cannot be written back as a JSON number).
pub fn is_json_number(text: &str) -> bool {
    let edges = text.bytes().next().is_some_and(|b| b == b'-' || b.is_ascii_digit())
        && text.bytes().last().is_some_and(|b| b.is_ascii_digit());
    edges && matches!(crate::json::parse(text.as_bytes()), Ok(Node::Number(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_with_primitive_extension_and_narrative() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir">
  <id value="p1"/>
  <text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>Hi &amp; bye</p></div></text>
  <contained><Organization><id value="o1"/></Organization></contained>
  <name><given value="A"/><given id="g2"><extension url="http://x"><valueCode value="IN"/></extension></given></name>
  <birthDate value="1970-03-30"><extension url="http://y"><valueDateTime value="1970-03-30T10:00:00Z"/></extension></birthDate>
  <multipleBirthInteger value="2"/>
  <active value="true"/>
</Patient>"#;
        let t = parse(xml).unwrap();
        assert_eq!(
            t.to_json(),
            concat!(
                r#"{"resourceType":"Patient","id":"p1","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Hi &amp; bye</p></div>"},"#,
                r#""contained":[{"resourceType":"Organization","id":"o1"}],"#,
                r#""name":[{"given":["A",null],"_given":[null,{"id":"g2","extension":[{"url":"http://x","valueCode":"IN"}]}]}],"#,
                r#""birthDate":"1970-03-30","_birthDate":{"extension":[{"url":"http://y","valueDateTime":"1970-03-30T10:00:00Z"}]},"#,
                r#""multipleBirthInteger":2,"active":true}"#
            )
        );
    }

    #[test]
    fn refuses_dtd_deep_and_foreign_roots() {
        let e = parse(b"<!DOCTYPE x [<!ENTITY a 'b'>]><Patient xmlns=\"http://hl7.org/fhir\"/>").unwrap_err();
        assert_eq!(e.code, codes::XML_SYNTAX);
        let e = parse(b"<Patient/>").unwrap_err();
        assert_eq!(e.code, codes::NOT_A_RESOURCE);
        let deep = format!("<Patient xmlns=\"http://hl7.org/fhir\">{}", "<a>".repeat(100_000));
        assert!(parse(deep.as_bytes()).is_err());
        let deep = format!(
            "<Patient xmlns=\"http://hl7.org/fhir\">{}{}</Patient>",
            "<a>".repeat(50_000),
            "</a>".repeat(50_000)
        );
        assert_eq!(parse(deep.as_bytes()).unwrap_err().code, codes::TOO_DEEP);
    }

    #[test]
    fn numbers_with_blanks_stay_strings() {
        let xml = br#"<Observation xmlns="http://hl7.org/fhir"><valueInteger value=" 7"/></Observation>"#;
        assert_eq!(parse(xml).unwrap().to_json(), r#"{"resourceType":"Observation","valueInteger":" 7"}"#);
    }

    #[test]
    fn decimals_keep_their_text() {
        let xml = br#"<Observation xmlns="http://hl7.org/fhir"><valueQuantity><value value="72.50"/></valueQuantity></Observation>"#;
        assert_eq!(parse(xml).unwrap().to_json(), r#"{"resourceType":"Observation","valueQuantity":{"value":72.50}}"#);
    }
}
