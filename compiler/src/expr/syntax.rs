//! Lexer and parser for the expression language, producing an untyped tree with spans.
//!
//! Grammar (lowest precedence first):
//! ```text
//! expr    := or
//! or      := and ("or" and)*
//! and     := not ("and" not)*
//! not     := "not" not | cmp
//! cmp     := add (("==" | "!=" | "<" | "<=" | ">" | ">=") add)?
//! add     := primary ("+" primary)*
//! primary := STRING | NUMBER | "true" | "false" | "null" | HL7PATH | NAME ("." NAME | "." DIGITS)*
//!          | NAME "(" args? ")" | "[" (expr ("," expr)*)? "]" | "(" expr ")"
//! args    := arg ("," arg)* ;  arg := (NAME "=")? expr
//! ```
//! An X12 path starts with a loop id and a `/`: `2300/CLM-01`, `2010BA/NM1-03`,
//! `2400[*]/SV1-01-2`, `2010AA/REF(EI)-02` (one token up to the first character that cannot be
//! in one; an X12 path of the set level, `BHT-04`, lexes as an HL7 path and is read as X12 in
//! an X12 mapping).
//! An HL7 path is a segment id (three upper-case letters or digits, starting with a letter)
//! followed by `-` or `[`: `PID-5.1`, `PID-3[*].1`, `OBX[*]-5`. After a name and a dot it is a
//! path within a segment group variable: `order.OBR-4.1`. A dotted name followed by `(` is a
//! call of that dotted name: `order.group(OBSERVATION)`.
//!
//! Invariant: any input gives a tree or a [`SyntaxError`] with a byte range; never a panic.
//! Nesting is limited to [`MAX_DEPTH`] so hostile input cannot overflow the stack.

use std::ops::Range;

pub const MAX_DEPTH: usize = 64;

