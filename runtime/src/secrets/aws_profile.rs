//! AWS shared configuration for `${aws-sm:...}`: credentials and region of a named profile,
//! read from the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
//! `~/.aws/credentials`, sections `[NAME]`) and the config file (`AWS_CONFIG_FILE`, else
//! `~/.aws/config`, sections `[default]` and `[profile NAME]`), as the AWS CLI and SDKs read
//! them. The profile is `AWS_PROFILE`, else `default`.
//!
//! Precedence (the SDKs'): environment variables win (`AWS_ACCESS_KEY_ID` and
//! `AWS_SECRET_ACCESS_KEY` over the profile's keys; `AWS_REGION`/`AWS_DEFAULT_REGION` over its
//! `region`); within the profile, the credentials file wins over the config file.
//!
//! Invariants:
//! - A value of either file never reaches a message: errors name the file, the profile and a
//!   line number, never a line's text (a malformed line may hold a secret key).
//! - Only what was asked for fails: without `AWS_PROFILE`, missing files and a missing
//!   `[default]` are not errors (the caller then says which setting is missing, RT404); with
//!   `AWS_PROFILE`, a profile in neither file (RT046) or no file at all (RT047) is. A file
//!   that is there but not INI as AWS writes it is an error either way (RT048).
//! - Files are read only when the environment lacks what they would give.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::RunError;
use crate::findings;

/// What a profile gives.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Profile {
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

/// The profile the environment selects, and whether it was named (`AWS_PROFILE`).
pub fn selected(env: &impl Fn(&str) -> Option<String>) -> (String, bool) {
    match env("AWS_PROFILE") {
        Some(name) => (name, true),
        None => ("default".to_string(), false),
    }
}

/// One file's sections: section name -> key -> value (keys lower-cased).
type Sections = HashMap<String, HashMap<String, String>>;

/// Parses AWS's INI: `[section]`, `key = value`, comments (`#`, `;`) and blank lines; an
/// indented line continues the key above (nested settings such as `s3 =`) and is skipped.
/// The error is the 1-based number of the first line that is none of these.
fn parse(text: &str) -> Result<Sections, usize> {
    let mut sections = Sections::new();
    let mut current: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if line.starts_with([' ', '\t']) && current.is_some() {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            if name.is_empty() {
                return Err(i + 1);
            }
            sections.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        match (trimmed.split_once('='), &current) {
            (Some((key, value)), Some(section)) if !key.trim().is_empty() => {
                sections
                    .entry(section.clone())
                    .or_default()
                    .insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
            }
            _ => return Err(i + 1),
        }
    }
    Ok(sections)
}

/// A shared file: where it is, and whether the environment named it.
struct SharedFile {
    path: PathBuf,
    variable: &'static str,
}

impl SharedFile {
    fn of(env: &impl Fn(&str) -> Option<String>, variable: &'static str, default: &str) -> Option<SharedFile> {
        let path = match env(variable) {
            Some(p) => PathBuf::from(p),
            None => PathBuf::from(env("HOME")?).join(".aws").join(default),
        };
        Some(SharedFile { path, variable })
    }

    /// Its sections; `None` when there is no such file.
    fn read(&self, what: &str) -> Result<Option<Sections>, RunError> {
        let text = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(malformed(what, &self.path, format!("cannot be read ({})", e.kind()), self.variable));
            }
        };
        let text = String::from_utf8(text)
            .map_err(|_| malformed(what, &self.path, "is not UTF-8 text".into(), self.variable))?;
        parse(&text).map(Some).map_err(|line| {
            malformed(
                what,
                &self.path,
                format!("line {line} is not `[profile]`, `key = value` or a comment"),
                self.variable,
            )
        })
    }
}

fn malformed(what: &str, path: &Path, why: String, variable: &str) -> RunError {
    RunError::new(findings::AWS_SHARED_FILE_MALFORMED, format!("{what}: AWS shared file `{}` {why}", path.display()))
        .with_help(format!(
            "fix the file (as `aws configure` writes it: `[NAME]` then `aws_access_key_id = ...` lines), or point \
             `{variable}` at another one"
        ))
}

