//! PostgreSQL connection URLs of `state: {url}`: what Sluice accepts, shared by the compiler
//! (a URL written into the spec) and the runtime (a URL read from a secret reference).
//!
//! Invariants:
//! - A password never leaves here in a message: problems are described without the URL (the
//!   compiler shows a written URL only when it holds no password; the runtime shows the secret
//!   reference, never the URL it resolves to).
//! - Plain connections only: `sslmode` absent or `disable`; any other mode is refused, never
//!   downgraded silently to plain text.

/// Why a URL cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Not `postgres://...` or `postgresql://...`.
    NotPostgres,
    /// A password in the user part or the query (only for a URL written into the spec).
    Password,
    /// `sslmode` other than `disable` (the mode as written).
    SslMode(String),
}

/// The part after the scheme, when the scheme is PostgreSQL's.
fn after_scheme(url: &str) -> Option<&str> {
    let lower = url.get(..13).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("postgresql://") {
        url.get(13..)
    } else if lower.starts_with("postgres://") {
        url.get(11..)
    } else {
        None
    }
}

/// The user info (before `@`) of the authority, if any.
fn user_info(rest: &str) -> Option<&str> {
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority.rsplit_once('@').map(|(user, _)| user)
}

fn query(rest: &str) -> impl Iterator<Item = (&str, &str)> {
    rest.split_once('?')
        .map_or("", |(_, q)| q)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// Checks a URL; `password_allowed` for one read from a secret at run time.
pub fn check(url: &str, password_allowed: bool) -> Result<(), Problem> {
    let rest = after_scheme(url.trim()).ok_or(Problem::NotPostgres)?;
    if rest.is_empty() || rest.starts_with('?') {
        return Err(Problem::NotPostgres);
    }
    let has_password = user_info(rest).is_some_and(|u| u.contains(':')) || query(rest).any(|(k, _)| k == "password");
    if has_password && !password_allowed {
        return Err(Problem::Password);
    }
    if let Some((_, mode)) = query(rest).find(|(k, _)| *k == "sslmode")
        && mode != "disable"
    {
        return Err(Problem::SslMode(mode.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_and_refused() {
        assert_eq!(check("postgres://sluice@127.0.0.1:5432/state", false), Ok(()));
        assert_eq!(check("postgresql://u@h/db?sslmode=disable", false), Ok(()));
        assert_eq!(check("mysql://u@h/db", false), Err(Problem::NotPostgres));
        assert_eq!(check("postgres://", false), Err(Problem::NotPostgres));
        assert_eq!(check("postgres://u:pw@h/db", false), Err(Problem::Password));
        assert_eq!(check("postgres://u@h/db?password=pw", false), Err(Problem::Password));
        assert_eq!(check("postgres://u:pw@h/db", true), Ok(()));
        assert_eq!(check("postgres://u@h/db?sslmode=require", true), Err(Problem::SslMode("require".into())));
        assert_eq!(check("postgres://u@h/db?sslmode=prefer", true), Err(Problem::SslMode("prefer".into())));
    }
}
