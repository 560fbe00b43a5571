//! Plain templates: `template(...)` sources made only of literal text and `{{ name }}`
//! placeholders (`"{{ given }} {{ family }}"`), rendered by concatenation instead of through
//! minijinja. Everything else (filters, tests, blocks, comments, whitespace control, any other
//! `{` or `}`) keeps going through minijinja.
//!
//! Invariants:
//! - [`PlainTemplate::parse`] accepts a source only when minijinja renders it as the literal
//!   text with each placeholder replaced by its variable's text: no `{` or `}` outside a
//!   placeholder, placeholders `{{`, spaces, an identifier bound by the call (never a minijinja
//!   constant such as `none`), spaces, `}}`, and no trailing newline (minijinja drops one).
//! - [`PlainTemplate::render`] only renders values whose text minijinja writes as is (strings
//!   and decimals passed as strings); for any other value it returns `None` and the caller uses
//!   minijinja. A property test holds both renderings together.

/// A part of a plain template, borrowed from its source.
#[derive(Debug, Clone, PartialEq)]
enum Piece<'s> {
    Text(&'s str),
    Var(&'s str),
}

/// A template source compiled to literal text and variable references.
#[derive(Debug, Clone, PartialEq)]
pub struct PlainTemplate<'s> {
    pieces: Vec<Piece<'s>>,
    /// Sum of the literal text's lengths, to size the output once.
    text_len: usize,
}

/// Names minijinja reads as constants, not as variables.
const CONSTANTS: [&str; 6] = ["true", "false", "none", "True", "False", "None"];

impl<'s> PlainTemplate<'s> {
    /// Compiles `source`, whose placeholders must each name one of `vars`; `None` when the
    /// source is not plain.
    pub fn parse(source: &'s str, vars: &[&str]) -> Option<PlainTemplate<'s>> {
        if source.ends_with('\n') {
            return None;
        }
        let mut pieces = Vec::new();
        let mut text_len = 0;
        let mut rest = source;
        while !rest.is_empty() {
            let literal_end = rest.find(['{', '}']).unwrap_or(rest.len());
            if literal_end > 0 {
                pieces.push(Piece::Text(&rest[..literal_end]));
                text_len += literal_end;
                rest = &rest[literal_end..];
                continue;
            }
            let inner = rest.strip_prefix("{{")?;
            let close = inner.find("}}")?;
            let name = inner[..close].trim_matches(' ');
            if !is_identifier(name) || CONSTANTS.contains(&name) {
                return None;
            }
            if !vars.contains(&name) {
                return None;
            }
            pieces.push(Piece::Var(name));
            rest = &inner[close + 2..];
        }
        Some(PlainTemplate { pieces, text_len })
    }

    /// Renders with `text(name)`, the text of the variable `name`; `None` as soon as a used
    /// variable has no plain text (the caller then renders through minijinja).
    pub fn render<'v>(&self, text: impl Fn(&str) -> Option<&'v str>) -> Option<String> {
        let mut out = String::with_capacity(self.text_len + 16 * self.pieces.len());
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(name) => out.push_str(text(name)?),
            }
        }
        Some(out)
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::{AutoEscape, Environment};
    use proptest::prelude::*;

    fn minijinja_render(source: &str, vars: &[(&str, &str)]) -> Option<String> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.add_template("t", source).ok()?;
        let ctx: std::collections::BTreeMap<&str, minijinja::Value> =
            vars.iter().map(|(n, v)| (*n, minijinja::Value::from(*v))).collect();
        env.get_template("t").ok()?.render(minijinja::Value::from(ctx)).ok()
    }

    #[test]
    fn plain_and_not_plain() {
        let vars = ["given", "family"];
        let t = PlainTemplate::parse("{{ given }} {{family}}!", &vars).unwrap();
        let value = |n: &str| Some(if n == "given" { "John" } else { "Doe" });
        assert_eq!(t.render(value).as_deref(), Some("John Doe!"));
        for not_plain in [
            "{{ given | upper }}",
            "{{- given }}",
            "{% if given %}x{% endif %}",
            "{# c #}",
            "{{ none }}",
            "{{ other }}",
            "a } b",
            "{ given }",
            "{{ given }}\n",
            "{{ given }",
            "{{\tgiven }}",
        ] {
            assert!(PlainTemplate::parse(not_plain, &vars).is_none(), "{not_plain:?}");
        }
    }

    proptest! {
        /// Every source the fast path accepts renders exactly as minijinja renders it.
        #[test]
        fn plain_templates_render_as_minijinja_does(
            parts in proptest::collection::vec(
                prop_oneof![
                    "[ -~\u{e9}\u{4e2d}\n\t]{0,6}".prop_map(|s| (s, None)),
                    (0usize..3, " {0,2}", " {0,2}").prop_map(|(i, a, b)| (String::new(), Some((i, a, b)))),
                ],
                0..8,
            ),
            values in proptest::collection::vec("[ -~\u{e9}\n]{0,8}", 3),
        ) {
            let names = ["given", "family", "x_1"];
            let mut source = String::new();
            for (text, var) in &parts {
                match var {
                    None => source.push_str(text),
                    Some((i, a, b)) => source.push_str(&format!("{{{{{a}{}{b}}}}}", names[*i])),
                }
            }
            let bound: Vec<(&str, &str)> = names.iter().copied().zip(values.iter().map(String::as_str)).collect();
            if let Some(t) = PlainTemplate::parse(&source, &names) {
                let fast = t.render(|n| names.iter().position(|m| *m == n).map(|i| values[i].as_str()));
                prop_assert_eq!(fast, minijinja_render(&source, &bound), "source {:?}", source);
            }
        }
    }
}
