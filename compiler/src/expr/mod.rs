//! The mapping expression language: syntax (lexer and parser), type checking, and the typed
//! tree ([`ast`]) that goes into plans.
pub mod ast;
pub mod check;
pub mod groups;
pub mod syntax;
