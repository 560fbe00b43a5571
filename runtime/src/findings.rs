//! Registry of the runtime's finding codes: every code the runtime writes into a DLQ entry, a
//! record's `errors`/`warnings`, or a [`crate::RunError`], with a title and an explanation, so
//! the docs can list them (`FINDINGS`).
//!
//! Invariants:
//! - A code is stable and never reused for another meaning; new codes are appended.
//! - Ranges by phase: `RT0xx` run errors (the run stops before or while processing), `RT1xx`
//!   source (decode, parse, profile), `RT2xx` validate, `RT3xx` map and expression evaluation,
//!   `RT4xx` mask, `RT5xx` routing and the DAG, `RT6xx` sinks (delivery to an endpoint).
//! - Titles and explanations are fixed text: they never hold data values.
//!
//! Parse errors from the HL7 codec keep the codec's own code (`HL7xxx`) in DLQ entries; `RT102`
//! is the umbrella entry documenting them. So do the warnings of a tolerant parse (`HL7006`,
//! `HL7007`) on a record's `warnings`.

use serde::Serialize;

/// Where a finding ends up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Stops the run ([`crate::RunError`]).
    RunError,
    /// Sends the record to the DLQ.
    Dlq,
    /// Recorded on the record's `errors` (lenient validation); the record goes on.
    Error,
    /// Recorded on the record's `warnings`; the record goes on.
    Warning,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct FindingInfo {
    pub code: &'static str,
    pub kind: FindingKind,
    pub title: &'static str,
    pub explanation: &'static str,
}

macro_rules! findings {
    ($($name:ident = $code:literal, $kind:ident, $title:literal, $expl:literal;)*) => {
        $(pub const $name: &str = $code;)*
        /// Every runtime finding code, in code order.
        pub const FINDINGS: &[FindingInfo] = &[
            $(FindingInfo { code: $code, kind: FindingKind::$kind, title: $title, explanation: $expl },)*
        ];
    };
}