#[derive(Clone, Debug, PartialEq)]
pub enum SynKind {
    Str(String),
    Int(i64),
    Dec(String),
    Bool(bool),
    Null,
    /// HL7 path text, as written.
    Hl7Path(String),
    /// FHIR path text with an index or a path function, as written (`name[0].family`,
    /// `value.as(Quantity).value`); a plain dotted FHIR path (`name.family`) is a `Name`.
    FhirPath(String),
    /// X12 path text starting with a loop, as written (`2300/CLM-01`).
    X12Path(String),
    /// A dotted name: `id`, `id.1.2`, `metadata.message_type`.
    Name(Vec<String>),
    /// An HL7 path within a segment group variable: `order.OBR-4.1`.
    Scoped {
        var: String,
        path: String,
        /// Byte range of the path text.
        path_span: Range<usize>,
    },
    Call {
        name: String,
        name_span: Range<usize>,
        args: Vec<Arg>,
    },
    Binary {
        op: crate::expr::ast::BinaryOp,
        lhs: Box<Syn>,
        rhs: Box<Syn>,
    },
    Not(Box<Syn>),
    List(Vec<Syn>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<(String, Range<usize>)>,
    pub value: Syn,
}

/// An untyped expression; `span` is a byte range within the expression text.
#[derive(Clone, Debug, PartialEq)]
pub struct Syn {
    pub kind: SynKind,
    pub span: Range<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub span: Range<usize>,
    pub help: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Str(String),
    Int(i64),
    Dec(String),
    Hl7(String),
    /// A FHIR path with an index or a function (`name[0].family`, `value.as(Quantity).value`).
    Fhir(String),
    /// An X12 path starting with a loop (`2300/CLM-01`).
    X12(String),
    Ident(String),
    Dot,
    Digits(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Assign,
    Op(&'static str),
    Eof,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    /// After a name or `.`, digits are a component number (`id.1`), not a decimal.
    after_dot: bool,
}

fn is_segment_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 3 && b[0].is_ascii_uppercase() && b[1..].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

impl<'a> Lexer<'a> {
    fn err(&self, message: impl Into<String>, span: Range<usize>) -> SyntaxError {
        SyntaxError { message: message.into(), span, help: None }
    }

    fn next(&mut self) -> Result<(Tok, Range<usize>), SyntaxError> {
        let bytes = self.src.as_bytes();
        while self.pos < bytes.len() && bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(&c) = bytes.get(self.pos) else {
            return Ok((Tok::Eof, start..start));
        };
        let after_dot = std::mem::replace(&mut self.after_dot, false);
        let one = |lx: &mut Self, t: Tok| {
            lx.pos += 1;
            Ok((t, start..start + 1))
        };
        match c {
            b'(' => one(self, Tok::LParen),
            b')' => one(self, Tok::RParen),
            b'[' => one(self, Tok::LBracket),
            b']' => one(self, Tok::RBracket),
            b',' => one(self, Tok::Comma),
            b'+' => one(self, Tok::Op("+")),
            b'.' => {
                self.after_dot = true;
                one(self, Tok::Dot)
            }
            b'=' | b'!' | b'<' | b'>' => {
                let two = self.src.get(start..start + 2).unwrap_or("");
                let (tok, len) = match two {
                    "==" => (Tok::Op("=="), 2),
                    "!=" => (Tok::Op("!="), 2),
                    "<=" => (Tok::Op("<="), 2),
                    ">=" => (Tok::Op(">="), 2),
                    _ => match c {
                        b'<' => (Tok::Op("<"), 1),
                        b'>' => (Tok::Op(">"), 1),
                        b'=' => (Tok::Assign, 1),
                        _ => return Err(self.err("`!` must be followed by `=`; use `not` to negate", start..start + 1)),
                    },
                };
                self.pos += len;
                Ok((tok, start..start + len))
            }
            b'"' => self.string(start),
            b'\'' => Err(SyntaxError {
                message: "string literals use double quotes".into(),
                span: start..start + 1,
                help: Some(
                    "write \"text\" in double quotes; in YAML, wrap the whole expression in single quotes: '\"text\"'"
                        .into(),
                ),
            }),
            b'0'..=b'9' if !after_dot && x12_path_end(self.src, start).is_some() => {
                let end = x12_path_end(self.src, start).unwrap_or(start + 1);
                self.pos = end;
                Ok((Tok::X12(self.src[start..end].to_string()), start..end))
            }
            b'0'..=b'9' | b'-' => self.number(start, after_dot),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let end = self.src[start..]
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                    .map_or(self.src.len(), |i| start + i);
                let word = &self.src[start..end];
                let next = bytes.get(end).copied();
                if is_segment_id(word) && matches!(next, Some(b'-' | b'[')) {
                    // An HL7 path runs over segment, field, repetition and component syntax.
                    let path_end = self.src[end..]
                        .find(|ch: char| !(ch.is_ascii_alphanumeric() || "-.[]*".contains(ch)))
                        .map_or(self.src.len(), |i| end + i);
                    self.pos = path_end;
                    return Ok((Tok::Hl7(self.src[start..path_end].to_string()), start..path_end));
                }
                if let Some(path_end) = fhir_path_end(self.src, end) {
                    self.pos = path_end;
                    return Ok((Tok::Fhir(self.src[start..path_end].to_string()), start..path_end));
                }
                self.pos = end;
                Ok((Tok::Ident(word.to_string()), start..end))
            }
            _ => {
                let ch = self.src[start..].chars().next().unwrap_or('?');
                Err(self.err(format!("unexpected character `{ch}`"), start..start + ch.len_utf8()))
            }
        }
    }

    fn string(&mut self, start: usize) -> Result<(Tok, Range<usize>), SyntaxError> {
        let mut out = String::new();
        let mut chars = self.src[start + 1..].char_indices();
        while let Some((i, ch)) = chars.next() {
            match ch {
                '"' => {
                    self.pos = start + 1 + i + 1;
                    return Ok((Tok::Str(out), start..self.pos));
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, c @ ('"' | '\\'))) => out.push(c),
                    Some((j, c)) => {
                        let at = start + 1 + j;
                        return Err(SyntaxError {
                            message: format!("unknown escape `\\{c}` in a string"),
                            span: at - 1..at + c.len_utf8(),
                            help: Some("the escapes are \\\" \\\\ \\n \\t".into()),
                        });
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(SyntaxError {
            message: "unterminated string".into(),
            span: start..self.src.len(),
            help: Some("close the string with `\"`".into()),
        })
    }

    fn number(&mut self, start: usize, after_dot: bool) -> Result<(Tok, Range<usize>), SyntaxError> {
        let bytes = self.src.as_bytes();
        let mut end = start + 1;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
        if after_dot {
            self.pos = end;
            return Ok((Tok::Digits(self.src[start..end].to_string()), start..end));
        }
        let mut is_dec = false;
        if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
            is_dec = true;
            end += 1;
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
        }
        let text = &self.src[start..end];
        self.pos = end;
        if text == "-" {
            return Err(self.err("`-` is not an operator here; HL7 paths are written like `PID-5`", start..end));
        }
        if is_dec {
            return Ok((Tok::Dec(text.to_string()), start..end));
        }
        text.parse::<i64>().map(|n| (Tok::Int(n), start..end)).map_err(|_| self.err("number out of range", start..end))
    }
}

/// Where an X12 path starting at `from` ends, when one starts there: a loop id (a digit, then
/// digits and upper-case letters, optionally `[...]`) directly followed by `/`, and a last
/// step that starts with a segment id's upper-case letter (`10/2` is not a path: the language
/// has no division, so it stays the syntax error it was). It runs over loop, segment,
/// qualifier, index and element syntax; a `)` or `]` without its opening one ends it
/// (`upper(2300/CLM-01)`).
fn x12_path_end(src: &str, from: usize) -> Option<usize> {
    let b = src.as_bytes();
    let mut pos = from;
    while b.get(pos).is_some_and(|c| c.is_ascii_digit() || c.is_ascii_uppercase()) {
        pos += 1;
    }
    if b.get(pos) == Some(&b'[') {
        pos += src[pos..].find(']')? + 1;
    }
    if b.get(pos) != Some(&b'/') {
        return None;
    }
    let (mut parens, mut brackets) = (0usize, 0usize);
    while let Some(&c) = b.get(pos) {
        match c {
            b'(' => parens += 1,
            b'[' => brackets += 1,
            b')' if parens > 0 => parens -= 1,
            b']' if brackets > 0 => brackets -= 1,
            c if c.is_ascii_alphanumeric() || matches!(c, b'/' | b'-' | b'*') => {}
            _ => break,
        }
        pos += 1;
    }
    let last_step = src[from..pos].rsplit('/').next().unwrap_or("");
    last_step.starts_with(|c: char| c.is_ascii_uppercase()).then_some(pos)
}

/// The functions of FHIR paths (`sluice_fhir::path::FUNCTIONS`), which no expression function
/// shares a name with.
const FHIR_PATH_FUNCTIONS: [&str; 5] = ["as", "ofType", "resolve", "first", "last"];

/// Where a FHIR path that starts with a name ending at `from` ends, when it is one: the name is
/// followed directly by `[` (`name[0]`), or by `.` and a run of names that calls a FHIR path
/// function (`value.as(Quantity).value`). `None` for anything else (`metadata.message_type`,
/// `id.1`, `upper(...)`), which lexes as before.
fn fhir_path_end(src: &str, from: usize) -> Option<usize> {
    let b = src.as_bytes();
    if !matches!(b.get(from), Some(b'[' | b'.')) {
        return None;
    }
    let mut pos = from;
    let mut special = false;
    let mut word_start = from;
    while let Some(&c) = b.get(pos) {
        match c {
            b'[' => {
                let close = src[pos..].find(']')? + pos;
                if !src[pos + 1..close].bytes().all(|c| c.is_ascii_digit() || c == b'*' || c == b' ') {
                    return None;
                }
                special = true;
                pos = close + 1;
            }
            b'(' => {
                if !FHIR_PATH_FUNCTIONS.contains(&&src[word_start..pos]) {
                    return None;
                }
                let close = src[pos..].find(')')? + pos;
                if !src[pos + 1..close].bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b' ') {
                    return None;
                }
                special = true;
                pos = close + 1;
            }
            b'.' => {
                pos += 1;
                word_start = pos;
                // `order.NTE[*]-3` is an HL7 path within a segment group; other names after a
                // dot may start in upper case (QuickBooks' `Line[0].Amount`).
                let word_end = src[pos..].find(|ch: char| !ch.is_ascii_alphanumeric()).map_or(src.len(), |i| pos + i);
                if is_segment_id(&src[pos..word_end]) && matches!(b.get(word_end), Some(b'-' | b'[')) {
                    return None;
                }
            }
            c if c.is_ascii_alphanumeric() || c == b'_' => pos += 1,
            _ => break,
        }
    }
    (special && b[pos - 1] != b'.').then_some(pos)
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    tok: Tok,
    span: Range<usize>,
    depth: usize,
}

/// Parses one expression.
pub fn parse(src: &str) -> Result<Syn, SyntaxError> {
    let mut lexer = Lexer { src, pos: 0, after_dot: false };
    let (tok, span) = lexer.next()?;
    let mut p = Parser { lexer, tok, span, depth: 0 };
    if p.tok == Tok::Eof {
        return Err(SyntaxError {
            message: "empty expression".into(),
            span: 0..0,
            help: Some("write a path such as `PID-5.1`, or `null`".into()),
        });
    }
    let e = p.expr()?;
    if p.tok != Tok::Eof {
        return Err(SyntaxError {
            message: "unexpected text after the expression".into(),
            span: p.span.clone(),
            help: Some("combine values with `+`, `and`, `or` or a function call".into()),
        });
    }
    Ok(e)
}

impl Parser<'_> {
    fn bump(&mut self) -> Result<(Tok, Range<usize>), SyntaxError> {
        let (tok, span) = self.lexer.next()?;
        let old_tok = std::mem::replace(&mut self.tok, tok);
        let old_span = std::mem::replace(&mut self.span, span);
        Ok((old_tok, old_span))
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<Range<usize>, SyntaxError> {
        if self.tok == want {
            return Ok(self.bump()?.1);
        }
        Err(SyntaxError { message: format!("expected {what}"), span: self.span.clone(), help: None })
    }

    fn expr(&mut self) -> Result<Syn, SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(SyntaxError {
                message: "expression nested too deeply".into(),
                span: self.span.clone(),
                help: None,
            });
        }
        let e = self.or();
        self.depth -= 1;
        e
    }