/// The selected profile's settings; `Ok(None)` when no profile was named and there is nothing
/// for `default`.
pub fn load(env: &impl Fn(&str) -> Option<String>, what: &str) -> Result<Option<Profile>, RunError> {
    let (name, named) = selected(env);
    let credentials_file = SharedFile::of(env, "AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let config_file = SharedFile::of(env, "AWS_CONFIG_FILE", "config");
    let credentials = match &credentials_file {
        Some(f) => f.read(what)?,
        None => None,
    };
    let config = match &config_file {
        Some(f) => f.read(what)?,
        None => None,
    };
    let shown = |f: &Option<SharedFile>, variable: &str, default: &str| match f {
        Some(f) => format!("`{}`", f.path.display()),
        None => format!("`{variable}` (or `~/.aws/{default}`: `HOME` is not set)"),
    };
    if credentials.is_none() && config.is_none() {
        if !named {
            return Ok(None);
        }
        return Err(RunError::new(
            findings::AWS_SHARED_FILE_MISSING,
            format!(
                "{what}: `AWS_PROFILE` names profile `{name}`, but neither the credentials file {} nor the config file {} exists",
                shown(&credentials_file, "AWS_SHARED_CREDENTIALS_FILE", "credentials"),
                shown(&config_file, "AWS_CONFIG_FILE", "config"),
            ),
        )
        .with_help(format!(
            "create it with `aws configure --profile {name}`, point `AWS_SHARED_CREDENTIALS_FILE` at it, or unset \
             `AWS_PROFILE` and set `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`"
        )));
    }
    let from_credentials = credentials.as_ref().and_then(|s| s.get(&name));
    // The config file names profiles `[profile NAME]`; the default profile `[default]` (some
    // tools write `[profile default]`).
    let from_config = config.as_ref().and_then(|s| {
        s.get(&format!("profile {name}")).or_else(|| if name == "default" { s.get("default") } else { None })
    });
    if from_credentials.is_none() && from_config.is_none() {
        if !named {
            return Ok(None);
        }
        let mut known: Vec<String> = credentials.iter().flat_map(|s| s.keys().cloned()).collect();
        known.extend(config.iter().flat_map(|s| {
            s.keys().filter_map(|k| {
                if k == "default" { Some(k.clone()) } else { k.strip_prefix("profile ").map(str::to_string) }
            })
        }));
        known.sort();
        known.dedup();
        return Err(RunError::new(
            findings::AWS_PROFILE_MISSING,
            format!(
                "{what}: `AWS_PROFILE` names profile `{name}`, which is in neither {} nor {}",
                shown(&credentials_file, "AWS_SHARED_CREDENTIALS_FILE", "credentials"),
                shown(&config_file, "AWS_CONFIG_FILE", "config"),
            ),
        )
        .with_help(if known.is_empty() {
            format!(
                "add `[{name}]` with `aws_access_key_id` and `aws_secret_access_key` (`aws configure --profile {name}`)"
            )
        } else {
            format!("the files have profile(s) {}; fix `AWS_PROFILE` or add `[{name}]`", known.join(", "))
        }));
    }
    let get = |key: &str| {
        from_credentials
            .and_then(|s| s.get(key))
            .or_else(|| from_config.and_then(|s| s.get(key)))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    Ok(Some(Profile {
        region: from_config.and_then(|s| s.get("region")).filter(|v| !v.is_empty()).cloned(),
        access_key_id: get("aws_access_key_id"),
        secret_access_key: get("aws_secret_access_key"),
        session_token: get("aws_session_token"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch home with an `.aws` folder, removed when dropped (kept when a test failed).
    struct Temp(PathBuf);

    impl std::ops::Deref for Temp {
        type Target = PathBuf;
        fn deref(&self) -> &PathBuf {
            &self.0
        }
    }

    impl Drop for Temp {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn temp(name: &str) -> Temp {
        let dir = std::env::temp_dir().join(format!("sluice-aws-profile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        Temp(dir)
    }

    fn env_of(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
        move |n| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone())
    }

    const CREDENTIALS: &str = "# written by aws configure\n[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = default-secret\n\n[ops]\r\naws_access_key_id=AKIAOPS\naws_secret_access_key = ops/secret+key\naws_session_token = ops-token\n";
    const CONFIG: &str = "[default]\nregion = eu-west-1\n; a comment\n[profile ops]\nregion = us-west-2\ns3 =\n    max_concurrent_requests = 20\n[profile config-only]\naws_access_key_id = AKIACFG\naws_secret_access_key = cfg-secret\n";

    #[test]
    fn profiles_from_home_and_from_the_variables() {
        let home = temp("home");
        std::fs::write(home.join(".aws/credentials"), CREDENTIALS).unwrap();
        std::fs::write(home.join(".aws/config"), CONFIG).unwrap();
        let env = env_of(vec![("HOME", home.display().to_string())]);
        let p = load(&env, "x").unwrap().unwrap();
        assert_eq!(p.region.as_deref(), Some("eu-west-1"));
        assert_eq!(p.access_key_id.as_deref(), Some("AKIADEFAULT"));
        assert_eq!(p.session_token, None);
        let env = env_of(vec![("HOME", home.display().to_string()), ("AWS_PROFILE", "ops".into())]);
        let p = load(&env, "x").unwrap().unwrap();
        assert_eq!(
            p,
            Profile {
                region: Some("us-west-2".into()),
                access_key_id: Some("AKIAOPS".into()),
                secret_access_key: Some("ops/secret+key".into()),
                session_token: Some("ops-token".into()),
            }
        );
        let env = env_of(vec![("HOME", home.display().to_string()), ("AWS_PROFILE", "config-only".into())]);
        assert_eq!(load(&env, "x").unwrap().unwrap().access_key_id.as_deref(), Some("AKIACFG"));
        // The variables point elsewhere: HOME's files are not read.
        let other = temp("other");
        std::fs::write(other.join("creds"), "[default]\naws_access_key_id = AKIAOTHER\n").unwrap();
        let env = env_of(vec![
            ("HOME", home.display().to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", other.join("creds").display().to_string()),
            ("AWS_CONFIG_FILE", other.join("none").display().to_string()),
        ]);
        let p = load(&env, "x").unwrap().unwrap();
        assert_eq!((p.access_key_id.as_deref(), p.region), (Some("AKIAOTHER"), None));
    }

    #[test]
    fn nothing_named_and_nothing_there_is_not_an_error() {
        let home = temp("empty");
        assert_eq!(load(&env_of(vec![("HOME", home.display().to_string())]), "x").unwrap(), None);
        assert_eq!(load(&env_of(vec![]), "x").unwrap(), None);
        std::fs::write(home.join(".aws/credentials"), "[ops]\naws_access_key_id = A\n").unwrap();
        assert_eq!(load(&env_of(vec![("HOME", home.display().to_string())]), "x").unwrap(), None);
    }

    #[test]
    fn errors_are_coded_and_never_show_a_value() {
        let home = temp("errors");
        let h = home.display().to_string();
        let e = load(&env_of(vec![("HOME", h.clone()), ("AWS_PROFILE", "ops".into())]), "x").unwrap_err();
        assert_eq!(e.code, findings::AWS_SHARED_FILE_MISSING);
        assert!(e.message.contains("`ops`") && e.message.contains(".aws/credentials"), "{e}");
        std::fs::write(home.join(".aws/credentials"), CREDENTIALS).unwrap();
        let e = load(&env_of(vec![("HOME", h.clone()), ("AWS_PROFILE", "nope".into())]), "x").unwrap_err();
        assert_eq!(e.code, findings::AWS_PROFILE_MISSING);
        assert!(e.to_string().contains("default, ops"), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
        for bad in [
            "[default]\naws_secret_access_key: colon-secret\n",
            "aws_secret_access_key = before-any-section\n",
            "[]\n",
            "[default\naws_secret_access_key = x\n",
        ] {
            std::fs::write(home.join(".aws/credentials"), bad).unwrap();
            let e = load(&env_of(vec![("HOME", h.clone())]), "x").unwrap_err();
            assert_eq!(e.code, findings::AWS_SHARED_FILE_MALFORMED, "{bad}");
            assert!(e.message.contains("line "), "{e}");
            assert!(!e.to_string().contains("colon-secret") && !e.to_string().contains("before-any"), "{e}");
        }
        std::fs::write(home.join(".aws/credentials"), [0xff, 0xfe, b'x']).unwrap();
        assert_eq!(load(&env_of(vec![("HOME", h)]), "x").unwrap_err().code, findings::AWS_SHARED_FILE_MALFORMED);
    }
}