findings! {
    PLAN_FORMAT = "RT001", RunError, "unsupported plan format",
        "The plan was written by a compiler whose plan format this runtime does not know. Re-run `sluice plan` with the same version of Sluice.";
    SECRET_MISSING = "RT002", RunError, "secret reference not resolvable",
        "A secret reference (`${VAR}` or `${file:path}`) names an environment variable that is not set or a file that cannot be read. The value is never printed.";
    IO = "RT003", RunError, "I/O error",
        "A source, sink, DLQ or audit file could not be opened, read or written.";
    BAD_GLOB = "RT004", RunError, "invalid source path pattern",
        "A source `paths` entry is not a valid glob pattern.";
    SOURCE_MISSING = "RT005", RunError, "source file not found",
        "A source `paths` entry without wildcards names a file that does not exist.";
    BAD_CLOCK = "RT006", RunError, "invalid fixed clock",
        "The fixed clock given for the run is not an RFC 3339 timestamp (`2024-01-15T10:30:00Z`).";
    PLAN_INVALID = "RT007", RunError, "plan cannot be executed",
        "The plan refers to something the runtime cannot build (an unknown input component, an invalid regular expression, a template that does not compile, an HL7 path that does not parse, a hash rule without a key, no DLQ target). The compiler should have rejected it: please report it.";
    INTERNAL = "RT008", RunError, "internal runtime failure",
        "A worker thread failed or the thread pool could not be built.";
    LISTEN = "RT009", RunError, "cannot listen",
        "A listening source (`mllp`) could not bind its `listen` address (in use, not an address of this machine, or a privileged port), or its TLS certificate or key could not be read or used. The message names the source and the file, never the key.";
    STATE = "RT010", RunError, "state store unusable",
        "The state store (`state.path`, SQLite; `state.url`, PostgreSQL) could not be created, opened, read or written, or was written by a newer Sluice; or its PostgreSQL URL (once its secret reference is resolved) is not a `postgres://` URL or asks for an `sslmode` other than `disable` (Sluice connects without TLS). The message names the file, or the URL as written in the spec (never its password), and what failed. For SQLite, check that its directory is writable; move a damaged file aside to start over (the next run then cannot resume an earlier one). For PostgreSQL, check that the server is reachable and the user may create tables.";
    STATE_LOCKED = "RT011", RunError, "state store in use",
        "Another `sluice run` (or `sluice dlq replay` or `purge`) of the same pipeline on the same state store is running: one process at a time owns a pipeline's runs in a store (SQLite: a lock on `<path>.<pipeline>.lock`; PostgreSQL: a session advisory lock keyed on the pipeline's name; either is released when that process ends, even if it is killed). Other pipelines may share the store meanwhile. Wait for it, or stop it with Ctrl-C or SIGTERM, which lets it save a checkpoint.";
    RUN_UNFINISHED = "RT012", RunError, "an earlier run did not finish",
        "The pipeline's last run stopped before the end (interrupted, failed or killed), and its checkpoint is in the state store. `sluice run --resume` continues it from the checkpoint (outputs are cut back to it, so nothing is written twice); `sluice run --restart` abandons it and starts over (outputs are truncated). A plain run does neither, so that it cannot overwrite what the interrupted run wrote by accident.";
    RESUME_PLAN_CHANGED = "RT013", RunError, "plan changed since the run stopped",
        "`--resume` needs the plan the interrupted run was started with (same specs, same paths): a different mapping or rule would make the records before and after the checkpoint disagree. Undo the change and resume, or start over with `--restart`. The plan hash includes file paths as given, so run from the same directory.";
    RESUME_INPUT_CHANGED = "RT014", RunError, "input or output changed since the run stopped",
        "A resume reads the same input files as the interrupted run and appends to the same outputs. An input file is gone, changed size or was modified, or an output file is missing or shorter than the checkpoint says, so records would be skipped or counted twice. Restore the file, or start over with `--restart`.";
    NOTHING_TO_RESUME = "RT015", RunError, "nothing to resume",
        "`sluice run --resume` found no unfinished run of the pipeline in its state store (the last run completed, or none ran), or the pipeline has no state store (`state: {path: ...}`), or its source is a live listener (MLLP peers resend what was not acknowledged, so there is no position to resume from). Run without `--resume`.";
    REPLAY_NEEDS_STATE = "RT016", RunError, "DLQ replay and purge need a state store",
        "`sluice dlq replay` records in the state store which DLQ records it replayed and how they ended, and the output lengths it started from, so that a replay that fails is undone and no record is delivered twice; `replay` and `purge` take the store's lock, so they never run beside a run of the pipeline. Add `state: {path: ...}` (SQLite) or `state: {url: ...}` (PostgreSQL) to the pipeline.";
    DLQ_UNKNOWN_RECORD = "RT017", RunError, "DLQ record cannot be replayed",
        "The id given to `sluice dlq replay` is not in the pipeline's DLQ, was already replayed (a record that failed again has a new entry with a new id), or came from a source the pipeline no longer has. `sluice dlq list PIPELINE` shows the ids and which are pending.";
    DLQ_UNREADABLE = "RT018", RunError, "DLQ file unreadable",
        "A line of the DLQ file is not an entry this version of Sluice wrote (edited by hand, or from an older version without `id`), or its `raw` cannot be decoded. The message gives the line number, never its content. Move such lines out of the file.";
    METRICS_ADDRESS = "RT019", RunError, "metrics endpoint cannot listen",
        "`sluice run --metrics ADDRESS` serves Prometheus metrics on `ADDRESS`, which must be an IP address and a port such as `127.0.0.1:9464` (port 0 picks a free port; the address in use is printed on stderr). The address did not parse, or could not be bound (the port is in use, the address is not one of this machine's, or the port is privileged). The run does not start.";
    ERROR_RATE_EXCEEDED = "RT020", RunError, "error rate above `fail_if`",
        "The pipeline's `fail_if` (`error_rate > 0.5% over 1000 records`) tripped: among the last N records read, more than that share went to the DLQ, which usually means a changed feed or a broken spec rather than a few bad messages. The run stopped reading, wrote what it had read, saved a checkpoint and is recorded as failed. `sluice dlq list` shows the reasons; fix the cause and `sluice run --restart` (or `--resume` if neither the specs nor the input changed). The window starts empty again on a resume.";
    DLQ_UNENCRYPTED = "RT021", RunError, "DLQ would hold patient data unencrypted",
        "The DLQ keeps each rejected message whole, so it can be fixed and replayed: that is patient data. A run refuses to start unless `dlq.encryption_key` names a key (a secret reference, `${VAR}` or `${file:path}`, to 32 random bytes as 64 hex digits: `openssl rand -hex 32`), with which every raw message is encrypted (AES-256-GCM), or `dlq.plaintext_reason` says why plain text is acceptable (synthetic or test data only).";
    DLQ_KEY_INVALID = "RT022", RunError, "DLQ key unusable",
        "The secret named by `dlq.encryption_key` was found but is not 32 bytes written as 64 hex digits or as base64. The message names the reference, never the value. Generate one with `openssl rand -hex 32`.";
    HTTP_HEADER_INVALID = "RT023", RunError, "HTTP sink header unusable",
        "A header of an `http` sink, once its secret reference is resolved, is not a valid HTTP header (a line break or a control character in the value). The message names the header and the reference, never the value. Fix the secret; the run does not start.";
    AUDIT_CHAIN_BROKEN = "RT024", RunError, "audit chain broken",
        "`sluice audit verify` (or `export`) recomputed the audit log's hashes and links and found the first line that does not fit: an entry altered (its hash does not match), removed, inserted or reordered (its `prev` is not the previous entry's hash), numbered out of order, or not an audit entry. The message gives the line number. Keep the file as evidence and compare it with a backup or a copy shipped elsewhere; `sluice audit export` refuses to export a log whose chain is broken.";
    DLQ_PART_NOT_REPLAYABLE = "RT025", RunError, "DLQ entry is a dropped part, not a message",
        "The DLQ entry holds one segment that a parser profile with `bad_segments: drop` left out of a message (its `part` names the record it came from; that record went on without it). A lone segment is not a message, so `sluice dlq replay` does not send it through the pipeline: given its id, the replay refuses (nothing is replayed); replaying every pending record skips such entries and counts them. Read it with `sluice dlq show PIPELINE ID --raw`, have the sender correct and resend the message if the segment mattered, then remove the entry with `sluice dlq purge PIPELINE ID`.";
    PLAN_CHANGED = "RT026", RunError, "the specs no longer compile to the saved plan",
        "`sluice run --plan FILE` runs only the plan that was reviewed: the specs (or `--env`) now compile to a plan with another hash, so something changed since `sluice plan --out FILE` saved it. `sluice plan PIPELINE --diff FILE` shows what; review it, save the new plan, and run with that.";

    KEY_MISSING = "RT031", RunError, "data encrypted under a key that is not configured",
        "A sealed blob (a token vault row) names the id of the key that encrypted it (`k` and 16 hex digits, a fingerprint of the key that does not reveal it), and no key of the secret it is read with has that id: the key was rotated out before everything was re-encrypted, or the wrong secret is set. Add the old key after the current one in the secret (`${SLUICE_VAULT_KEY}` = `NEW,OLD`), run `sluice keys rotate PIPELINE` to re-encrypt everything under the current key, then remove the old one.";
    KEY_INVALID = "RT032", RunError, "encryption key unusable",
        "A key secret (`vault_key`) holds one key, or several separated by commas or line breaks (the first encrypts, the others only decrypt); each must be 32 random bytes as 64 hex digits or base64 (`openssl rand -hex 32`), and none may appear twice. The message names the reference and which key (1-based), never a key.";
    VAULT_CORRUPT = "RT033", RunError, "token vault row does not decrypt",
        "The vault row of a token is under a configured key but does not decrypt: it was altered, or moved from another token's row (each value is bound to its token). The value cannot be recovered from this row; restore the state store from a backup.";

    ACCESS_REFUSED = "RT034", RunError, "operation refused: role missing, not allowed, or wrong key",
        "The pipeline declares `roles:`, so `sluice dlq show --raw`, `dlq replay`, `dlq purge`, `detokenize`, `keys rotate`, `purge` and `audit export` each need `--role NAME`, a role whose `may` lists the operation (`dlq_raw`, `dlq_replay`, `dlq_purge`, `detokenize`, `keys_rotate`, `purge`, `audit_export`), and that role's key in `SLUICE_ROLE_KEY` (or `--role-key ${file:...}`), whose SHA-256 is the role's `key_sha256`. The message says which of these was missing and which roles may; the refusal is recorded in the audit log (`access_refused`: the operation, the role given and why, never a key).";

    NOTHING_TO_PURGE = "RT035", RunError, "nothing to purge",
        "`sluice purge PIPELINE` removes what the pipeline's `retention:` says has expired (`retention: {dlq: 30d}`), and with `--subject ID` one person's data. The pipeline declares no `retention.dlq` and no `--subject` was given, so there is nothing it could remove. Add a retention period, or name the subject.";

    CONNECTION_UNKNOWN = "RT036", RunError, "no such connection",
        "`sluice connect NAME PIPELINE` names a connection the pipeline's `connections:` does not declare, or one that needs no authorization (`auth: api_key`). The message lists the declared connections.";
    NOT_CONNECTED = "RT037", RunError, "connection not authorized yet",
        "An OAuth connection has no tokens in the state store: it was never authorized, its tokens were sealed under a key that is no longer the connection's `token_key`, or the authorization server revoked the refresh token (`invalid_grant`). Run `sluice connect NAME PIPELINE` and authorize in the browser.";
    OAUTH_REFUSED = "RT038", RunError, "authorization server refused or unreachable",
        "The token endpoint answered an OAuth error (its `error` code is given, such as `invalid_client` for a wrong client id or secret, or `invalid_grant` for a code or refresh token that is expired, used or revoked), answered something that is not a token response, or could not be reached. No token, code or secret is shown. Check the connection's `client_id`, `client_secret` and `token_url`; for `invalid_grant` authorize again with `sluice connect`.";
    OAUTH_CALLBACK = "RT039", RunError, "authorization did not come back",
        "`sluice connect` waits on `http://127.0.0.1:PORT/callback` for the browser to come back from the authorization server. It came back with an error (the user denied access: `access_denied`), with a `state` that is not the one this run sent (a forged or stale redirect: refused, nothing is exchanged), without a code, or not within `--timeout`. Run `sluice connect` again and finish the authorization in the browser.";
    REFRESH_TOKEN_EXPIRING = "RT040", Warning, "refresh token near its hard expiry",
        "Some providers' refresh tokens have a hard expiry that refreshing does not extend (QuickBooks says it in `x_refresh_token_expires_in`; `refresh_token_lifetime` declares it for others). Within the connection's `warn_before` (default 14 days) of that date, `sluice connect --status` and every refresh warn, naming the connection and the date. Re-authorize with `sluice connect NAME PIPELINE` before then, or the pipeline stops with RT037.";
    CONNECTION_TOKEN_CORRUPT = "RT041", RunError, "a connection's stored tokens do not decrypt",
        "A connection's tokens are sealed (AES-256-GCM) under a key of `token_key` and bound to the connection's name; the row is under a configured key but does not decrypt: it was altered, or copied from another connection. Authorize again with `sluice connect NAME PIPELINE`, which replaces it.";

    WEBHOOK_REFUSED = "RT042", Dlq, "webhook delivery refused",
        "`sluice serve` refused a delivery before reading it: no or a bad signature, a signed time outside the tolerance (older or in the future), a body over `max_body`, or a verified body that is not the provider's event format. The sender got a 4xx answer; the DLQ entry and the audit entry name the reason and never hold the body. Check the endpoint's `secret` (or Plaid's `key_url` and credentials) and the server's clock.";
    WEBHOOK_EVENT = "RT043", Dlq, "queued webhook event unreadable",
        "An event in the state store's webhook queue is not as `sluice serve` queues it (the row was edited or written by another program, or its encrypted body does not decrypt under the key it names: altered, or moved from another row). It goes to the DLQ and is marked processed.";
    WEBHOOK_SERVE = "RT044", RunError, "`sluice serve` cannot serve this pipeline",
        "`sluice serve` serves the `webhook` sources of a pipeline (and `sluice run` refuses them): the pipeline has none, the `--listen` address is not `ip:port`, the port is taken, or the TLS certificate or key cannot be loaded.";
    WEBHOOK_UNENCRYPTED = "RT045", RunError, "webhook queue would hold bodies unencrypted",
        "`sluice serve` keeps every accepted webhook event in the state store's queue until the pipeline has processed it, and webhook bodies hold customer and patient data (a Stripe customer's name and e-mail, a FHIR resource). They are encrypted at rest (AES-256-GCM) under the pipeline's `dlq.encryption_key` (a secret reference, `${VAR}` or `${file:path}`, to 32 random bytes as 64 hex digits: `openssl rand -hex 32`), which `sluice keys rotate` also rotates. The pipeline's DLQ has no key: add one. A DLQ with `plaintext_reason` (synthetic or test data only) keeps the queue in plain text too, and `sluice serve` says so when it starts.";
    // RT046-RT048: the AWS shared credentials and config files of `${aws-sm:...}` references
    // (next to RT404-RT408, which were full).
    AWS_PROFILE_MISSING = "RT046", RunError, "AWS profile not found",
        "`AWS_PROFILE` names a profile that is in neither the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`, sections `[NAME]`) nor the config file (`AWS_CONFIG_FILE`, else `~/.aws/config`, sections `[profile NAME]`). The message names both files and the help lists the profiles they have; no value of either file is shown. Fix `AWS_PROFILE`, or add the profile (`aws configure --profile NAME`).";
    AWS_SHARED_FILE_MISSING = "RT047", RunError, "AWS shared credentials file not found",
        "`AWS_PROFILE` names a profile, but neither the shared credentials file nor the config file exists where Sluice looked (`AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE`, else `~/.aws/credentials` and `~/.aws/config` under `HOME`). Create them (`aws configure --profile NAME`), point the variables at them, or unset `AWS_PROFILE` and set `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.";
    AWS_SHARED_FILE_MALFORMED = "RT048", RunError, "AWS shared credentials or config file malformed",
        "The shared credentials or config file exists but is not INI as `aws configure` writes it (`[section]` lines, `key = value` lines, `#` or `;` comments; an indented line continues a nested setting), is not UTF-8 text, or cannot be read. The message gives the file and the number of the first bad line, never its text (it may hold a key). Fix that line, or point `AWS_SHARED_CREDENTIALS_FILE` / `AWS_CONFIG_FILE` at another file.";
    INVALID_UTF8 = "RT101", Dlq, "message bytes not valid in its character set",
        "The message bytes are not valid in the character set chosen for it (the profile's `encoding`, or with `encoding: auto` its byte-order mark, MSH-18, or UTF-8): for example invalid UTF-8, or a byte above 0x7F in ASCII. The finding (`HL7011`) gives the byte offset of the first invalid byte in the file. Set the profile's `encoding` to what the sender really uses.";
    PARSE_ERROR = "RT102", Dlq, "message could not be parsed",
        "The HL7 codec rejected the message (or bytes outside any message, such as garbage before the first MSH). The DLQ entry carries the codec's own code (`HL7xxx`) and the offset.";
    VERSION_NOT_ACCEPTED = "RT103", Dlq, "HL7 version not accepted",
        "MSH-12 names a version that is not in the profile's `accept_versions`.";
    SEPARATOR_NOT_ALLOWED = "RT104", Dlq, "segment separator not allowed",
        "The message uses a segment separator (CR, LF, CRLF, or a mix) that the profile's `segment_terminators` does not allow.";
    UNEXPECTED_SEGMENT = "RT105", Dlq, "unexpected segment",
        "A segment is neither defined by the HL7 schema of the message's version nor declared as a Z-segment in the profile, and the profile says `unexpected_segments: fail`.";
    SEGMENT_SKIPPED = "RT106", Warning, "unexpected segment skipped",
        "A segment the schema does not define was dropped because the profile says `unexpected_segments: skip`.";
    UNKNOWN_VERSION = "RT107", Dlq, "HL7 version unknown",
        "The message's version has no schema tables, so its segments cannot be checked.";
    CHARSET_UNSUPPORTED = "RT108", Dlq, "character set not supported",
        "With `encoding: auto`, MSH-18 names a character set Sluice does not support (the finding, `HL7012`, gives its offset). Nothing is guessed: set the profile's `encoding` to decode this sender's messages in a fixed set.";
    ENVELOPE = "RT109", Dlq, "batch or file envelope problem",
        "A batch or file envelope (FHS/BHS/BTS/FTS) is malformed (`HL7021`: a trailer without its header, nested or unclosed headers) or its trailer's count disagrees with what was read (`HL7020`). The DLQ entry is an extra record holding the envelope segment: the messages themselves are processed as usual, and the run still balances (the entry counts as one record read and one DLQ record).";
    CONTINUATION = "RT110", Dlq, "continuation message incomplete",
        "A fragmented message (DSC continuation pointer, MSH-14, ADD segments) could not be reassembled: its continuation never arrived (`HL7022`) or a continuation has no first part (`HL7023`). The entry's raw bytes hold every fragment read, so nothing is lost.";
    MLLP_GARBAGE = "RT111", Dlq, "bytes outside any MLLP frame",
        "An MLLP connection sent bytes that are not inside a VT ... FS CR frame (line breaks and spaces between frames are ignored). They are kept in the DLQ entry (the first 1024 bytes) and the connection goes on; no ACK is sent for them.";
    MLLP_TRUNCATED = "RT112", Dlq, "MLLP frame truncated",
        "A frame started (VT) but did not end with FS CR: the connection closed, went idle past `idle_timeout`, or a new frame started. The bytes received go to the DLQ; the sender gets an AR when an MSH segment can be read from them, else the connection is closed.";
    MLLP_OVERSIZE = "RT113", Dlq, "MLLP frame too large",
        "A frame is longer than the source's `max_frame_bytes`. Its bytes are dropped as they arrive (memory stays bounded); the DLQ entry keeps the first 1024 and the sender gets an AR (or a closed connection when no MSH can be read).";
    SEGMENT_DROPPED = "RT114", Warning, "segment that could not be parsed was dropped",
        "The source's parser profile says `bad_segments: drop`, and a segment of this message could not be parsed (the warning names the codec's code, usually HL7004: a stray line of text or an invalid segment id, and the segment's number). The segment was left out and the rest of the message went on; the segment's bytes are in the DLQ as an entry of their own (`part`: the record and segment number; stage: the source; encrypted like every DLQ payload), and the record's audit entry lists it under `dropped`. Such an entry cannot be replayed on its own (RT025). Fix the sender; with `bad_segments: reject` (the default) the whole message would have gone to the DLQ instead.";
    FHIR_UNREADABLE = "RT115", Dlq, "FHIR resource or entry could not be read",
        "A `format: fhir` source met input that is not a FHIR resource: a Bundle entry or NDJSON line that is not valid JSON (or too large, or too deeply nested), a file that is not JSON or XML at all, or a JSON value without a `resourceType`. The finding keeps the codec's code (`FHIR001` JSON syntax, `FHIR003` too large, `FHIR006` XML, `FHIR007` not a resource) and the reason gives the byte offset in the file, never the content. The other entries of the Bundle (the other lines) went on; the piece's bytes are in the DLQ, encrypted. For a syntax error in a Bundle's members outside `entry`, the offset counts within those members. Fix the sender, then `sluice dlq replay` the entry.";
    FHIR_INVALID = "RT116", Dlq, "FHIR resource is not valid",
        "A resource read by a `format: fhir` source broke FHIR R4 validation (strict mode: any error; lenient: anything but unknown elements and wrong JSON shapes) or the source's `profile`. One finding per error, each with its `FHIRnnn` code and FHIRPath-style location (`Bundle.entry[2].resource.gender`); `sluice explain FHIR106` explains each code. The rest of the Bundle went on. Warnings (such as an unresolved reference) do not reject a resource: they are on the record's `warnings`.";
    FHIR_REST_UNREACHABLE = "RT117", RunError, "FHIR server unreachable",
        "A `fhir.rest` source could not get an answer from its server (refused or dropped connections, timeouts, names that do not resolve) within its `retry` policy. The message names the source, the table and the URL without its query. The tables synced before kept their new cursors; this table kept its old one, and the records already fetched were finished. Run again once the server answers: nothing is lost, and a sink that upserts by id gets nothing twice.";
    FHIR_REST_AUTH = "RT118", RunError, "FHIR server refused the credentials",
        "The FHIR server answered 401 or 403 to a `fhir.rest` search. The message names the source, the table and the status, never the credential. Check the secret the source's `auth` names (an expired token, a key for another environment) and the account's access to the resource type. A 403 to an OAuth connection's token (other than one saying `error=\"invalid_token\"`, which is refreshed like a 401: see RT120) means the token is valid but lacks what this search needs, typically `insufficient_scope`: grant the connection's `scopes` (or the account) read access to the table's resource type, or drop the table. The table's cursor was kept.";
    FHIR_REST_FAILED = "RT119", RunError, "FHIR sync failed",
        "A `fhir.rest` table could not be synced: the server kept answering an error status (5xx or 429 past the `retry` policy, or a 4xx), answered something that is not a searchset Bundle, pointed its next page at another origin than `base_url`, or said it found more resources than it gave without a next link. The message says which, with the table and URL (without its query). The table's cursor was kept: fix the cause and run again; nothing is lost.";
    FHIR_REST_TOKEN_REFUSED = "RT120", RunError, "FHIR server refused a freshly refreshed OAuth token",
        "A `fhir.rest` source with `auth: {type: oauth2, connection}` got its token refused (a 401, or a 403 whose `WWW-Authenticate` header says `error=\"invalid_token\"`, as some servers answer an expired token), refreshed its access token from the connection's token endpoint once, asked again, and was refused again: the token endpoint issues tokens the FHIR server does not accept. The message names the source, the connection, the table and the URL without its query, never a token. Check the connection's `client_id` and `scopes` and the issuer or audience the server accepts. The table's cursor was kept: nothing is lost.";
    FHIR_REST_NO_HISTORY = "RT121", Warning, "FHIR server does not support `_history`",
        "A `fhir.rest` source finds deletions in cdc tables through the type-level history (`GET [Type]/_history?_since=...`). This server refused it (400, 404, 405, 501) or answered something that is not a history Bundle, so deletions on the server are not seen: rows of deleted resources stay in the sinks. Said once per source and run; the sync of changes goes on. Ask the server's operators to enable the history interaction, or clear deleted rows by other means.";
    OBJECT_TAG_FAILED = "RT122", Warning, "object not tagged after its run",
        "A source's `after: {tag}` could not tag an object once its run had completed: the store refused or could not be reached (the message says which, without the request's details), or the object already carries so many tags that adding the source's would pass the store's limit of 10 (S3 and Azure Blob alike). Its records are durable and it is not read again (a run took it); a warning with this code, the source's name and the cause (`tag_error`, never the object's key) is logged, and the next completed run of the pipeline tries again. With `move_to` too, an object that could not be tagged is left in place (moved once it is tagged), so a moved object always carries the tags; on Azure, whose copy drops tags, a copy that could not be given them (`tag_error` starts with `the moved copy`) is the same warning, and the original stays in place for the next run to move again.";
    LEDGER_UNREACHABLE = "RT123", RunError, "reconciliation ledger unreachable",
        "`sluice reconcile` with `outputs.ledger` could not connect to the ledger's PostgreSQL server within 10 seconds: the server refused the connection or did not answer, the login was refused, the database does not exist, or the `url` secret is not a `postgres://` URL (with `sslmode` absent or `disable`: Sluice connects to PostgreSQL without TLS, as a `postgres` sink does). The message names the secret reference, never the URL. Nothing was written: the output files are as the previous run left them, the table unchanged. Fix the cause and run `sluice reconcile` again.";
    LEDGER_TABLE_UNUSABLE = "RT124", RunError, "reconciliation ledger table cannot be updated",
        "The table `outputs.ledger` names for an input cannot take the outcome: it does not exist, lacks a `key` column or the `reconciled` column, its `reconciled` column is not `boolean`, or no unique index or primary key lies within the `key` columns (a key could then name several rows). The message names the table and what is missing. Nothing was written: the output files are as the previous run left them. Point `table` at the table the ledger pipeline's `postgres` sink writes (`canonical/financial-transaction@1` rows have `reconciled`, and the sink's `key` gives the table its primary key), or fix `key`.";
    KAFKA_UNREACHABLE = "RT125", RunError, "Kafka brokers unreachable",
        "A `kafka` source or sink could not reach any of its `brokers` when the run started (refused, timed out, name not resolved) within 10 seconds. The message names the component and its brokers. A failed TLS handshake is RT181, a refused login RT127. Nothing was read or written; start the run again once the brokers answer. Once a run is going, a broker that goes away is retried by the client without end (records wait, nothing is lost).";
    KAFKA_TOPIC_MISSING = "RT126", RunError, "Kafka topic missing",
        "A topic a `kafka` source consumes or a `kafka` sink produces to does not exist on the brokers. Sluice does not create topics (their partition count decides how far a consumer group scales out): create it (`kafka-topics.sh --create`, `tansu topic create`, your cloud console), then start the run again.";
    KAFKA_AUTH = "RT127", RunError, "Kafka authentication failed",
        "The brokers refused the client's credentials (SASL user name or password, or the mechanism) or the topic's or group's access rights. The message names the component and the user name, never the password. Check the secret the `password` reference names, and the ACLs for the topic and consumer group.";
    KAFKA_CONSUMER_FAILED = "RT128", RunError, "Kafka consumer failed",
        "The consumer hit an error it cannot go on from (a fatal client error, or committing offsets failed for a reason other than a rebalance). The run stops like on a signal: records read so far are finished and the offsets of those made durable are committed where possible; the rest are read again by the next run (at least once).";
    KAFKA_EMPTY_MESSAGE = "RT129", Dlq, "Kafka message without a payload",
        "A Kafka message had no value (a tombstone, or a producer that sent only a key). There is no message to parse, so it goes to the DLQ (topic, partition and offset in the record id) and its offset is committed like any other.";
    AMQP_UNREACHABLE = "RT130", RunError, "AMQP server unreachable or refused the login",
        "An `amqp` source or sink could not open its connection when the run started, within 10 seconds: the server refused the connection or did not answer, the login was refused (user name, password or virtual host), or the `url` secret is not an `amqp://` or `amqps://` URL. The message names the component and the server (host, port, virtual host; never the user's password) and what went wrong. A failed TLS handshake is RT176, unusable `tls` settings RT177. Nothing was read or written; fix the cause and start the run again.";
    AMQP_NOT_FOUND = "RT131", RunError, "AMQP queue or exchange missing",
        "The queue an `amqp` source consumes, or the exchange an `amqp` sink publishes to, does not exist on the server's virtual host, or the user may not use it. Sluice does not declare queues or exchanges (their durability, bindings and policies are the broker operator's choice): declare it (`rabbitmqadmin declare queue name=adt durable=true`, your definitions file), then start the run again.";
    AMQP_CONSUMER_FAILED = "RT132", RunError, "AMQP consumer failed",
        "An `amqp` source lost its connection or channel while consuming (the server stopped, closed the connection, deleted the queue, or cancelled the consumer), or an acknowledgement could not be sent. The run stops like on a signal: records read so far are finished; every message not acknowledged is delivered again by the server to the next run (at least once; an idempotent sink holds each record once).";
    AMQP_EMPTY_MESSAGE = "RT133", Dlq, "AMQP message without a body",
        "An AMQP message had an empty body. There is no message to parse, so it goes to the DLQ (queue and delivery tag in the record id) and is acknowledged like any other.";
    AMQP_SINK_FAILED = "RT134", RunError, "AMQP sink could not publish a batch",
        "An `amqp` sink could not get every message of a batch confirmed: the server negatively acknowledged messages (nack) again after retries, returned one as unroutable (no queue is bound for its routing key on the exchange), did not confirm within 2 minutes, or the connection was lost. The run stops before the batch counts as delivered, so a live source's messages are not acknowledged and are delivered again to the next run (at least once: messages the server had already confirmed are published again).";

    OBJECT_STORE_UNREACHABLE = "RT135", RunError, "object store unreachable",
        "Listing or reading an object-store source (`s3://`, `az://`, `gs://`) failed after retries: the endpoint refused the connection, timed out, or answered with a server error. The message names the store and the operation, never a credential. Nothing after the last checkpoint is lost: with a state store, `sluice run --resume` continues once the store is reachable; without one, run again.";
    OBJECT_STORE_DENIED = "RT136", RunError, "object store refused access",
        "The object store refused the request: the credentials are wrong or missing (unauthenticated), or they may not list or read that bucket (permission denied). The message names the store and the operation, never a credential. Check the secret references in the source's `store` block (or the environment's `AWS_*`/`AZURE_*`/`GOOGLE_*` variables) and the bucket's policy.";
    OBJECT_VANISHED = "RT137", Warning, "object vanished or changed while it was read",
        "An object was deleted or overwritten (its ETag changed) between the listing and the end of its read. The records read from it before that are processed as usual; the rest of the old version cannot be read any more and is left out, the run goes on with the next object, and a warning with this code is logged (object URLs stay out of the logs, like every field outside the log's allowlist; the run's audit log names the objects its records came from). A new version of the object (new ETag) is listed and read in full by the next run.";
    OBJECT_STORE_CONFIG = "RT138", RunError, "object store cannot be configured",
        "The `store` block (with its secrets resolved) or the environment does not make a usable client: a region or endpoint the client refuses, an Azure account without a key, a GCS service account key that is not valid JSON. The message names the source or sink and the store, never a credential value.";
    OBJECT_MOVE_FAILED = "RT139", Warning, "object not moved after its run",
        "A source's `after: {move_to}` could not move an object once its run had completed (the store refused the copy or the delete, or could not be reached). Its records are durable and it is not read again (a run took it); a warning with this code and the source's name is logged, and the next completed run of the pipeline tries the move again.";
    X12_REJECTED = "RT140", Dlq, "X12 transaction set rejected",
        "A `format: x12` source found an error in a transaction set (strict mode: any envelope or implementation-guide error; lenient: only what lenient X12 checks keep as errors), or in the functional group (GS/GE) or interchange (ISA/IEA) around it. One finding per error, each with its `X12nnn` code and where it is (segment number in the set, element position, loop), never the value; `sluice explain X12058` explains each code. The other sets of the file went on. The DLQ entry's bytes are the set alone in an interchange (its ISA and GS, then GE and IEA counting one), which `sluice validate --format x12` reads. With `acks:`, the set is answered `R` in the 999 (IK5) with IK3/IK4 details.";
    X12_UNREADABLE = "RT141", Dlq, "bytes outside any X12 interchange",
        "A `format: x12` source met bytes that are not an X12 interchange: text before or between interchanges, or an ISA header that cannot be read (its finding keeps the codec's code: `X12001` truncated, `X12002`..`X12004` a broken ISA). The reason gives the byte offset and length, never the content; the bytes are in the DLQ, encrypted. The interchanges around them went on.";
    X12_ACK_FAILED = "RT142", RunError, "X12 acknowledgment cannot be written",
        "A `format: x12` source with `acks:` could not write an acknowledgment file (the directory is not writable, the disk is full) or could not reserve its control numbers in the state store. The run stops, as an interchange left unanswered would be lost to the sender. Fix the directory or the store and run again (`--resume` goes on from the last checkpoint; the acknowledgments of the files read again are written again, with new control numbers).";
    X12_LOOP_ABSENT = "RT143", Dlq, "X12 set without the loop its records are cut at",
        "A `format: x12` source cuts the sets of a guide into one record per occurrence of a loop (a map stage's mapping has `each: loop(2300)`), and a set holds no occurrence of that loop (an 837 without claims, or a set so broken that no claim could be placed). The set goes to the DLQ whole, as one record, with its own findings when it has some: nothing of it is lost, and `sluice validate --format x12` on the DLQ entry's bytes says what is wrong.";
    X12_NOT_ONE_OCCURRENCE = "RT144", Dlq, "X12 record holds not exactly one occurrence of the loop mapped",
        "A mapping with `each: loop(ID)` maps one occurrence of the loop per record, and its source cuts every set there. A record holding none, or several (a whole set replayed from a DLQ entry written before the mapping had `each`, or fed by a source the compiler could not wire), would give a wrong record: it goes to the DLQ with the number of occurrences it holds. Replay it through a pipeline whose source cuts the sets (a new run reads the file again).";
    BUS_NO_RECORD = "RT145", Dlq, "bus message with no record in it",
        "A `kafka` or `amqp` source with `format: x12` cuts each message (one interchange) into one record per transaction set, as a `files` source cuts a file. This message is a whole interchange holding no transaction set (an ISA and IEA with nothing between them, or only functional group envelopes), so no record could be cut from it: the message goes to the DLQ whole, as one record, and is then acknowledged (committed) like any other. Bytes that are no interchange at all go to the DLQ as RT141.";
    X12_SPILL_FAILED = "RT146", RunError, "X12 sets cannot be parked in the spill file",
        "A `format: x12` source holds the transaction sets of an interchange until its IEA (their acceptance depends on the group's and interchange's trailers); beyond 8 MiB it parks them in a spill file in the temporary directory (`TMPDIR`, else `/tmp`): an unnamed file, encrypted under a key held only by the running process. That file could not be created, written or read back (the directory is missing or not writable, the disk is full, or the file was changed under the run). The run stops rather than lose or alter a set. Point `TMPDIR` at a directory with room for the largest interchange you read, and run again (`--resume` goes on from the last checkpoint).";
    STRIPE_REQUEST_FAILED = "RT150", RunError, "Stripe API request failed",
        "A list request to the Stripe API failed for good: refused (401 with an API key: the key is wrong, rolled or revoked; 403: the key lacks the permission; 400/404: the object type or cursor is not known), or still failing after the retries (429 rate limits and 5xx are retried with backoff, after the `Retry-After` Stripe gives, unless `Stripe-Should-Retry: false`). The message gives the object, the HTTP status and Stripe's error `type` and `code`, never its message text (which may quote the key) nor the key. Records already read are kept; the cursor does not move past them.";
    STRIPE_PARTIAL_RECORD = "RT151", Warning, "Stripe object with missing or odd fields",
        "A Stripe object came without an `id` or `created`, or with an `amount` that is not a whole number of minor units (cents): it is kept, with this warning naming the object type and the field, since partial data is still data. An object without `id` cannot be deduplicated across the lookback window.";
    STRIPE_OBJECT_REJECTED = "RT152", Dlq, "Stripe object rejected",
        "A `stripe` source received an item of a list that cannot be a record: not a JSON object, without a string `id`, of another `object` type than the list holds, or with an `amount` (or `created`) that is not a whole number. It goes to the DLQ (its bytes encrypted) with this code and a reason naming the list and the field, never a value; the other objects of the page go on, and the list's cursor moves past it as past a delivered object.";
    STRIPE_SYNC_STOPPED = "RT153", RunError, "Stripe sync stopped before its records were durable",
        "A `stripe` source's run ended (a sink failed, the run was stopped) before every record of an object list was durable in the sinks or the DLQ. That list's cursor was not saved: the next run reads those objects again, and an idempotent sink (a `postgres` upsert by id) ends up with each once.";
    QUICKBOOKS_REQUEST_FAILED = "RT154", RunError, "QuickBooks Online API request failed",
        "A query or change data capture request to QuickBooks Online failed for good: refused (401 after the connection's token was refreshed once: the authorization was revoked, run `sluice connect` again; 403: the app or user lacks access to the company; 400: the query or `minorversion` is not accepted), or still failing after the retries (429 throttling and 5xx are retried with growing backoff, as QuickBooks gives no reliable `Retry-After`). The message gives the entity, the HTTP status and the Fault's `type` and error `code`, never its message text (which may quote data) nor a token. Records already read are kept; the cursor does not move past them.";
    QUICKBOOKS_PARTIAL_RECORD = "RT155", Warning, "QuickBooks entity with missing or odd fields",
        "A QuickBooks entity came without a `SyncToken` or `MetaData.LastUpdatedTime`, or with a `TotalAmt` that is not a number: it is kept, with this warning naming the entity and the field, since partial data is still data. An entity without `LastUpdatedTime` does not move the cursor; one without `SyncToken` cannot be told apart from its later versions within the lookback window.";
    QUICKBOOKS_ENTITY_REJECTED = "RT156", Dlq, "QuickBooks entity rejected",
        "A `quickbooks` source received an item that cannot be a record: not a JSON object, or without a string `Id` (or, for a line fed by `sluice test` to a source of several entities, without saying which entity it is: wrap it as QuickBooks' read endpoint does, `{\"Purchase\": {...}}`). It goes to the DLQ (its bytes encrypted) with this code and a reason naming the entity and the field, never a value; the other entities go on.";
    QUICKBOOKS_SYNC_STOPPED = "RT157", RunError, "QuickBooks sync stopped before its records were durable",
        "A `quickbooks` source's run ended (a sink failed, the run was stopped) before every record of an entity was durable in the sinks or the DLQ. That entity's cursor was not saved: the next run reads those entities again, and an idempotent sink (a `postgres` upsert by id) ends up with each once.";
    PLAID_REQUEST_FAILED = "RT158", RunError, "Plaid API request failed",
        "A `/accounts/get` or `/transactions/sync` request to Plaid failed for good: refused (400 `INVALID_API_KEYS`: the `client_id` or `secret` is wrong or of another environment; `INVALID_ACCESS_TOKEN`: the Item's access token is wrong or revoked), still failing after the retries (429 `RATE_LIMIT_EXCEEDED` and 5xx are retried with growing backoff), or the Item kept changing during every pagination (`TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION`, each of which starts the pagination again from the saved cursor, up to five times). The message gives the endpoint, the HTTP status and Plaid's `error_type` and `error_code`, never its `error_message` (which may quote data) nor a key or token. The saved cursor does not move: the next run reads the same changes again.";
    PLAID_ITEM_LOGIN_REQUIRED = "RT159", RunError, "Plaid Item needs its user to log in again",
        "Plaid answered `ITEM_LOGIN_REQUIRED`: the bank asks the Item's user to log in again (a changed password, a new multi-factor prompt, an expired consent). Only the user can fix it: send them through Plaid Link in update mode with the Item's access token, then run again. It is not retried; the cursor was kept, so the next run loses nothing.";
    RECONCILE_UNREADABLE = "RT160", Dlq, "reconciliation input line unreadable",
        "A line of a reconciliation input is not a JSON object. It goes to the review output with reason `unreadable`, its file and line number (never its content), and counts as unmatched, so the summary still accounts for every line read.";
    RECONCILE_INVALID_FIELD = "RT161", Dlq, "reconciliation field missing or unreadable",
        "A record of a reconciliation input lacks a field matching needs (its id, amount, currency or date), or holds one that cannot be read: an amount that is not whole minor units (`amount_unit: minor`) or has more decimal places than its currency, a currency that is not three letters, a date that is neither `YYYY-MM-DD`, `CCYYMMDD`, an RFC 3339 date-time nor Unix seconds. It goes to the review output with reason `invalid_field`, naming the field, never its value.";
    RECONCILE_IO = "RT162", RunError, "reconciliation input or output cannot be used",
        "`sluice reconcile` could not read an input file or write an output file (missing, not readable, a folder that cannot be created). Nothing was written; fix the path in the spec and run again. The message names the file, never a record.";
    CSV_HEADER_MISMATCH = "RT163", RunError, "CSV file started with other columns",
        "A `csv` sink appends to a file that already has lines (a live feed such as `fhir.rest`, `kafka` or `sluice serve`, which add to the same file run after run), and the file's header line names other columns than the sink writes now: the mapping or the output schema changed, or the sink gained the `_deleted` column that cdc deletions add. Rows under the old header would be read with the wrong column names, so nothing is written. The message says how many columns each has and the first difference (column names only). Move the file away, or point `path` at a new file, and run again: the new file gets the new header.";
    PLAID_RECORD_REJECTED = "RT164", Dlq, "Plaid object rejected",
        "A `plaid` source received an item that cannot be a record: not a JSON object, or without its string id (`transaction_id` for a transaction, `account_id` for an account). It goes to the DLQ (its bytes encrypted) with this code and a reason naming the object and the field, never a value; the other objects go on.";
    PLAID_SYNC_STOPPED = "RT165", RunError, "Plaid sync stopped before its records were durable",
        "A `plaid` source's run ended (a sink failed, the run was stopped) before every record of an Item's table was durable in the sinks or the DLQ. That table's cursor was not saved: the next run reads those changes again from the saved `/transactions/sync` cursor, and an idempotent sink (a `postgres` upsert by `transaction_id`) ends up with each once.";
    PLAID_PARTIAL_RECORD = "RT166", Warning, "Plaid transaction with missing or odd fields",
        "A transaction came without `merchant_name`, without a category (`personal_finance_category` and `category`), or with an `amount` that is not a number: it is kept, since partial data is still data, and the sync's log line says how many, naming the field, never a value.";
    PLAID_ACCOUNT_GONE = "RT167", Warning, "Plaid account no longer returned",
        "An account the last run of a `plaid` source's `accounts` table delivered is no longer in the Item's `/accounts/get`: Plaid returns only open accounts, and gives an account a new `account_id` when it cannot match it with the bank's data (a renamed or merged account). The old account becomes a deletion record (a `postgres` sink with `write: upsert` deletes its row by its key, an `append` one leaves it out; other sinks get `\"_deleted\": true`), so it is not kept twice, and this warning names the source, the Item's name and how many accounts went, never an account's name or number.";
    LEDGER_WRITE_FAILED = "RT168", RunError, "reconciliation ledger not updated",
        "PostgreSQL refused or lost the update of `reconciled` in a ledger table (the message gives the table and the SQLSTATE, never PostgreSQL's text, which may quote a value): a key value that is not of its column's type, a missing privilege (UPDATE on the table), a lost connection, a failed commit. The update of every table is one transaction: it was rolled back, nothing in any table changed, and the output files were not replaced either (they are staged beside their targets and put in place only after the commit). Fix the cause and run `sluice reconcile` again.";
    LEDGER_ROWS_MISSING = "RT169", Warning, "reconciled records missing from the ledger table",
        "Records of an input with a ledger table have no row of their key in it: the table was loaded from another sync than the reconciled file, or `key` names the wrong columns. The rows that are there are updated all the same; the terminal gives how many are missing per input (never their keys), and the summary's `ledger` block lists each missing key, so they can be found. Load the table from the same sync (the ledger pipeline's `postgres` sink) and run `sluice reconcile` again: it writes only what differs.";
    LEDGER_NO_KEY = "RT170", Warning, "reconciled record without its ledger key",
        "A record of an input with a ledger table has no value for one of the `key` columns (the record's top-level field of the column's name is missing, null, a list or an object), or is a line that could not be read: its row cannot be found, and it is not written back. The terminal says how many per input; the summary's `ledger` block counts them as `no_key`. Reconcile the rows the ledger pipeline wrote (`canonical/financial-transaction@1` rows carry `source` and `id`), or fix `key`.";
    STATEMENTS_ACCOUNT_UNKNOWN = "RT172", Warning, "transaction of an account the accounts file does not hold",
        "`sluice reconcile` with `outputs.statements` lists each transaction in the document of its account, and this transaction names an account id that no row of the `accounts` file has (reason `account_unknown`), or one whose last row there is a deletion (`\"_deleted\": true`: closed, or given a new id by the provider; reason `account_closed`). It is not lost: it goes to the `unassigned` output with its id, account id, amount, date and `reconciled`, and the terminal says how many (never which). Sync the accounts again (the `plaid-accounts` or `quickbooks-accounts` pipeline) so the file holds every account, or check the input's `account` field.";
    STATEMENTS_ACCOUNT_UNREADABLE = "RT173", Warning, "accounts file line unreadable",
        "A line of the `accounts` file of `outputs.statements` is not a JSON object, or has no `id` or no `source` (an account is its provider and its id together): it cannot be an account. It goes to the `unassigned` output with its file and line number (never its content), and the terminal says how many. Transactions of the account it may have been are then reported as RT172. The accounts file should be what a `plaid-accounts` or `quickbooks-accounts` pipeline's `jsonl` sink wrote (`canonical/financial-account@1` rows).";
    STATEMENTS_NO_ACCOUNT = "RT174", Warning, "transaction without an account id",
        "A transaction of the input `outputs.statements` lists has no value in its `account` field (missing, null or empty), so no document can hold it. It goes to the `unassigned` output (reason `no_account`) with its id, amount, date and `reconciled`; the terminal says how many. Stripe balance transactions of the platform account itself carry no account id: map them with the account id the pipeline knows, or keep them out of the statements.";
    STATEMENTS_NO_SOURCE = "RT175", Warning, "transaction without a provider",
        "A transaction of the input `outputs.statements` lists has no value in its `source` field and its input has no `default_source`: an account is known by its provider and its id together, so no document can hold it. It goes to the `unassigned` output (reason `no_source`) with its id, account id, amount, date and `reconciled`; the terminal says how many. Give the input `default_source: <provider>` for records that do not carry it.";
    AMQP_TLS_HANDSHAKE = "RT176", RunError, "AMQP TLS handshake failed",
        "An `amqp` source or sink with an `amqps://` URL could not complete the TLS handshake when the run started. The message names the cause: the server's certificate is signed by a CA this client does not trust (set `tls.ca_file` to the CA that signed it), is not valid for the URL's host name (connect with a name the certificate holds), has expired or is not valid yet (renew it, check the clock); the server requires a client certificate (set `tls.client_cert` and `tls.client_key`) or refused the one presented; or the port is not a TLS listener. Certificate verification is never skipped. The message names the component and the server (host, port, virtual host), never the URL's user or password. Nothing was read or written.";
    AMQP_TLS_SETTINGS = "RT177", RunError, "AMQP TLS settings cannot be used",
        "An `amqp` source's or sink's `tls` settings could not be used when the run started, before connecting: the CA file or client certificate cannot be read or holds no PEM certificate, the client key (from its secret reference) is not a PEM private key or does not fit the client certificate, or `tls` is set while the `url` secret holds a plain `amqp://` URL (which would not use TLS). The message names the file or the key's reference, never key material.";
    X12_UNKNOWN_PARTNER = "RT178", Dlq, "X12 interchange from an unknown trading partner",
        "A `format: x12` source with a trading-partner `profile` (`unknown_partners: reject`, the default) read an interchange whose sender (ISA06, and ISA05 where partners name a `qualifier`) is none of the profile's partners, or whose group's GS02 is not the partner's `gs_id`: every set in it goes to the DLQ with this code (finding X12068 or X12071). The reason names the positions (ISA06, GS02) and the configured partners' names and ids, never what was sent. With `acks:`, the interchange is answered with a TA1 `R` note 006 (or the group rejected in the 999). Add the partner to the profile, or write `unknown_partners: accept`.";
    X12_PARTNER_SET = "RT179", Dlq, "X12 transaction set the trading partner is not configured for",
        "The set's ST01 is not in its partner's `transaction_sets` (finding X12069): it goes to the DLQ, and the 999/997 answers it `R` with IK5/AK5 code 1 (transaction set not supported). The reason names ST01 and the partner's name and id. Add the set to the partner in the profile if it is expected.";
    X12_PARTNER_VERSION = "RT180", Dlq, "X12 functional group in a version other than the trading partner's",
        "The group's GS08 is not the partner's `version` (`5010`: GS08 005010..., `4010`: 004010..., or one full version; finding X12070): every set of the group goes to the DLQ, and the 999/997 rejects the group (AK9 `R`, AK905 2). The reason names GS08 and the partner's name, id and configured version.";
    KAFKA_TLS_HANDSHAKE = "RT181", RunError, "Kafka TLS handshake failed",
        "A `kafka` source or sink with `security.protocol: ssl` or `sasl_ssl` could not complete the TLS handshake with its brokers when the run started (within 10 seconds). The message names the cause: the broker's certificate is signed by a CA this client does not trust (set `security.ca_file` to the CA that signed it), is not valid for the broker address's host name (write a name the certificate holds), has expired; the broker requires a client certificate (set `security.client_cert` and `security.client_key`) or refused the one presented; or the port is not a TLS listener. Certificate and host name verification are never skipped. The message names the component and the brokers, never a password or key. Nothing was read or written.";
    KAFKA_TLS_SETTINGS = "RT182", RunError, "Kafka TLS settings cannot be used",
        "A `kafka` source's or sink's TLS files could not be used when the run started, before connecting: the `security.ca_file` or `security.client_cert` cannot be read or holds no PEM certificate, or the client key (from its secret reference) is not an unencrypted PEM private key. The message names the file or the key's reference, never key material.";
    OBJECT_GONE_BEFORE_AFTER = "RT184", Warning, "object gone before its `after` step",
        "A source's `after: {tag}` or `after: {move_to}` found an object that its run read gone when the run had completed and came to tag or move it: deleted, or moved away by someone else (not in the new listing, or the store answered 404 to the tag or the move), or overwritten with a new version (a new ETag, which the next run reads as a new object). Its records are durable; there is nothing left to tag or move, so the warning is said once, by the run that read the object, and no later run tries again. The log line has the source's name and the reason (`object_gone`), never the object's key (which may hold a name); the audit log gets an `object_gone` entry naming the object (`object`: its URL, `etag`, the `run` that found it gone, `reason`). If objects are expected to stay until Sluice has handled them, find who deletes or moves them (a lifecycle rule, another consumer of the bucket).";

    MESSAGE_TYPE_NOT_ACCEPTED = "RT201", Dlq, "message type not accepted",
        "The message type (MSH-9) is not in the stage's `message_types`.";
    REQUIRED_MISSING = "RT202", Error, "required value missing",
        "A `required` rule found no non-empty value at its path.";
    NOT_IN_VALUE_SET = "RT203", Error, "value not in value set",
        "A `value_set` rule found a value that is not one of the allowed values.";
    BAD_FORMAT = "RT204", Error, "value has the wrong format",
        "A `format` rule found a value that is not a valid HL7 date (YYYYMMDD), datetime (DTM), integer or decimal.";
    PATTERN_MISMATCH = "RT205", Error, "value does not match pattern",
        "A `pattern` rule found a value that does not match the regular expression (the whole value must match).";
    TOO_LONG = "RT206", Error, "value too long",
        "A `max_length` rule found a value longer than the maximum number of characters.";
    VALIDATION_FAILED = "RT207", Dlq, "validation failed (strict)",
        "A strict validate stage found at least one failing rule; every failure is listed in the DLQ entry's findings.";

    MAP_TYPE_NOT_ACCEPTED = "RT301", Dlq, "message type not accepted by mapping",
        "The message type (MSH-9) is not one the mapping accepts.";
    BAD_DATE = "RT302", Warning, "value is not a date",
        "A value converted to a date is not HL7 DT/DTM text with at least YYYYMMDD; the field is null.";
    BAD_DATETIME = "RT303", Warning, "value is not a datetime",
        "A value converted to a datetime is not HL7 DTM text (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]); the field is null.";
    BAD_NUMBER = "RT304", Warning, "value is not a number",
        "A value converted to an integer or decimal is not a number; the field is null.";
    LOOKUP_MISS = "RT305", Warning, "lookup found no entry",
        "A lookup found no entry for the value in its table and has no default; the field is null.";
    TEMPLATE_FAILED = "RT306", Warning, "template could not be rendered",
        "A template failed to render; the field is null.";
    REQUIRED_OUTPUT_EMPTY = "RT307", Dlq, "required output field empty",
        "A mapping field marked required ended up null or empty.";
    MAP_INPUT_NOT_HL7 = "RT308", Dlq, "map input is not an HL7 message",
        "A map stage received a record that is not an HL7 message. The compiler should prevent this.";
    GROUPS_FALLBACK = "RT309", Warning, "segment groups formed by the fallback rule",
        "A mapping iterates segment groups (`each: group(...)`), but the message has no bundled structure for its type and version, or does not follow it (a segment out of place). Its groups were formed by the fallback rule: an instance opens at a segment that can start the group and takes the following segments of the group until the next such segment or a segment outside the group. Check the rows of this message; validate the structure with `hl7_checks` to find the misplaced segment.";
    FHIR_DUPLICATE_ID = "RT310", Dlq, "two resources of a FHIR Bundle got the same id",
        "A FHIR mapping gave two resources of one message the same deterministic id: their `id:` key expressions had the same values. The message goes to the DLQ instead of writing a Bundle whose entries overwrite each other; add key parts that tell the instances apart (a set id such as `obs.OBX-1`, the order's `order.OBR-1`).";
    FHIR_CODE_NOT_ALLOWED = "RT311", Warning, "value is not a code of the element's required value set",
        "A FHIR mapping wrote a value read from the message to an element with a required binding (`Observation.status`, `Patient.gender`), and the value is not one of its codes. It is left out, as FHIR does not allow it; if the element is required the message goes to the DLQ (RT307). Translate the source codes with a `lookup` table whose values are the FHIR codes (the compiler checks those).";
    X12_OTHER_PARTNER = "RT312", Dlq, "X12 set from a sender other than the mapping's trading partner",
        "A mapping with `input.partner` reads one trading partner's copy of its guide (what the partner's overlays add and change), and its map stage received a set from another sender: another partner of the source's profile, or a sender that is no partner (`unknown_partners: accept`). Mapping it with a copy that is not its own could place its segments in loops it does not have, so the set goes to the DLQ whole, with the partner named in the mapping (never the sender's ids). Give each partner's sets their own source (a folder or queue per partner) and mapping, or map them with a mapping of the bundled guide.";

    CLASSED_LEAF_UNRULED = "RT401", Warning, "PHI leaf without masking rule was nulled",
        "An output value carries a PHI class but no field or class rule of the masking policy covers it; it was set to null (fail safe). The compiler should prevent this.";
    MASK_VALUE_NULLED = "RT402", Warning, "PHI value could not be masked as its rule says and was nulled",
        "A `generalize` or `shift_date` rule met a value it cannot transform: a ZIP code that is not 5 or 9 digits, a date that is not `YYYY-MM-DD`, an age that is not a number, a birth date that is not a date (`YYYY`, `YYYY-MM`, `YYYY-MM-DD...`, HL7 `YYYYMMDD...`), or a record whose `shift_date` subject field is empty. The value was set to null (fail safe), never passed on as it was. Fix the mapping so the field holds what the rule expects, or choose another action for it.";

    TOKENIZE_FAILED = "RT403", Dlq, "value could not be tokenized",
        "A `tokenize` rule could not get a token for a value because the token vault (the state store) could not be read or written. The record goes to the DLQ (never on with the value in clear); fix the state store and `sluice dlq replay` it.";
    // RT404-RT408 are secret references to AWS Secrets Manager (`${aws-sm:NAME}`), assigned in
    // this range when the mask stage's keys were their first users.
    AWS_SETTINGS_MISSING = "RT404", RunError, "AWS settings for Secrets Manager missing",
        "A secret reference `${aws-sm:...}` needs the region (`AWS_REGION` or `AWS_DEFAULT_REGION`, else the profile's `region` in `~/.aws/config`) and credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, and `AWS_SESSION_TOKEN` for temporary ones, in the environment of `sluice run`; else the keys of the profile `AWS_PROFILE`, or `default`, in `~/.aws/credentials`; profiles that assume a role, use SSO or a `credential_process` are not supported), and an endpoint override (`AWS_ENDPOINT_URL_SECRETSMANAGER`, `AWS_ENDPOINT_URL`) must be an http(s) URL without credentials. The message names what is missing, never a value.";
    AWS_SECRET_NOT_FOUND = "RT405", RunError, "secret not found in AWS Secrets Manager",
        "Secrets Manager answered `ResourceNotFoundException` for the secret a `${aws-sm:NAME}` reference names: no such name or ARN in that region (or it is scheduled for deletion). Check the name and `AWS_REGION`. The run stops before any record is read.";
    AWS_SECRET_DENIED = "RT406", RunError, "AWS Secrets Manager refused the secret",
        "Secrets Manager refused `GetSecretValue` (access denied, unknown access key, bad signature, expired token). Check the credentials in the environment and that their identity may `secretsmanager:GetSecretValue` on the secret and `kms:Decrypt` on its key. The message names the secret and AWS's error type, never a key or a value.";
    AWS_SECRET_FAILED = "RT407", RunError, "AWS Secrets Manager could not be asked",
        "A `${aws-sm:...}` reference could not be resolved: the reference names no secret, the endpoint could not be reached (network, DNS, TLS, timeout), or it answered with another error or no secret value. The message names the secret and the endpoint's host, never a value.";
    AWS_SECRET_KEY_MISSING = "RT408", RunError, "secret has no such JSON key",
        "A `${aws-sm:NAME#key}` reference takes one member of a secret whose value is a JSON object; the secret is not a JSON object or has no (non-null) member `key`. Fix the key after `#` or reference the whole secret. The message never shows the value.";

    DANGLING_COMPONENT = "RT501", Dlq, "record reached a component with no downstream",
        "A record left a component that feeds no other component and is not a sink; it is sent to the DLQ so nothing is lost. The compiler should prevent this.";

    HTTP_RETRIES_EXHAUSTED = "RT601", Dlq, "HTTP sink gave up after retries",
        "An `http` sink's request kept failing in a way worth retrying (no connection, a reset, no answer within `timeout`, 5xx, 408, 429) until its retry policy ran out: `max_attempts` attempts, or the next wait (its backoff or the server's `Retry-After`) would have ended after `max_elapsed`. Every record of that request goes to the DLQ with this code (counted as dlq, not delivered) and the run goes on. When the endpoint is back, replay them with `sluice dlq replay`.";
    HTTP_REFUSED = "RT602", Dlq, "HTTP sink request refused",
        "An `http` sink's endpoint answered with a status that will not change on a retry (401, 403, 404, 405, a redirect...), or the request could not be made (TLS, URL). The records of that request go to the DLQ, not retried. Fix the sink's `url`, `headers` or credentials, then `sluice dlq replay`.";
    HTTP_DATA_REFUSED = "RT603", Dlq, "HTTP endpoint refused the records",
        "An `http` sink's endpoint refused the content of a request (400, 409, 413, 415, 422): a data error. The records of that request go to the DLQ, not retried. The reason gives the status only (a response body may echo the data, so it is not kept); check the endpoint's logs, fix the mapping or lower `max_records` (413), then `sluice dlq replay`.";
    PG_SINK_UNREACHABLE = "RT604", RunError, "PostgreSQL sink unreachable",
        "A `postgres` sink could not connect to its server when the run started: refused, timed out, name not resolved, authentication failed, or the database does not exist. The message names the sink and its URL's secret reference (never the URL: it may hold a password) and what failed. Check the server and the value of the reference; nothing was read, and the run can simply be started again.";
    PG_SINK_PERMISSION = "RT605", RunError, "PostgreSQL sink lacks a privilege",
        "The sink's database user may not do what the sink needs: create the table (CREATE on the schema), add a missing column (owner of the table), or insert and update rows. The message names the table. Grant the privilege (or create the table as its owner with `sluice plan`'s DDL); a run that stopped here mid-way is finished with `sluice run --resume`.";
    PG_SINK_COLUMN_TYPE = "RT606", RunError, "PostgreSQL table column of another type",
        "The sink's table already exists and a column the output schema needs has another type there (`patient_dob` is `text` where the schema says `date`). Nothing is written. Change the column (`ALTER TABLE ... ALTER COLUMN ... TYPE ...`), or point the sink at another `table`; `sluice plan` shows the types the sink expects. `varchar` stands in for `text`, `timestamp` is refused for `timestamptz` (its time zone would be lost).";
    PG_SINK_ROW_REFUSED = "RT607", Dlq, "PostgreSQL refused a row",
        "The database refused one record's row: a value its column type does not accept, a constraint of the table (NOT NULL, CHECK, a foreign key, a unique index other than the sink's), or a value too long. The record goes to the DLQ and the rest of its batch is written. The reason gives the SQLSTATE, its name, and the column or constraint, never the value (PostgreSQL's own message may quote it). Fix the mapping or the table, then `sluice dlq replay`.";
    PG_SINK_WRITE_FAILED = "RT608", RunError, "PostgreSQL sink write failed",
        "Writing a batch failed for a reason that is not one row's data: the connection was lost, the server shut down, a lock timed out. The batch's transaction was rolled back and the run stopped before its checkpoint, so nothing is lost or doubled: once the server is back, `sluice run --resume` writes the batch again (rows already there are skipped by record id or updated by key).";
    PARQUET_VALUE = "RT609", Dlq, "value does not fit its Parquet column type",
        "A `parquet` sink's column is typed from the output schema (int64, double, boolean, DATE, TIMESTAMP), and the record's value there is not one: a date that is not `YYYY-MM-DD` or does not exist, a timestamp that is not RFC 3339, a number that does not parse. The record goes to the DLQ (the reason names the column, never the value) and the rest are written. Fix the mapping, then `sluice dlq replay`.";
    PARQUET_WRITE_FAILED = "RT610", RunError, "Parquet sink write failed",
        "A `parquet` sink could not write, close or rename a file in its directory (no space, no permission). The run stops before its next checkpoint; the file being written stays under its hidden temporary name and is deleted by `sluice run --resume`, which writes the records after the last checkpoint again into new files.";
    KAFKA_SINK_REFUSED = "RT611", Dlq, "Kafka broker refused a message",
        "A `kafka` sink's broker refused one record's message for a reason tied to the message (larger than the topic's `max.message.bytes`, an invalid record or key). The record goes to the DLQ and the rest of its batch is delivered. Raise the topic's size limit or fix the mapping, then `sluice dlq replay`.";
    KAFKA_SINK_FAILED = "RT612", RunError, "Kafka sink could not deliver a batch",
        "A `kafka` sink could not get a batch acknowledged: the brokers were unreachable for longer than the delivery timeout (2 minutes), the producer was fenced, or a fatal producer error. The run stops before the records count as delivered, so a live source's offsets are not committed for them: the next run reads and produces them again (at least once; the idempotent producer removes duplicates only within one producer session).";
    OBJECT_UPLOAD_FAILED = "RT620", RunError, "object-store sink upload failed",
        "A `jsonl` or `csv` sink with an object URL writes a local staging file and uploads it when the run completes (multipart for large files, so the object appears whole or not at all). The upload failed: store unreachable, access denied, or the bucket does not exist. The run is not marked completed and the staging file is kept: `sluice run --resume` finishes the run and uploads it again.";
}

/// Looks a code up in the registry.
pub fn info(code: &str) -> Option<&'static FindingInfo> {
    FINDINGS.iter().find(|f| f.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_unique_and_sorted() {
        for pair in FINDINGS.windows(2) {
            assert!(pair[0].code < pair[1].code, "{} then {}", pair[0].code, pair[1].code);
        }
        assert_eq!(info("RT101").map(|f| f.kind), Some(FindingKind::Dlq));
    }
}