    fn binary_chain(
        &mut self,
        word: &str,
        op: crate::expr::ast::BinaryOp,
        next: fn(&mut Self) -> Result<Syn, SyntaxError>,
    ) -> Result<Syn, SyntaxError> {
        let mut lhs = next(self)?;
        while matches!(&self.tok, Tok::Ident(w) if w == word) || matches!(&self.tok, Tok::Op(o) if *o == word) {
            self.bump()?;
            let rhs = next(self)?;
            let span = lhs.span.start..rhs.span.end;
            lhs = Syn { kind: SynKind::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs) }, span };
        }
        Ok(lhs)
    }

    fn or(&mut self) -> Result<Syn, SyntaxError> {
        self.binary_chain("or", crate::expr::ast::BinaryOp::Or, Self::and)
    }

    fn and(&mut self) -> Result<Syn, SyntaxError> {
        self.binary_chain("and", crate::expr::ast::BinaryOp::And, Self::not)
    }

    fn not(&mut self) -> Result<Syn, SyntaxError> {
        if matches!(&self.tok, Tok::Ident(w) if w == "not") {
            let (_, span) = self.bump()?;
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(SyntaxError { message: "expression nested too deeply".into(), span, help: None });
            }
            let inner = self.not()?;
            self.depth -= 1;
            let span = span.start..inner.span.end;
            return Ok(Syn { kind: SynKind::Not(Box::new(inner)), span });
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Syn, SyntaxError> {
        use crate::expr::ast::BinaryOp;
        let lhs = self.add()?;
        let op = match &self.tok {
            Tok::Op("==") => BinaryOp::Eq,
            Tok::Op("!=") => BinaryOp::Ne,
            Tok::Op("<") => BinaryOp::Lt,
            Tok::Op("<=") => BinaryOp::Le,
            Tok::Op(">") => BinaryOp::Gt,
            Tok::Op(">=") => BinaryOp::Ge,
            Tok::Assign => {
                return Err(SyntaxError {
                    message: "`=` is not a comparison".into(),
                    span: self.span.clone(),
                    help: Some("compare with `==`".into()),
                });
            }
            _ => return Ok(lhs),
        };
        self.bump()?;
        let rhs = self.add()?;
        let span = lhs.span.start..rhs.span.end;
        Ok(Syn { kind: SynKind::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs) }, span })
    }

    fn add(&mut self) -> Result<Syn, SyntaxError> {
        self.binary_chain("+", crate::expr::ast::BinaryOp::Add, Self::primary)
    }

    fn primary(&mut self) -> Result<Syn, SyntaxError> {
        let (tok, span) = self.bump()?;
        let kind = match tok {
            Tok::Str(s) => SynKind::Str(s),
            Tok::Int(n) => SynKind::Int(n),
            Tok::Dec(d) => SynKind::Dec(d),
            Tok::Hl7(p) => SynKind::Hl7Path(p),
            Tok::Fhir(p) => SynKind::FhirPath(p),
            Tok::X12(p) => SynKind::X12Path(p),
            Tok::LParen => {
                let inner = self.expr()?;
                let end = self.expect(Tok::RParen, "`)`")?;
                return Ok(Syn { kind: inner.kind, span: span.start..end.end });
            }
            Tok::LBracket => {
                let mut items = Vec::new();
                if self.tok != Tok::RBracket {
                    loop {
                        items.push(self.expr()?);
                        if self.tok != Tok::Comma {
                            break;
                        }
                        self.bump()?;
                    }
                }
                let end = self.expect(Tok::RBracket, "`]` or `,`")?;
                return Ok(Syn { kind: SynKind::List(items), span: span.start..end.end });
            }
            Tok::Ident(word) => match word.as_str() {
                "true" => SynKind::Bool(true),
                "false" => SynKind::Bool(false),
                "null" => SynKind::Null,
                _ if self.tok == Tok::LParen || self.tok == Tok::Dot && self.lexer_peek_call() => {
                    return self.call(word, span);
                }
                _ => {
                    let mut parts = vec![word];
                    let mut end = span.end;
                    while self.tok == Tok::Dot {
                        self.bump()?;
                        match self.bump()? {
                            (Tok::Ident(w), s) if self.tok == Tok::LParen => {
                                parts.push(w);
                                let name_span = span.start..s.end;
                                return self.call(parts.join("."), name_span);
                            }
                            (Tok::Hl7(path), s) if parts.len() == 1 => {
                                let var = parts.remove(0);
                                let kind = SynKind::Scoped { var, path, path_span: s.clone() };
                                return Ok(Syn { kind, span: span.start..s.end });
                            }
                            (Tok::Ident(w) | Tok::Digits(w), s) => {
                                parts.push(w);
                                end = s.end;
                            }
                            (_, s) => {
                                return Err(SyntaxError {
                                    message: "expected a name or component number after `.`".into(),
                                    span: s,
                                    help: None,
                                });
                            }
                        }
                    }
                    return Ok(Syn { kind: SynKind::Name(parts), span: span.start..end });
                }
            },
            Tok::Eof => {
                return Err(SyntaxError { message: "the expression ends too early".into(), span, help: None });
            }
            _ => {
                return Err(SyntaxError {
                    message: "expected a value: a path, a literal, a function call or `(`".into(),
                    span,
                    help: None,
                });
            }
        };
        Ok(Syn { kind, span })
    }

    /// A name followed by `(` is a call; dotted calls are recognised in the name loop.
    fn lexer_peek_call(&self) -> bool {
        false
    }

    fn call(&mut self, name: String, name_span: Range<usize>) -> Result<Syn, SyntaxError> {
        self.expect(Tok::LParen, "`(`")?;
        let mut args = Vec::new();
        if self.tok != Tok::RParen {
            loop {
                let arg = self.arg()?;
                args.push(arg);
                if self.tok != Tok::Comma {
                    break;
                }
                self.bump()?;
            }
        }
        let end = self.expect(Tok::RParen, "`)` or `,`")?;
        Ok(Syn { kind: SynKind::Call { name, name_span: name_span.clone(), args }, span: name_span.start..end.end })
    }

    fn arg(&mut self) -> Result<Arg, SyntaxError> {
        // `name=value`: look at the identifier and the `=` after it.
        if let Tok::Ident(word) = &self.tok {
            let save_pos = self.lexer.pos;
            let save_dot = self.lexer.after_dot;
            let (next, _) = self.lexer.next()?;
            self.lexer.pos = save_pos;
            self.lexer.after_dot = save_dot;
            if next == Tok::Assign {
                let name = (word.clone(), self.span.clone());
                self.bump()?;
                self.bump()?;
                let value = self.expr()?;
                return Ok(Arg { name: Some(name), value });
            }
        }
        Ok(Arg { name: None, value: self.expr()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn paths_and_calls() {
        let e = parse("date(PID-7)").unwrap();
        let SynKind::Call { name, args, .. } = e.kind else { panic!() };
        assert_eq!(name, "date");
        assert_eq!(args[0].value.kind, SynKind::Hl7Path("PID-7".into()));
        let e = parse("lookup(id.5, types, default=\"OTHER\")").unwrap();
        let SynKind::Call { args, .. } = e.kind else { panic!() };
        assert_eq!(args[0].value.kind, SynKind::Name(vec!["id".into(), "5".into()]));
        assert_eq!(args[2].name.as_ref().unwrap().0, "default");
        assert_eq!(parse("PID-3[*].1").unwrap().kind, SynKind::Hl7Path("PID-3[*].1".into()));
        // X12 paths starting with a loop are one token, also inside a call.
        assert_eq!(parse("2300/CLM-01").unwrap().kind, SynKind::X12Path("2300/CLM-01".into()));
        assert_eq!(parse("2400[*]/SV1-01-2").unwrap().kind, SynKind::X12Path("2400[*]/SV1-01-2".into()));
        let SynKind::Call { args, .. } = parse("upper(2010AA/REF(EI)-02)").unwrap().kind else { panic!() };
        assert_eq!(args[0].value.kind, SynKind::X12Path("2010AA/REF(EI)-02".into()));
        assert_eq!(parse("2300").unwrap().kind, SynKind::Int(2300));
        // `/` after a number is an X12 path only when a segment follows: other expressions
        // with numbers read as they did (the language has no division, so `10/2` and
        // `2300/` stay syntax errors at the `/`).
        assert_eq!(parse("10/2").unwrap_err().span, 2..3);
        assert_eq!(parse("2300/").unwrap_err().span, 4..5);
        assert_eq!(parse("10 / 2").unwrap_err().span, 3..4);
        let SynKind::Binary { rhs, .. } = parse("PID-7 + 2300").unwrap().kind else { panic!() };
        assert_eq!(rhs.kind, SynKind::Int(2300));
        let SynKind::Call { args, .. } = parse("coalesce(2300/CLM-01, 10, 2.5)").unwrap().kind else { panic!() };
        assert_eq!(args[1].value.kind, SynKind::Int(10));
        assert_eq!(args[2].value.kind, SynKind::Dec("2.5".into()));
        let SynKind::Binary { lhs, .. } = parse("2300/CLM-02 > 100").unwrap().kind else { panic!() };
        assert_eq!(lhs.kind, SynKind::X12Path("2300/CLM-02".into()));
        // FHIR paths with an index or a path function are one token; group paths are not.
        assert_eq!(parse("name[0].family").unwrap().kind, SynKind::FhirPath("name[0].family".into()));
        assert_eq!(
            parse("value.as(Quantity).value").unwrap().kind,
            SynKind::FhirPath("value.as(Quantity).value".into())
        );
        assert!(matches!(parse("order.NTE[*]-3").unwrap().kind, SynKind::Scoped { .. }));
        assert!(matches!(parse("order.OBX[1]-5").unwrap().kind, SynKind::Scoped { .. }));
        // Names after a dot in upper case, as QuickBooks writes them.
        assert_eq!(parse("Line[0].Amount").unwrap().kind, SynKind::FhirPath("Line[0].Amount".into()));
        assert_eq!(parse("line.LinkedTxn[0].TxnId").unwrap().kind, SynKind::FhirPath("line.LinkedTxn[0].TxnId".into()));
        assert!(matches!(parse("CurrencyRef.value").unwrap().kind, SynKind::Name(_)));
        assert!(matches!(parse("metadata.message_type").unwrap().kind, SynKind::Name(_)));
        assert!(matches!(parse("coalesce(a.b, id.1)").unwrap().kind, SynKind::Call { .. }));
    }

    #[test]
    fn group_paths_and_dotted_calls() {
        let e = parse("date(order.OBR-7)").unwrap();
        let SynKind::Call { args, .. } = e.kind else { panic!() };
        assert_eq!(
            args[0].value.kind,
            SynKind::Scoped { var: "order".into(), path: "OBR-7".into(), path_span: 11..16 }
        );
        let e = parse("order.group(OBSERVATION)").unwrap();
        let SynKind::Call { name, name_span, args } = e.kind else { panic!() };
        assert_eq!((name.as_str(), name_span), ("order.group", 0..11));
        assert_eq!(args[0].value.kind, SynKind::Name(vec!["OBSERVATION".into()]));
        assert_eq!(parse("obs.OBX[0]-5.1").unwrap().span, 0..14);
        assert!(parse("a.b.OBX-5").is_err());
    }

    #[test]
    fn precedence() {
        let e = parse("MSH-9.1 == \"ADT\" and not present(PV1-2) or true").unwrap();
        let SynKind::Binary { op, .. } = e.kind else { panic!() };
        assert_eq!(op, crate::expr::ast::BinaryOp::Or);
    }

    #[test]
    fn errors_have_spans() {
        let e = parse("date(PID-7").unwrap_err();
        assert_eq!(e.span, 10..10);
        let e = parse("'x'").unwrap_err();
        assert!(e.help.unwrap().contains("double quotes"));
        assert!(parse("a = b").is_err());
        assert!(parse(&"(".repeat(500)).is_err());
        assert!(parse(&"not ".repeat(500)).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }

        #[test]
        fn never_panics_on_expression_like_text(s in "[A-Z0-9a-z\\-\\.\\[\\]\\*\\(\\)\", =!<>+/]{0,40}") {
            if let Err(e) = parse(&s) {
                prop_assert!(e.span.start <= s.len() && e.span.end <= s.len());
            }
        }
    }
}
