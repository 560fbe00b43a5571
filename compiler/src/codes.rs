//! The registry of diagnostic codes.
//!
//! Invariants:
//! - A code is never reused or renumbered: tools and people search for it.
//! - Ranges by phase: SL1xx loading, SL2xx spec structure, SL3xx the pipeline graph,
//!   SL4xx schemas and paths, SL5xx expressions and types, SL6xx PHI and masking,
//!   SL7xx validation rules, SL8xx test files (`sluice test`).
//! - Every code here has a `tests/ui/<code>-*/` fixture and an entry in `docs/diagnostics.md`
//!   (the `registry_is_documented` and UI tests check both).

/// One diagnostic code.
#[derive(Debug, PartialEq, Eq)]
pub struct Code {
    pub code: &'static str,
    /// Short kebab-case name, used in fixture folder names.
    pub name: &'static str,
    /// What is wrong, in one line.
    pub title: &'static str,
    /// Why it matters and how to fix it (for the docs page).
    pub explanation: &'static str,
}

macro_rules! codes {
    ($($ident:ident = $code:literal, $name:literal, $title:literal, $explanation:literal;)*) => {
        $(pub const $ident: &Code = &Code { code: $code, name: $name, title: $title, explanation: $explanation };)*
        /// Every code, in numeric order.
        pub const ALL: &[&Code] = &[$($ident,)*];
    };
}

codes! {
    YAML_SYNTAX = "SL101", "yaml-syntax", "The file is not valid YAML.",
        "The YAML parser could not read the file. The label points at the place where it stopped; the mistake is often just before it: a missing `:`, a tab used for indentation, an unclosed quote or bracket.";
    FILE_NOT_FOUND = "SL102", "file-not-found", "A referenced file cannot be read.",
        "A spec refers to another file (a mapping, rules, masking policy or parser profile) by a path relative to the referring file, and that file does not exist or cannot be read. Fix the path; it is resolved from the directory of the file that names it.";
    WRONG_TYPE = "SL103", "wrong-type", "A value has the wrong YAML type.",
        "The key expects a different kind of value: a mapping, a list, a string or a number. The message says which.";
    UNKNOWN_KIND = "SL104", "unknown-kind", "The file has no known `kind`.",
        "Every spec file starts with `kind:` set to `pipeline`, `mapping`, `profile`, `rules` or `masking`, so Sluice knows how to read it.";
    DUPLICATE_KEY = "SL105", "duplicate-key", "A key appears twice in one mapping.",
        "YAML would silently keep only one of the two values; Sluice refuses to guess which one you meant. Remove or rename one of them.";
    UNKNOWN_KEY = "SL201", "unknown-key", "Unknown key.",
        "The key is not part of the spec language at this place, usually a typo. The help names the closest known key; `docs/spec-reference.md` lists every key.";
    MISSING_KEY = "SL202", "missing-key", "A required key is missing.",
        "The component or file cannot be understood without this key. Add it; the help shows an example.";
    INVALID_VALUE = "SL203", "invalid-value", "A value is not one of the allowed values.",
        "The key accepts a fixed set of values (such as `strict` or `lenient`) or a specific format (such as `100ms` or `50/min`). The help lists what is accepted.";
    WRONG_FILE_KIND = "SL204", "wrong-file-kind", "A referenced file is of the wrong kind.",
        "A `mapping:` must name a file with `kind: mapping`, `rules:` one with `kind: rules`, `policy:` one with `kind: masking` and `profile:` one with `kind: profile`.";
    INLINE_SECRET = "SL205", "inline-secret", "A secret is written into the spec.",
        "Secrets (keys, tokens, passwords) must be referenced, never written into a spec that is committed to git: write `${VARIABLE}` and set the variable in the environment where Sluice runs. Keys that must be references (`hash_key`, credential-like header names, passwords in URLs) are checked by name, and every string value of every spec file is checked by shape: PEM private keys, Stripe (`sk_live_`, `sk_test_`, `rk_`, `whsec_`), AWS access key ids, GitHub, Slack and Google API tokens, and JSON Web Tokens are refused wherever they are written. A key that was ever committed must be revoked: git keeps it.";
    INVALID_LISTEN_ADDRESS = "SL206", "invalid-listen-address", "A listen address is not an IP address and port.",
        "A network source listens on `host:port` where host is an IP address (`127.0.0.1`, `0.0.0.0`, `[::1]`) or `localhost`, and port is 0 to 65535 (0: any free port, printed when the run starts). Host names other than `localhost` are refused so the spec says exactly which interface is exposed.";
    STATE_STORE_CHOICE = "SL207", "state-store-choice", "`state` names both or neither of `path` and `url`.",
        "A state store is either SQLite (`path: run.db`, a file on this machine, one `sluice run` per pipeline at a time) or PostgreSQL (`url: ${SLUICE_STATE_URL}`, shared by several instances). Write exactly one of the two keys; `type`, when written, must agree with it.";
    SHARED_THROTTLE_WITHOUT_STATE = "SL208", "shared-throttle-without-state", "A shared throttle needs a state store.",
        "`throttle: {rate: 10/s, shared: api}` keeps its bucket in the state store, so that every sink using the same store and the same name (in any process) draws from it. Add `state: {path: ...}` or `state: {url: ...}` to the pipeline, or remove `shared` to give the sink its own bucket.";
    PACK_SCHEMA_UNDECLARED = "SL209", "pack-schema-undeclared", "A mapping of a pack targets a schema its manifest does not list.",
        "A pack's manifest (`pack.yaml`) lists the schemas the pack targets (`schemas:`), so reviewers and tools know what it covers; every mapping in the pack's folder must read and write schemas from that list. Add the schema to `schemas`, or move the mapping to the pack it belongs to.";
    PACK_BOUNDARY = "SL210", "pack-boundary", "A mapping of a pack extends a mapping outside the pack and its base.",
        "A customer pack builds on its base pack (`extends:` in `pack.yaml`): its mappings may extend mappings of the pack itself or of its base packs, not of another customer's pack. Point `extends` at the base pack's mapping, or declare the pack it builds on in `pack.yaml`.";
    THROTTLE_KEY_PHI = "SL211", "throttle-key-phi", "A throttle is keyed by a PHI field.",
        "`throttle: {per: FIELD}` keeps one bucket per value of FIELD: the values name buckets, which a shared throttle stores in the state store and logs may show. A field that carries a PHI class (a patient id, a name) would put patient data there. Key the throttle by what the endpoint limits: a tenant, a facility, an account or realm id.";
    DLQ_LOCATION_CHOICE = "SL212", "dlq-location-choice", "`dlq` names both or neither of `path` and `store`.",
        "The DLQ is either a JSON Lines file (`path: out/dlq.jsonl`) or the `dlq_entries` table of the pipeline's state store (`store: state`). Write exactly one of the two keys.";
    DLQ_STORE_WITHOUT_STATE = "SL213", "dlq-store-without-state", "`dlq: {store: state}` needs a state store.",
        "`store: state` keeps the DLQ's entries in the pipeline's state store (SQLite or PostgreSQL), and the pipeline has no `state:` block. Add `state: {path: out/state.db}` (or `state: {url: ${SLUICE_STATE_URL}}`), or keep the DLQ in a file with `path: out/dlq.jsonl`.";
    PG_TABLE_NAME = "SL220", "postgres-table-name", "A `postgres` sink's table name cannot be used.",
        "The `table` of a `postgres` sink is `name` or `schema.name`: lower-case letters, digits and `_`, starting with a letter or `_`, at most 63 bytes per part (PostgreSQL cuts longer names silently). Sluice quotes the name in its SQL; the rule keeps it the same name in `psql` without quotes. Leave `table` out for the default, made from the output schema (`canonical/adt-message@1` -> `adt_message_v1`).";
    PG_KEY = "SL221", "postgres-key", "A `postgres` sink's key does not fit its write mode or its records.",
        "A `write: upsert` sink keeps one row per key: its `key` (or, when not written, the output schema's `@primary_key`) names top-level fields of the records that hold one value each (not a list, not a struct), and those become the table's primary key. A `write: append` sink takes no `key`: each record is a new row, made idempotent by its record id (`sluice_record_id`). Write the key, or choose the other write mode.";
    PARQUET_PARTITION = "SL222", "parquet-partition", "A `parquet` sink's `partition_by` is not a column of its records.",
        "`partition_by` names the field whose value makes each file's Hive-style directory (`admit_date=2026-11-21/`): a field of the records' output schema that holds one value (not a list, not a struct), written as its dotted path (`patient.sex`). `sluice plan` shows the sink's columns. Fix the path, or leave `partition_by` out to write every file into the sink's directory.";
    PARQUET_PARTITION_PHI = "SL223", "parquet-partition-phi", "A `parquet` sink is partitioned by a PHI field.",
        "`partition_by: FIELD` makes one directory per value of FIELD (`patient_id=52992313/`): the values become file paths, which show in directory listings, logs, error messages and object-store inventories that no masking policy covers. A field that still carries a PHI class where it reaches the sink (a patient id, a date of birth) would put patient data there. Partition by a field that is not about the person (a processing date, a message type, a facility), or mask the field so it no longer carries the class.";
    PARQUET_AFTER_LISTENER = "SL224", "parquet-after-listener", "A `parquet` sink is fed by a listening source.",
        "A listening source (`type: mllp`) acknowledges a message once every sink has made it durable. A Parquet file cannot be appended to: the sink keeps rows in an open temporary file until the next checkpoint closes and renames it, and after a crash the resumed run deletes that file. A message acknowledged in between would be lost, so the pair is refused; the same holds for a `kafka` source, whose offsets are committed once the sinks have a record. Write the live feed to a `jsonl`, `csv` or `postgres` sink (all durable per record), and build Parquet files from those in a file pipeline.";
    AMQP_URL = "SL225", "amqp-url", "An `amqp` source's or sink's `url` is not an AMQP URL.",
        "An `amqp` source or sink connects to `amqp://host:port/vhost` (or `amqps://` for TLS with the system's CA certificates); the port defaults to 5672 (5671 for `amqps`) and the virtual host is the URL's path, `%2f` for `/`. Any other scheme, or a URL without a usable host and port, is refused before a run would try it. A secret reference (`${AMQP_URL}`) is checked when the run starts (RT130).";
    AMQP_URL_PASSWORD = "SL226", "amqp-url-password", "An AMQP URL written into the spec holds a password.",
        "Passwords never sit in a spec that is committed to git. Put the whole URL (`amqp://user:password@host:5672/vhost`) in a secret and reference it: `url: ${AMQP_URL}` (an environment variable), `${file:/run/secrets/amqp-url}` or `${aws-sm:name}`. A URL written out may name a user without a password.";
    AMQP_QUEUE_NAME = "SL227", "amqp-queue-name", "An `amqp` source's queue name cannot be used.",
        "An `amqp` source consumes a queue that already exists, named by 1 to 255 bytes of letters, digits, `-`, `_`, `.`, `:` or `/`. Names starting with `amq.` are the ones a server gives to queues declared without a name: they do not outlive their connection, so a pipeline cannot rely on one.";
    AMQP_EXCHANGE_NAME = "SL228", "amqp-exchange-name", "An `amqp` sink's exchange name cannot be used.",
        "AMQP 0-9-1 exchange names are at most 255 bytes of letters, digits, `-`, `_`, `.` and `:`. `exchange: \"\"` is the default exchange, which routes each message to the queue named by its routing key. The exchange must exist when the run starts (RT131).";
    AMQP_ROUTING_KEY_CHOICE = "SL229", "amqp-routing-key-choice", "An `amqp` sink's routing key is written twice or is too long.",
        "An `amqp` sink routes either every message with one constant `routing_key`, or each by the value of a field of its records (`routing_key_field`), not both. AMQP routing keys are at most 255 bytes.";
    FHIR_UNKNOWN_RESOURCE_TYPE = "SL230", "fhir-unknown-resource-type", "A FHIR resource type is not one of FHIR R4.",
        "A `format: fhir` source's `resource_types` and a FHIR mapping's `input.resource_type` name resource types of FHIR R4 (4.0.1), spelled as the specification spells them (`Patient`, `MedicationRequest`; case matters). Abstract types (`Resource`, `DomainResource`) and datatypes (`HumanName`) are not resource types. The help suggests the closest name.";
    FHIR_PROFILE_UNUSABLE = "SL231", "fhir-profile-unusable", "A FHIR source's `profile` is not a usable StructureDefinition.",
        "The `profile` of a `format: fhir` source names a StructureDefinition (JSON or XML) whose rules every resource of its type must meet. The file could not be read, is not a StructureDefinition, or its differential names an element its base type does not have (FHIR123). `sluice validate --format fhir --profile FILE` says what is wrong with it; paths are relative to the pipeline file.";
    FHIR_UNKNOWN_PATH = "SL232", "fhir-unknown-path", "A FHIR path does not exist in FHIR R4.",
        "Expressions over FHIR records are FHIR paths relative to the mapping's `resource_type`, checked against the bundled R4 schema (`docs/fhir-schema.md`): `name[0].family`, `birthDate`, `identifier[*].value`, `value.as(Quantity).value`. The label points at the first element that does not exist (or cannot be indexed, or needs a type picked with `.as(Type)`), and the help names the closest valid element.";
    FHIR_INPUT_MISMATCH = "SL233", "fhir-input-mismatch", "A stage's records and its mapping disagree about FHIR.",
        "A mapping with `input: {schema: fhir/r4, resource_type: T}` reads FHIR resources of type `T`: it must be fed by a `format: fhir` source (not HL7 v2 messages) that reads `T` (when the source lists `resource_types`, `T` is among them); and a mapping of HL7 v2 messages cannot read FHIR resources. Conditions (filters, routes) over FHIR resources need a source reading exactly one resource type, so that their paths can be checked. Point the stage at the right source, or the right mapping.";
    FHIR_EACH_UNSUPPORTED = "SL234", "fhir-each-unsupported", "A list field over FHIR records uses `each`.",
        "Mappings over FHIR resources fill list fields with single items (`- item: ...`) for now; iterating over a repeating FHIR element with `each:` is not supported yet. Map the first repetitions by index (`identifier[0]`, `identifier[1]`), or join them (`join(identifier[*].value, \",\")`).";
    AMQP_PREFETCH = "SL235", "amqp-prefetch", "An `amqp` source's `prefetch` is out of range.",
        "`prefetch` is how many messages the server hands an `amqp` source before their acknowledgements (`basic.qos`): from 1 to 65535. Acknowledgements wait until records are durable, so it bounds the records in flight; 0 would mean no bound, which the spec refuses.";
    AMQP_ROUTING_KEY_FIELD = "SL236", "amqp-routing-key-field", "An `amqp` sink's `routing_key_field` is not one value of its records.",
        "An `amqp` sink's `routing_key_field` is the dotted path of a field of the records reaching it, holding one value (not a list or an object): its value becomes each message's routing key. Records that are not mapped (HL7 v2 messages, FHIR resources, X12 sets) have no fields: map them first, or use a constant `routing_key`; with `format: hl7v2`, write an HL7 v2 path (`MSH-9.2`).";
    AMQP_RELAY_INPUT = "SL237", "amqp-relay-input", "An `amqp` sink with `format: hl7v2` is not fed HL7 v2 messages.",
        "`format: hl7v2` makes an `amqp` sink publish each HL7 v2 message byte for byte, as it was read. Only HL7 v2 messages have those bytes: a sink after a `map` stage receives mapped records, and FHIR or X12 sources give resources or transaction sets. Feed the sink from the HL7 v2 source (or a `validate` or `filter` stage after it), or remove `format: hl7v2` to publish each record as a JSON line.";
    KAFKA_BROKER_ADDRESS = "SL240", "kafka-broker-address", "A Kafka broker is not `host:port`.",
        "A `kafka` source or sink names its bootstrap brokers as `host:port` (a host name, an IPv4 address, or an IPv6 address in brackets, and a port from 1 to 65535), with no scheme: `127.0.0.1:9092`, `kafka-1.example.org:9092`, `[::1]:9092`. Azure Event Hubs' Kafka endpoint is `<namespace>.servicebus.windows.net:9093`.";
    KAFKA_TOPIC_NAME = "SL241", "kafka-topic-name", "A Kafka topic name cannot be used.",
        "Kafka accepts topic names of 1 to 249 characters from letters, digits, `.`, `_` and `-` (not `.` or `..`); a broker refuses any other, so the spec is refused before a run would wait on it.";
    KAFKA_SECURITY = "SL242", "kafka-security", "Kafka `security` settings do not fit together.",
        "`security.protocol` `sasl_plaintext` and `sasl_ssl` authenticate with SASL and need a `username` and a `password` (a secret reference such as `${KAFKA_PASSWORD}`); `plaintext` and `ssl` do not use SASL, so a `mechanism`, `username` or `password` beside them would be silently ignored: either pick a `sasl_*` protocol or remove them.";
    KAFKA_GROUP = "SL243", "kafka-group", "A `kafka` source's consumer group id cannot be used.",
        "The consumer group id names the group whose members share the topics' partitions and whose offsets the brokers keep. It must not be empty, longer than 255 bytes or hold control characters. Give every process of one pipeline the same group, and different pipelines different groups.";
    KAFKA_SINK_KEY = "SL244", "kafka-sink-key", "A `kafka` sink's key is not one value of its records.",
        "A `kafka` sink's `key` is the dotted path of a field of the records reaching it, holding one value (not a list or an object): its value becomes each message's key, so one key's messages land in one partition, in order. Name a single-valued field such as `patient.id`.";
    KAFKA_RELAY_INPUT = "SL245", "kafka-relay-input", "A `kafka` sink with `format: hl7v2` is not fed HL7 v2 messages.",
        "`format: hl7v2` makes a `kafka` sink relay each HL7 v2 message byte for byte, as it was read, so that `kafka` sources elsewhere read the feed (one pipeline moves files or objects to a topic, several instances consume it). Only HL7 v2 messages have those bytes: a sink after a `map` stage receives mapped records, and FHIR or X12 sources give resources or transaction sets. Feed the sink from the HL7 v2 source (or a `validate` or `filter` stage after it), or remove `format: hl7v2` to write each record as a JSON line.";
    BUS_FORMAT_KEY = "SL246", "bus-format-key", "A `kafka` or `amqp` source has a key of another `format` than its own.",
        "A bus source reads one kind of message, named by `format`: `hl7v2` (the default; `profile` names a parser profile), `x12` (one interchange per message; `guides` and `mode` say which implementation guides are read and how strictly) or `fhir` (one FHIR R4 JSON resource per message; `resource_types`, `mode`, and `profile` naming a StructureDefinition). A key of another format would be silently ignored, so it is refused: remove it, or set `format` to what the messages really are. What the source emits must also be what its stages read: a `map` stage whose mapping reads `x12/...` needs a `format: x12` source (SL260, SL306 and SL415 say so).";
    OBJECT_TAG_UNSUPPORTED = "SL247", "object-tag-unsupported", "`after.tag` cannot be used here.",
        "`after: {tag: {sluice-status: processed}}` tags each object of an `s3://` source (Amazon S3 or an S3-compatible store) with S3's object tagging (`PutObjectTagging`), and each blob of an `az://` source with Azure's blob index tags (Set Blob Tags), once the run that read it has completed. Local files have no tags, and tagging is not implemented for Google Cloud Storage (`gs://`): no GCS emulator that can be installed here works with the client Sluice uses, so it could not be tested against a real server. Remove `tag`, or use `move_to` (every store) to mark processed objects.";
    OBJECT_TAG_INVALID = "SL248", "object-tag-invalid", "An `after.tag` key or value is not a valid tag of its store.",
        "Tag keys are 1 to 128 characters and values 0 to 256 characters. S3 accepts letters, digits and spaces (Unicode) and `+ - = . _ : / @`, and reserves keys starting with `aws:`. Azure Blob Storage accepts ASCII letters (a-z, A-Z), digits, spaces and `+ - . / : = _` only (no `@`, no accented letters). Tags are literal text written in the spec: a value cannot be a secret reference, a template or a field of the records (tags are visible to anyone who may list the bucket or container, so they must never carry record content). Fix the key or value.";
    OBJECT_TAG_COUNT = "SL249", "object-tag-count", "`after.tag` names more tags than the store allows.",
        "S3 and Azure Blob Storage keep at most 10 tags on an object, and Sluice merges its tags into the object's existing ones (an object that would end up with more than 10 is not tagged, with the warning RT122). Name at most 10 tags in `after.tag`; fewer leaves room for the tags other tools set.";
    OBJECT_URL = "SL250", "object-url", "An object-store path is not a URL Sluice can use.",
        "Object-store paths are `s3://bucket/key` (Amazon S3 or an S3-compatible store), `az://container/key` (Azure Blob Storage) or `gs://bucket/key` (Google Cloud Storage). The bucket (or container) comes right after `://`, in lower-case letters, digits, `-`, `.` and `_`, without wildcards; a source's key may hold a glob (`s3://inbound/adt/**/*.hl7`), a sink's key names one object. Fix the scheme or add the bucket.";
    OBJECT_STORE_MIXED = "SL251", "object-store-mixed", "A source reads from more than one place.",
        "One `files` source reads either local files or objects of one bucket (or container): its `store` block describes that one store. Split the paths into several sources, one per bucket, each with its own `store`.";
    OBJECT_STORE_MISPLACED = "SL252", "object-store-misplaced", "A `store` key does not fit the paths.",
        "`store` describes the object store of `s3://`, `az://` or `gs://` paths, and some of its keys belong to one kind of store: `region`, `access_key_id` and `secret_access_key` to S3; `account` and `access_key` to Azure; `service_account_key` to GCS. Remove the `store` block from a local path, or the keys that belong to another store.";
    OBJECT_STORE_CREDENTIALS = "SL253", "object-store-credentials", "A store's credentials are incomplete.",
        "S3 credentials are a pair: `access_key_id` and `secret_access_key` are written together (or both left out, to use the environment's `AWS_*` variables or instance credentials). An Azure `access_key` needs the `account` it belongs to. Add the missing key, as a secret reference.";
    OBJECT_MOVE_TO = "SL254", "object-move-to", "`after.move_to` cannot be used here.",
        "`after: {move_to: processed/}` moves each object of an object-store source under that key prefix, in the same bucket, once the run that read it has completed. It needs object URLs (local files are not moved), a plain key prefix (no `scheme://`, no wildcards), and a prefix outside what the source lists: a moved object under a listed prefix would be listed again as a new object. Choose a prefix beside the source's, e.g. `processed/` for `inbound/**/*.hl7`.";
    OBJECT_SINK_AFTER_LISTENER = "SL255", "object-sink-after-listener", "An object-store sink is fed by a listening source.",
        "A `jsonl` or `csv` sink with an object URL writes a local staging file and uploads it when the run completes, so that the object appears whole. A listening source (`type: mllp`, or a `kafka` consumer, which commits offsets) acknowledges each message once every sink has it durably and runs until it is stopped: its messages would wait in the staging file, not in the store, and every stop would upload everything the file holds again. Write the live feed to a local `jsonl` or `csv` file (or a `postgres` sink), and read it into the store from a file pipeline.";
    FHIR_REST_TABLE = "SL257", "fhir-rest-table", "A `fhir.rest` table is unknown or named twice.",
        "A `fhir.rest` source syncs tables of a fixed catalog, each with its FHIR resource type and ingestion: `patients` (Patient, cdc), `encounters` (Encounter, cdc), `observations` (Observation, append), `conditions` (Condition, cdc), `medications` (MedicationRequest, cdc) and `procedures` (Procedure, cdc). Name each table once, in lower case; a `cdc` table is meant for a sink that upserts by id, an `append` table for one that adds every version.";
    FHIR_REST_URL = "SL258", "fhir-rest-url", "A `fhir.rest` `base_url` cannot be used.",
        "`base_url` is the server's FHIR base, `http://` or `https://` with a host, an optional port and path, and nothing else: credentials go under `auth` (as secret references), so that no URL a plan, a log or an error shows holds one; a query or fragment would be lost when the source builds its search URLs.";
    FHIR_REST_AUTH = "SL259", "fhir-rest-auth", "A `fhir.rest` `auth` is incomplete or mixes types.",
        "Each auth type reads its own keys: `api_key` reads `key` (and `header`, default `X-API-Key`), `basic` reads `username` and `password`, `bearer` reads `token`; credentials are secret references (`${FHIR_TOKEN}`). Add the missing key, or remove the one the type does not read.";
    X12_INPUT_MISMATCH = "SL260", "x12-input-mismatch", "A stage or sink cannot take raw X12 transaction sets.",
        "A `format: x12` source emits one record per transaction set: its envelope context (`interchange`, `group`, `set`) and its segments, as read. Stages that read HL7 v2 paths (`validate`, `filter`, `route`) or output fields (`mask`), mappings of HL7 v2 or FHIR, and table sinks (`csv`, `parquet`, `postgres`) or keyed Kafka sinks cannot read such records. X12 sets are validated by their source (`mode`, the bundled implementation guides); map them with a mapping that reads `input: {schema: x12/<guide>}` and X12 paths (`2300/CLM-01`), or write the raw sets to a `jsonl` sink that allows PHI (`phi: {allowed: true, reason: ...}`).";
    X12_UNKNOWN_GUIDE = "SL261", "x12-unknown-guide", "A `guides` entry names no bundled X12 implementation guide.",
        "`guides` lists the implementation guides an X12 source reads, by their id as ST03 or GS08 writes it (`005010X222A1` for the 837P, `005010X221A1` for the 835; 4010 sets have no ST03, so their GS08: `004010X098A1` for the 4010 837P, `004010X096A1` for the 4010 837I, `004010X091A1` for the 4010 835, `004010X092A1` for the 4010 270/271, `004010X093A1` for the 4010 276/277, `004010X095A1` for the 4010 834); sets of other guides count as filtered. Only bundled guides can be named (`sluice validate --format x12` lists them in its X12051 finding); the help names the closest. An errata version that a bundled guide reads (`005010X222A2`, read by the 837P guide `005010X222A1`; `005010X223A3`, read by the 837I guide `005010X223A2`) is named by that guide's id, as the help says. A mapping's `input: {schema: x12/<guide>}` names one guide the same way, except where two share an id: the 270 and the 271 are both `005010X279A1`, so their mappings read `x12/005010X279A1/270` or `x12/005010X279A1/271` (a source's `guides: [005010X279A1]` reads both); likewise the 4010 `004010X092A1`, and the claim status request and response: `x12/005010X212/276` and `x12/005010X212/277` (`guides: [005010X212]`), `x12/004010X093A1/276` and `/277`.";
    X12_ACKS_NEED_STATE = "SL262", "x12-acks-need-state", "An X12 source writes acknowledgments without a state store.",
        "`acks: DIR` makes an X12 source write a 999 (or 997, or TA1) for every interchange it reads. Their interchange and group control numbers must never repeat, across runs too, so they are reserved in the pipeline's state store: add `state: {path: state.db}` to the pipeline (or remove `acks`).";
    FHIR_REST_CONNECTION_UNKNOWN = "SL263", "fhir-rest-connection-unknown", "A `fhir.rest` `auth` names no connection of the pipeline.",
        "`auth: {type: oauth2, connection: NAME}` makes a `fhir.rest` source send the access token of connection `NAME`, declared under the pipeline's `connections:` (with `provider: oauth2`, `auth: client_credentials` and its `token_url`, or `auth: authorization_code` authorized once with `sluice connect NAME PIPELINE`). Declare the connection, or fix the name (the help names the closest).";
    FHIR_REST_CONNECTION_KIND = "SL264", "fhir-rest-connection-kind", "A `fhir.rest` `auth` names a connection that cannot authenticate a FHIR server.",
        "A `fhir.rest` source takes an OAuth access token from its connection. An `auth: api_key` connection holds a financial API's secret key, and `stripe` or `quickbooks` connections hold tokens for those APIs only: neither is a token a FHIR server accepts. Use a `provider: oauth2` connection (`auth: client_credentials`, or `authorization_code`); for a static API key or token, use the source's own `auth: {type: api_key}` or `{type: bearer}`.";
    FHIR_REST_TOKEN_IN_CLEAR = "SL265", "fhir-rest-token-in-clear", "A `fhir.rest` source would send an OAuth token over plain http.",
        "An OAuth access token is a credential: a `fhir.rest` source with `auth: {type: oauth2}` sends it only to an `https://` base URL, or over plain `http://` to this machine (`127.0.0.1`, `localhost`, `[::1]`), as the connection's own endpoints are (SL272). Use the server's https base URL.";
    PLAID_CONNECTION = "SL266", "plaid-connection", "A `plaid` source names no Plaid connection of the pipeline.",
        "`connection: NAME` makes a `plaid` source authenticate with connection `NAME`, declared under the pipeline's `connections:` with `provider: plaid`, `client_id` (the app's client id, written or `${PLAID_CLIENT_ID}`) and `client_secret: ${PLAID_SECRET}` (the app's secret for the environment `base_url` names: sandbox and production secrets differ). Plaid takes both in the body of every request; there is no OAuth and nothing to authorize with `sluice connect`. Declare it, fix the name (the help names the closest), or name a Plaid connection rather than one for another provider.";
    PLAID_BASE_URL = "SL267", "plaid-base-url", "A `plaid` source's `base_url` cannot be used.",
        "`base_url` names Plaid's environment, `sandbox`, `development` or `production` (the default: `https://production.plaid.com`), or is a URL `http(s)://host[:port][/path]` with no credentials, query or fragment, plain `http://` only to this machine (`127.0.0.1`, `localhost`, `[::1]`): the app's secret and each Item's access token are sent with every request.";
    PLAID_SOURCE_OPTION = "SL268", "plaid-source-option", "A `plaid` source's `items`, `tables` or `rate` cannot be used.",
        "A `plaid` source reads one or more Items (`items:`, each a `name` of letters, digits, `-` and `_`, unique in the source, which keys the Item's cursor, and an `access_token` secret reference such as `${PLAID_ACCESS_TOKEN}`), the tables `accounts` (`/accounts/get`) and `transactions` (`/transactions/sync`), each named once, and at most Plaid's published limit of 50 `/transactions/sync` requests a minute per Item (`rate`, default `50/min`).";
    PLAID_SYNC_SETUP = "SL269", "plaid-sync-setup", "A `plaid` source has no state store, or shares its pipeline with other kinds of sources.",
        "A `plaid` source keeps each Item's `/transactions/sync` cursor (and the accounts it last saw) in the pipeline's state store, saved once the records it covers are durable, so the next run fetches only what changed and a crash loses nothing: add `state: {path: state.db}` (SQLite) or `state: {url: ...}` (PostgreSQL). It syncs on its own run loop and the run ends when every Item is synced: put sources of other kinds in their own pipeline (several `plaid` sources may share one).";
    CONNECTION_AUTH = "SL270", "connection-auth", "A connection lacks what its `auth` needs.",
        "A connection under `connections:` authenticates one of three ways, each needing its keys: `authorization_code` (the default; `sluice connect` runs OAuth 2.0 with PKCE) needs `client_id`, and for `provider: oauth2` the server's `authorize_url` and `token_url` (Stripe and QuickBooks have theirs built in); `client_credentials` needs `client_id`, `client_secret` and, for `provider: oauth2`, `token_url`; `api_key` needs `api_key` (a secret reference to the API secret key, such as Stripe's `sk_...`). Add the keys the message names.";
    CONNECTION_TOKEN_STORE = "SL271", "connection-token-store", "An OAuth connection has nowhere to keep its tokens.",
        "An OAuth connection (`authorization_code` or `client_credentials`) keeps its access and refresh tokens in the pipeline's state store, encrypted with AES-256-GCM under `token_key`, so that every run (and every instance sharing a PostgreSQL store) uses and refreshes the same tokens, and a rotated refresh token is never lost. Add `state:` to the pipeline and `token_key: ${SLUICE_TOKEN_KEY}` (64 hex digits, `openssl rand -hex 32`) to the connection.";
    CONNECTION_URL = "SL272", "connection-url", "A connection's endpoint is not https.",
        "`authorize_url` and `token_url` carry client secrets, codes and tokens, so they must be `https://` URLs; plain `http://` is accepted only to a loopback address (`127.0.0.1`, `localhost`, `[::1]`), for a server on this machine.";
    STRIPE_OBJECT = "SL273", "stripe-object", "A `stripe` source's `objects` names an unknown list, or one twice.",
        "A `stripe` source syncs Stripe's list endpoints: `balance_transactions`, `charges`, `refunds`, `payouts`, `disputes` and `events`, named as in the API's paths (`/v1/charges`), each once. Mappings then name the object type in the singular (`input: {schema: stripe/charge}`).";
    STRIPE_CONNECTION = "SL274", "stripe-connection", "A `stripe` source names no Stripe connection of the pipeline.",
        "`connection: NAME` makes a `stripe` source authenticate with connection `NAME`, declared under the pipeline's `connections:` with `provider: stripe` (`auth: api_key` and `api_key: ${STRIPE_SECRET_KEY}`, or `auth: authorization_code` authorized once with `sluice connect NAME PIPELINE` for Stripe Connect). Declare it, fix the name (the help names the closest), or name a Stripe connection rather than one for another provider.";
    STRIPE_NEEDS_STATE = "SL275", "stripe-needs-state", "A `stripe` source has no state store for its cursors.",
        "A `stripe` source keeps each object list's cursor (the newest `created` delivered, and the ids delivered within the lookback window) in the pipeline's state store, saved once the records are durable, so that the next run fetches only what is new and a crash loses nothing. Add `state: {path: state.db}` (SQLite) or `state: {url: ...}` (PostgreSQL) to the pipeline.";
    STRIPE_BASE_URL = "SL276", "stripe-base-url", "A `stripe` source's `base_url` cannot be used.",
        "`base_url` defaults to `https://api.stripe.com`. When written (a local test server, a proxy), it is `http(s)://host[:port][/path]` with no credentials, query or fragment, and plain `http://` only to this machine (`127.0.0.1`, `localhost`, `[::1]`): the connection's secret key or token is sent with every request.";
    STRIPE_SOURCE_MIXED = "SL277", "stripe-source-mixed", "A `stripe` source shares its pipeline with other kinds of sources.",
        "A `stripe` source syncs on its own run loop (list by list, the cursor saved once each list's records are durable) and the run ends when every list is synced. Sources of other kinds (files, listeners, `fhir.rest`) run differently: put them in their own pipeline. Several `stripe` sources (several accounts) may share one pipeline.";
    QUICKBOOKS_ENTITY = "SL278", "quickbooks-entity", "A `quickbooks` source's `entities` names an unknown entity, or one twice.",
        "A `quickbooks` source syncs QuickBooks Online entities by the names the API gives them (`SELECT * FROM Purchase`): `Account`, `Bill`, `BillPayment`, `CreditMemo`, `Deposit`, `Invoice`, `JournalEntry`, `Payment`, `Purchase`, `RefundReceipt`, `SalesReceipt`, `Transfer` and `VendorCredit`, each once, spelt with the API's capitals. Mappings name the same entity (`input: {schema: quickbooks/Purchase}`).";
    QUICKBOOKS_CONNECTION = "SL279", "quickbooks-connection", "A `quickbooks` source names no QuickBooks OAuth connection of the pipeline.",
        "`connection: NAME` makes a `quickbooks` source authenticate with connection `NAME`, declared under the pipeline's `connections:` with `provider: quickbooks` and `auth: authorization_code` (the default), and authorized once with `sluice connect NAME PIPELINE`: QuickBooks Online takes OAuth 2.0 tokens only. The tokens are kept (sealed) in the pipeline's state store and refreshed before they expire and on a 401. Declare it, fix the name (the help names the closest), or name a QuickBooks connection rather than one for another provider.";
    QUICKBOOKS_NEEDS_STATE = "SL280", "quickbooks-needs-state", "A `quickbooks` source has no state store for its cursors.",
        "A `quickbooks` source keeps each entity's cursor (the newest `MetaData.LastUpdatedTime` delivered, and the `Id`/`SyncToken` pairs delivered within the lookback window) in the pipeline's state store, saved once the records are durable, so that the next run fetches only what changed and a crash loses nothing. Add `state: {path: state.db}` (SQLite) or `state: {url: ...}` (PostgreSQL) to the pipeline.";
    QUICKBOOKS_BASE_URL = "SL281", "quickbooks-base-url", "A `quickbooks` source's `base_url` cannot be used.",
        "`base_url` defaults to `https://quickbooks.api.intuit.com` (`https://sandbox-quickbooks.api.intuit.com` for a sandbox company). When written, it is `http(s)://host[:port][/path]` with no credentials, query or fragment, and plain `http://` only to this machine (`127.0.0.1`, `localhost`, `[::1]`): the connection's access token is sent with every request.";
    QUICKBOOKS_SOURCE_MIXED = "SL282", "quickbooks-source-mixed", "A `quickbooks` source shares its pipeline with other kinds of sources.",
        "A `quickbooks` source syncs on its own run loop (entity by entity, the cursor saved once each entity's records are durable) and the run ends when every entity is synced. Sources of other kinds (files, listeners, `stripe`, `fhir.rest`) run differently: put them in their own pipeline. Several `quickbooks` sources (several companies, or one per entity) may share one pipeline.";
    QUICKBOOKS_REALM = "SL283", "quickbooks-realm", "A `quickbooks` source's `realm_id` is not a company id.",
        "Every QuickBooks Online request names the company it reads (`/v3/company/{realmId}/...`). `realm_id` is that id, digits only, as QuickBooks gives it when the company is connected (the `realmId` of the OAuth redirect, also shown in the company's settings). It is not a secret, but it is not a name either: copy it exactly.";
    QUICKBOOKS_SYNC_OPTION = "SL284", "quickbooks-sync-option", "A `quickbooks` source's paging or rate is outside what QuickBooks allows.",
        "QuickBooks returns at most 1000 entities a query page (`page_size` 1 to 1000, default 1000), takes `minorversion` 1 to 999 (default 75), and throttles a company above 500 requests a minute (`rate` at most `500/min`, the default). Leave the key out for QuickBooks' own limit, or write a value inside it.";
    WEBHOOK_PATH = "SL285", "webhook-path", "A `webhook` source's `path` cannot be an endpoint.",
        "`sluice serve` routes each delivery by its URL path to one `webhook` source. A path starts with `/` and has segments of letters, digits, `-`, `_`, `.` or `~` (no query string, no trailing `/`, no `.` or `..` segment): `/hooks/stripe`. Give the provider the full URL, e.g. `https://hooks.example.org/hooks/stripe`.";
    WEBHOOK_VERIFICATION = "SL286", "webhook-verification", "A `webhook` source cannot verify its deliveries as written.",
        "Every webhook endpoint verifies each delivery on its raw bytes before anything else reads it. `stripe` needs `secret` (the endpoint's signing secret, `whsec_...`), `quickbooks` the app's verifier token in `secret`, `fhir_subscription` the exact `Authorization` header value the subscription sends in `secret`; `plaid` fetches its signing keys from `key_url` (Plaid's `/webhook_verification_key/get`, over https) with `client_id` and `secret`. `client_id` and `key_url` belong to `plaid` only.";
    WEBHOOK_NEEDS_STATE = "SL287", "webhook-needs-state", "A pipeline with `webhook` sources has no state store.",
        "A delivery is answered `200` only once it is durable in the state store's queue (and its event id recorded, so a redelivery is not processed twice); records are processed from that queue afterwards, so a crash between the answer and the processing loses nothing. Add `state: {path: state/pipeline.db}` (SQLite) or `state: {url: ${STATE_URL}}` (PostgreSQL).";
    WEBHOOK_NOT_ALONE = "SL288", "webhook-not-alone", "A `webhook` source shares its pipeline with other kinds of sources.",
        "`webhook` sources are served by `sluice serve` until it is stopped, from their queue in the state store; file sources end, and MLLP listeners and Kafka consumers acknowledge in their own way. Put the webhook endpoints (as many as needed) in a pipeline of their own.";
    WEBHOOK_PATH_TAKEN = "SL289", "webhook-path-taken", "Two `webhook` sources have the same `path`.",
        "Each delivery is routed by its URL path to exactly one source, so two sources cannot share a path. Give each endpoint its own path, e.g. `/hooks/stripe` and `/hooks/stripe-connect`.";
    RECONCILE_ROLE = "SL290", "reconcile-role", "A reconciliation's inputs are not `left` and `right`.",
        "A reconciliation matches records of two inputs, one pair at a time: each pair holds one record of the `left` input and one of the `right` input, and the outputs say which side each record came from. Declare exactly these two roles under `inputs`, and name what each one is with `name:` (`name: stripe_payouts`).";
    RECONCILE_UNDECLARED_FIELD = "SL291", "reconcile-undeclared-field", "A rule uses a field an input does not declare.",
        "Matching rules and category conditions read the fields each input declares (`links`, `payee`, `merchant`, `mcc`). A `match: link` rule compares a link declared on both inputs; a window with `payee` compares both inputs' payees; a category tested on `merchant`, `mcc` or `description` needs an input with that field. Declare the field on the input, or remove the condition: as written it could never hold.";
    RECONCILE_TOLERANCE = "SL292", "reconcile-tolerance", "A tolerance of a matching rule cannot be read.",
        "`amount` is the largest accepted difference, in major units with at most two decimal places (`0.50`) or as a percentage of the left amount (`1%`); `days` is an inclusive range of days from the left record's date to the right record's (`0..3`), or one number for both directions (`2` is `-2..2`), at most 366; `payee` is the least share of words the payees must have in common, from 0 to 1.";
    RECONCILE_RULE_NEVER_MATCHES = "SL293", "reconcile-rule-never-matches", "A rule of the matching ladder can never match.",
        "Rules are tried in order and each record is matched once, so a rule that accepts nothing more than an earlier rule (the same ids or link with no larger amount tolerance, or a window inside an earlier window) only ever sees records the earlier rule had no partner for: it can never match. Two rules with one name could not be told apart in the output. Remove the rule, widen it, or move it before the rule that covers it.";
    RECONCILE_TIME_ZONE = "SL294", "reconcile-time-zone", "An input's `time_zone` is not a known time zone.",
        "Date-times are bucketed into the account's local dates (a deposit at 23:30 in New York on January 31st is a January deposit, though it is February in UTC), so the zone must be an IANA time zone name from the bundled database, such as `America/New_York`, `Europe/London` or `UTC`.";
    RECONCILE_CURRENCY = "SL295", "reconcile-currency", "An input's currency is missing or not an ISO 4217 code.",
        "Amounts are compared in minor units of one currency: a pair in two currencies is reported (`currency_mismatch`), never matched. Each input says where its currency is (`currency: <field>`) or what it is (`default_currency: USD`, three capital letters).";
    RECONCILE_EMPTY_LADDER = "SL296", "reconcile-empty-ladder", "The matching ladder has no rules.",
        "Without a rule nothing matches and every record would go to review. Add at least one rule, such as `- {name: by_id, match: ids}`.";
    CATEGORIZE_PATTERN = "SL297", "categorize-pattern", "A category's `description` is not a valid regular expression.",
        "`description` is a regular expression (Rust regex syntax) searched in the payee field. Fix the pattern; `(?i)` makes it case-insensitive.";
    CATEGORIZE_AMOUNT_RANGE = "SL298", "categorize-amount-range", "A category's amount range cannot be read or is empty.",
        "`amount: {min, max}` is an inclusive range of signed amounts in major units (`-100.00`), with at most two decimal places; `max` must not be below `min`.";
    RECONCILE_OUTPUT_CLASH = "SL299", "reconcile-output-clash", "Two outputs of a reconciliation, or an output and an input, are one file.",
        "`matched`, `review`, `summary` and the statements' `path` and `unassigned` are each written whole at the end of a run, by renaming a finished temporary file into place: two outputs on one path would leave only the last, and an output on an input's path (or on the statements' `accounts` file) would replace the data it was read from. Give each output a file of its own, apart from the inputs.";
    UNKNOWN_INPUT = "SL301", "unknown-input", "An input names no component.",
        "Each entry of `inputs` must be the name of a source or stage in the same pipeline (or `route.branch` for a route's branch).";
    MISSING_INPUTS = "SL302", "missing-inputs", "A stage or sink has no inputs.",
        "Stages and sinks receive records only through `inputs`. Without it nothing reaches the component. Sources take no inputs.";
    CYCLE = "SL303", "cycle", "The pipeline has a cycle.",
        "Records flow one way, from sources to sinks. A component cannot (directly or indirectly) be its own input.";
    UNUSED_COMPONENT = "SL304", "unused-component", "A component's output (or a route branch) goes nowhere.",
        "No stage or sink takes this source's or stage's records as input (or, for a route, this branch's records), so they could only go to the DLQ. Connect it, or remove it.";
    DUPLICATE_COMPONENT = "SL305", "duplicate-component", "Two components share a name.",
        "Sources, stages and sinks share one namespace, because `inputs` refers to them by name. Rename one of them.";
    INCOMPATIBLE_INPUT = "SL306", "incompatible-input", "A component cannot take the records its input emits.",
        "Each stage works on records of a schema: `validate` and `map` take HL7 v2 messages, `mask` takes records of an output schema such as `canonical/patient-event@1`, and a component with several inputs needs them to emit the same schema.";
    MAPPING_INPUT_MISMATCH = "SL307", "mapping-input-mismatch", "A mapping's input schema does not match its source.",
        "A mapping is type-checked against the schema in its `input.schema`; the records reaching it are read by the source's parser profile under another standard or version, so its paths may mean something else. Make them agree.";
    UNKNOWN_BRANCH = "SL308", "unknown-branch", "An input names a route branch that does not exist.",
        "`route.branch` must name one of the route's `routes` or its `default`.";
    LIVE_SOURCE_NOT_ALONE = "SL309", "live-source-not-alone", "A listening source shares its pipeline with file sources.",
        "An `mllp` source listens until the run is stopped, while file sources end; a pipeline has either listening sources (one or more, each with a `priority`) or only file sources. Split it into two pipelines sharing the same stages' files. A `kafka` source (a consumer that also runs until stopped) shares its pipeline only with other `kafka` sources: not with file sources, and not with `mllp` ones (a listener's ACKs and a consumer group's offsets are kept apart). Likewise an `amqp` source (a queue consumer acknowledging each message) shares its pipeline only with other `amqp` sources.";
    DUPLICATE_LISTEN_ADDRESS = "SL310", "duplicate-listen-address", "Two listening sources have the same address.",
        "Each `mllp` source of a pipeline listens on its own address and port (`listen`); the second could not bind. Give each source its own port (or port 0 for any free port).";
    FHIR_REST_NEEDS_STATE = "SL311", "fhir-rest-needs-state", "A `fhir.rest` source has no state store for its cursors.",
        "A `fhir.rest` source keeps each table's cursor (the last `meta.lastUpdated` delivered, and the versions seen near it) in the pipeline's state store, so that the next run fetches only what changed. Without a store every run would sync everything again. Add `state: {path: state.db}` (SQLite) or `state: {url: ...}` (PostgreSQL) to the pipeline.";
    UNKNOWN_SCHEMA = "SL401", "unknown-schema", "Unknown schema.",
        "The schema name must be one of the bundled schemas: `hl7v2/<version>` for HL7 v2 (2.3, 2.3.1, 2.4, 2.5, 2.5.1, 2.6, 2.7, 2.8) or an output schema such as `canonical/patient-event@1`.";
    UNKNOWN_SEGMENT = "SL402", "unknown-segment", "Unknown HL7 segment.",
        "The segment is not defined in the HL7 version the spec is checked against. Z-segments (site-specific segments) must be declared in the parser profile's `z_segments`.";
    UNKNOWN_FIELD = "SL403", "unknown-field", "The segment has no such field.",
        "The field number is beyond the last field the segment defines in this HL7 version. The help gives the segment's field count and the field names nearest to it.";
    UNKNOWN_COMPONENT = "SL404", "unknown-component", "The field's datatype has no such component.",
        "The component (or subcomponent) number is beyond the components of the field's datatype in this HL7 version.";
    INVALID_PATH = "SL405", "invalid-path", "A path is not well formed.",
        "HL7 v2 paths look like `PID-5`, `PID-5.1`, `PID-3[*].1` or `OBX[*]-5`: a segment id, a dash, a field number, then optional repetition index, component and subcomponent.";
    UNKNOWN_OUTPUT_FIELD = "SL406", "unknown-output-field", "The output schema has no such field.",
        "A mapping can only set fields that its output schema defines. The help names the closest field; `docs/spec-reference.md` lists the schema.";
    RUNTIME_FIELD = "SL407", "runtime-field", "The field is set by the runtime.",
        "Fields such as `metadata.processed_at`, `metadata.validation_status` and `compliance.*` record what the run did; they are computed by Sluice, not mapped.";
    UNMAPPED_REQUIRED = "SL408", "unmapped-required", "A required output field is not mapped.",
        "The output schema requires this field; every record would go to the DLQ without it. Map it.";
    INVALID_Z_SEGMENT = "SL409", "invalid-z-segment", "A Z-segment definition is invalid.",
        "Z-segment ids start with `Z` followed by two letters or digits, and each field needs a `name` and a `type` that is an HL7 datatype of the profile's version.";
    FHIR_UNKNOWN_ELEMENT = "SL410", "fhir-unknown-element", "A FHIR resource type or element path does not exist.",
        "In a mapping with `output: fhir/r4/Bundle`, each resource's `type` is a FHIR R4 resource type and each key under `fields` is an element path relative to the resource (`name[0].family`, `valueQuantity.value`, `class.code`), checked against the FHIR R4 schema (`docs/fhir-schema.md`). Choice elements are written with their type (`valueQuantity`, `effectiveDateTime`). The help names the closest valid element.";
    FHIR_CARDINALITY = "SL411", "fhir-cardinality", "A FHIR element path does not fit the element's cardinality or type.",
        "A repeating element on the way to a value needs an index (`name[0].family`), an index is only allowed on a repeating element, a list of producers (`- each: ...`) only fits a repeating element, a single expression only fits a primitive element (`gender`, `birthDate`, `code.coding[0].code`), and `ref(...)` only fits a `Reference` element.";
    FHIR_BINDING = "SL412", "fhir-binding", "A code is not in the element's required value set.",
        "An element with a required binding (`Patient.gender`, `Encounter.status`, `Observation.status`) only admits the codes of its value set. Literal codes, and every value of a `lookup` table written to such an element, are checked against those codes; map the source codes with a table whose values are valid codes.";
    FHIR_REFERENCE = "SL413", "fhir-reference", "`ref(...)` or `within` names a resource it cannot point at.",
        "`ref(name)` points at another resource of the same Bundle: a resource without `each` and `within` (one per message), the resource this one is built `within` (or its own `within`, and so on), or a resource built `within` this one (one reference per instance, for a repeating element). The target's type must be one the Reference element allows. `within` names a resource declared earlier in `resources`.";
    X12_UNKNOWN_PATH = "SL414", "x12-unknown-path", "An X12 path does not exist in the mapping's implementation guide.",
        "A mapping with `input: {schema: x12/<guide>}` reads its transaction sets with X12 paths: loop ids as the guide names them (each below the previous, at any depth, optionally `[*]` or `[n]`), then a segment (optionally with a qualifier, `REF(EI)`), then a 2-digit element and optionally a component: `2300/CLM-01`, `2010BA/NM1-03`, `2400[*]/SV1-01-2`, `BHT-04` for the set level. Each path is checked against the bundled guide (`specs/x12/guides/`): the loop must exist, the segment must be in the last loop, the element must be used there. The help names the closest loop, segment or element.";
    X12_MAP_INPUT_MISMATCH = "SL415", "x12-map-input-mismatch", "A map stage's records and its X12 mapping disagree.",
        "A mapping with `input: {schema: x12/<guide>}` maps the transaction sets of one implementation guide, emitted by a `format: x12` source. Feed the map stage from such a source (listing that guide in `guides`, or none), and name a bundled guide in the schema (`x12/005010X222A1` for the 837P, `x12/005010X221A1` for the 835). X12 paths (`2300/CLM-01`) are only read by such mappings.";
    X12_EACH_UNSUPPORTED = "SL416", "x12-each-unsupported", "`each` over X12 names a path, not a loop.",
        "Over X12 transaction sets, `each` iterates loops: `each: loop(2300)` at the top of a mapping gives one output record per claim, `- each: loop(2400)` in a list field one item per service line. Iterating the values of an element path (`each: 2300[*]/CLM-01`) is not supported: map a list of values with the path itself, which gives one item per value (`claim_ids: 2300[*]/CLM-01`), or iterate the loop and read the element in the item (`- each: loop(2400)` with `item: {procedure: 2400/SV1-01-2}`). (Until `each: loop(...)` existed, this code refused every `each` over X12.)";
    STRIPE_UNKNOWN_PATH = "SL417", "stripe-unknown-path", "A path does not exist in the mapping's Stripe object.",
        "A mapping with `input: {schema: stripe/<object>}` reads Stripe objects with dotted property paths as Stripe's API reference writes them: `amount`, `currency`, `billing_details.email`, `payment_method_details.card.last4`, `fee_details[*].amount` (an array step with `[*]` for every item or `[n]` for one). Each path is checked against the object's schema, derived from Stripe's published OpenAPI spec (`specs/finance/data/stripe-paths.tsv`); the help names the properties valid at the step that is wrong, and the closest one. Expandable references (`customer`, `balance_transaction`) are ids: Sluice does not expand them.";
    STRIPE_UNKNOWN_OBJECT = "SL418", "stripe-unknown-object", "A mapping's `input.schema` names no Stripe object type.",
        "A mapping reads one Stripe object type: `stripe/balance_transaction`, `stripe/charge`, `stripe/refund`, `stripe/payout`, `stripe/dispute`, `stripe/event` or `stripe/customer`, in the singular (the source's `objects` name the lists, in the plural).";
    STRIPE_MAP_INPUT_MISMATCH = "SL419", "stripe-map-input-mismatch", "A map stage's records and its Stripe mapping disagree.",
        "A mapping with `input: {schema: stripe/<object>}` maps objects of one type, emitted by a `stripe` source. Feed the map stage from a `stripe` source whose `objects` is that type's list alone (`objects: [charges]` for `stripe/charge`): a source reading several lists emits several object types.";
    STRIPE_INPUT_MISMATCH = "SL420", "stripe-input-mismatch", "A stage or sink cannot take raw Stripe objects.",
        "A `stripe` source emits the objects as Stripe sends them, which hold customers' names, e-mail addresses, addresses and card details. Stages that read HL7 v2 paths or output fields and table sinks cannot read them; read them with a map stage whose mapping has `input: {schema: stripe/<object>}`, so that the PHI-flow proof sees which PII reaches each sink.";
    STRIPE_EACH_UNSUPPORTED = "SL421", "stripe-each-unsupported", "`each` over Stripe arrays is not supported yet.",
        "A mapping over Stripe objects maps one output record per object; it cannot yet iterate over an array (one item per fee of `fee_details`, built of several members). Map a list of values with the path itself, which gives one item per value (`fee_amounts: fee_details[*].amount`), or pick one item by index (`fee_details[0].type`).";
    X12_UNKNOWN_LOOP = "SL425", "x12-each-unknown-loop", "`each: loop(ID)` names a loop the implementation guide does not have.",
        "`each: loop(ID)` iterates a loop of the mapping's implementation guide: at the top of a mapping, one output record per occurrence (`loop(2300)`: one per claim of an 837P; `loop(2100)`: one per claim payment of an 835); in a list field, one item per occurrence (`- each: loop(2400)`). The id is the guide's loop id (`specs/x12/guides/`); the help names the closest one and lists them all.";
    X12_PATH_OUTSIDE_EACH = "SL426", "x12-path-outside-each", "An X12 path is ambiguous or outside the context of the loop iterated.",
        "Inside `each: loop(2300)` a record (or list item) holds one claim, with the loops that enclose it (its subscriber `2000B`, its billing provider `2000A` through the HL hierarchy) and the set level (`BHT`, `1000A`). A path that indexes the iterated loop or an enclosing one (`2300[2]/CLM-01`, `2000B[*]/SBR-01`) would ask for another claim's values: drop the index. A path to an HL level that is not above the iterated loop (`2000B/...` inside `each: loop(2000A)`) reads a level the record does not hold: iterate that level instead.";
    MAPPING_EACH_UNSUPPORTED = "SL427", "mapping-each-unsupported", "`each` for a whole mapping is only for X12 loops.",
        "`each:` at the top of a mapping gives one output record per occurrence of an X12 loop (`each: loop(2300)` with `input: {schema: x12/005010X222A1}`). HL7 v2 and FHIR mappings give one record per message or resource; iterate their repetitions and groups in list fields (`- each: group(ORDER_OBSERVATION)`), or split the records before the map stage.";
    X12_SPLIT_CONFLICT = "SL428", "x12-split-conflict", "One X12 source feeds consumers that need its sets cut in different ways.",
        "A map stage whose mapping has `each: loop(2300)` makes its X12 source cut every set of that guide into one record per claim, before any stage runs (so that every claim has its own place in the run's counts, DLQ and audit). If the same source also feeds a sink with the raw sets, or a mapping of the same guide that reads whole sets (or cuts at another loop), the two cannot both be served. Read the files with two sources, one per way, or give both mappings the same `each`.";
    X12_LOOP_NOT_NESTED = "SL429", "x12-loop-not-nested", "A list iterates an X12 loop that is not inside the loop iterated around it.",
        "Inside `each: loop(2300)` (one claim), a list field's `- each: loop(ID)` iterates the occurrences of a loop below the claim: `2400` service lines, `2310A` referring providers. A loop elsewhere in the guide (`2000B`, `1000A`) has one occurrence per claim at most: read it with a plain path (`2010BA/NM1-03`).";
    X12_EACH_LEVELS = "SL430", "x12-each-levels", "`each: loop(A, B)` names several loops that are not a chain of HL levels.",
        "`each: loop(2000C, 2000D)` at the top of a 271 mapping gives one output record per subscriber and one per dependent: each occurrence of any of the loops named is a record. The loops must be HL levels of the guide, each one's HL parent the loop named before it (`2000D` sits under `2000C`), so that a record is one person with the levels above it; the help lists the guide's HL levels with their parents. A guide without HL levels (the 834, the 835) and a list field (`- each: loop(...)`) iterate one loop.";
    X12_PROFILE_FORMAT = "SL431", "x12-profile-format", "A profile key or profile file of the other format (HL7 v2 and X12 profiles differ).",
        "A `kind: profile` file is either an HL7 v2 parser profile (`format: hl7v2`: `version`, `encoding`, `z_segments`...) or X12 trading partners (`format: x12`: `partners`, `processing`, `unknown_partners`). A key of the other format is refused, and so is a profile of the other format named by a source (`profile:` of an `x12` source must be an X12 profile, of an `hl7v2` source or listener an HL7 v2 one). The product brief's `isa_id` is not a key either (an unknown key, SL201): the ISA05 qualifier is `qualifier` (docs/x12.md, Trading partners, says how the brief's keys are read).";
    X12_PARTNER_VERSION = "SL432", "x12-partner-version", "A trading partner's `version` is not a bundled X12 version.",
        "`version` is `5010` (every GS08 starting 005010), `4010` (004010...) or one full version Sluice has a guide for (`005010X222A1`, `005010X221A1`, `004010X098A1`...; the help lists them). A partner sending several transaction sets in 5010 is written `5010`: a full version names one guide, so one transaction set.";
    X12_PARTNER_SET = "SL433", "x12-partner-set", "A trading partner's transaction set has no bundled guide in its version.",
        "Each `transaction_sets` entry is an ST01 value for which a guide is bundled in the partner's version: `837`, `835`, `270`, `271`, `276`, `277`, `834`, `999` and `997` in 5010, the same without `999` in 4010; a full version (`005010X221A1`) is for its own set only (`835`). The help lists the sets of the version.";
    X12_PARTNER_DUPLICATE = "SL434", "x12-partner-duplicate", "Two trading partners have the same name, or the same sender id.",
        "A partner is found by the ISA06 (and ISA05, when it names a `qualifier`) of each interchange, and named by `name` in records and findings: two partners with one id (and qualifiers that could both match: the same, or one of them left out) or one name would make that ambiguous. Merge them (one partner may send several transaction sets) or give each its own id and name.";
    X12_OVERLAY = "SL435", "x12-overlay", "An overlay does not fit its implementation guide.",
        "An overlay changes the partner's copy of a bundled guide: `guide` is one the partner reads (its transaction sets and version), `path` a loop (`2010BB`), a segment (`2300/PWK`, `2300/REF(G1)`) or an element (`2300/CLM-11-1`) of that guide, and the change fits what the path names: `usage` for any (a qualifier element that selects a segment's place stays required), `min_length`/`max_length` (minimum at most the maximum) and `add_codes` (to an element with a code list) for elements only. The message says what does not fit; `specs/x12/guides/` holds the guides.";
    X12_DELIMITERS = "SL436", "x12-delimiters", "Acknowledgment delimiters that cannot be written.",
        "The element, component and repetition separators and the segment terminator of what Sluice writes to a partner are single printable ASCII characters, not letters, digits or space (they occur in data), not `-`, `.` or `_` (they occur in the identifiers an acknowledgment echoes), and all different. Common sets: `*` `:` `^` `~` (the default) and `|` `>` `!` `~`.";
    QUICKBOOKS_UNKNOWN_PATH = "SL440", "quickbooks-unknown-path", "A path does not exist in the mapping's QuickBooks entity.",
        "A mapping with `input: {schema: quickbooks/<Entity>}` reads entities with dotted property paths as the API's JSON writes them: `TotalAmt`, `TxnDate`, `CurrencyRef.value`, `EntityRef.name`, `Line[*].Amount` (an array step with `[*]` for every item or `[n]` for one). References (`...Ref`) are objects with `value` (the id) and `name`. Each path is checked against the entity's schema (`specs/finance/data/quickbooks-paths.tsv`, derived from QuickBooks Online API responses); the help names the properties valid at the step that is wrong, and the closest one.";
    QUICKBOOKS_UNKNOWN_ENTITY = "SL441", "quickbooks-unknown-entity", "A mapping's `input.schema` names no QuickBooks entity.",
        "A mapping reads one QuickBooks entity, spelt as the API spells it: `quickbooks/Purchase`, `quickbooks/Deposit`, `quickbooks/Payment`, `quickbooks/JournalEntry`, `quickbooks/Account`, `quickbooks/Transfer`, `quickbooks/Bill`, `quickbooks/BillPayment`, `quickbooks/Invoice`, `quickbooks/SalesReceipt`, `quickbooks/RefundReceipt`, `quickbooks/CreditMemo` or `quickbooks/VendorCredit`.";
    QUICKBOOKS_MAP_INPUT_MISMATCH = "SL442", "quickbooks-map-input-mismatch", "A map stage's records and its QuickBooks mapping disagree.",
        "A mapping with `input: {schema: quickbooks/<Entity>}` maps entities of one kind, emitted by a `quickbooks` source. Feed the map stage from a `quickbooks` source whose `entities` is that entity alone (`entities: [Purchase]` for `quickbooks/Purchase`): a source reading several entities emits several kinds.";
    QUICKBOOKS_INPUT_MISMATCH = "SL443", "quickbooks-input-mismatch", "A stage or sink cannot take raw QuickBooks entities.",
        "A `quickbooks` source emits entities as QuickBooks sends them, which hold customers', vendors' and employees' names, addresses and e-mail addresses. Stages that read HL7 v2 paths or output fields, and table sinks, cannot read them; read them with a map stage whose mapping has `input: {schema: quickbooks/<Entity>}`, so that the PHI-flow proof sees which PII reaches each sink.";
    QUICKBOOKS_EACH_UNSUPPORTED = "SL444", "quickbooks-each-unsupported", "`each` over QuickBooks arrays is not supported yet.",
        "A mapping over QuickBooks entities maps one output record per entity; it cannot yet iterate over an array (one item per `Line`, built of several members). Map a list of values with the path itself, which gives one item per value (`line_amounts: Line[*].Amount`), or pick one item by index (`Line[0].Amount`).";
    PLAID_UNKNOWN_PATH = "SL445", "plaid-unknown-path", "A path does not exist in the mapping's Plaid object.",
        "A mapping with `input: {schema: plaid/transaction}` or `plaid/account` reads Plaid's JSON with dotted property paths as the API writes them: `amount`, `date`, `iso_currency_code`, `personal_finance_category.primary`, `balances.current`, `category[*]` (an array step with `[*]` for every item or `[n]` for one). Each path is checked against the object's schema (`specs/finance/data/plaid-paths.tsv`, derived from Plaid's published OpenAPI spec); the help names the properties valid at the step that is wrong, and the closest one.";
    PLAID_UNKNOWN_OBJECT = "SL446", "plaid-unknown-object", "A mapping's `input.schema` names no Plaid object.",
        "A mapping reads one Plaid object: `plaid/transaction` (the transactions of `/transactions/sync`, a `plaid` source's `transactions` table) or `plaid/account` (the accounts of `/accounts/get`, its `accounts` table).";
    PLAID_MAP_INPUT_MISMATCH = "SL447", "plaid-map-input-mismatch", "A map stage's records and its Plaid mapping disagree.",
        "A mapping with `input: {schema: plaid/<object>}` maps objects of one kind, emitted by a `plaid` source. Feed the map stage from a `plaid` source whose `tables` is that object's table alone (`tables: [transactions]` for `plaid/transaction`): a source reading both tables emits both kinds.";
    PLAID_INPUT_MISMATCH = "SL448", "plaid-input-mismatch", "A stage or sink cannot take raw Plaid objects.",
        "A `plaid` source emits accounts and transactions as Plaid sends them, which can hold the account owner's name, payees' names and where a purchase was made. Stages that read HL7 v2 paths or output fields, and table sinks, cannot read them; read them with a map stage whose mapping has `input: {schema: plaid/transaction}` (or `plaid/account`), so that the PHI-flow proof sees which PII reaches each sink.";
    PLAID_EACH_UNSUPPORTED = "SL449", "plaid-each-unsupported", "`each` over Plaid arrays is not supported yet.",
        "A mapping over Plaid objects maps one output record per object; it cannot yet iterate over an array. Map a list of values with the path itself, which gives one item per value (`categories: category[*]`), or pick one item by index (`category[0]`).";
    STATEMENTS_ROLE = "SL460", "statements-role", "`outputs.statements` names no role for its transactions.",
        "A reconciliation's financial documents (`outputs.statements`) list, per account, the records of one of its two inputs as the account's transactions, each with `reconciled` from the outcome. `transactions` names that input by its role: `left` or `right` (the input's `name` is what outputs call it, not its role).";
    STATEMENTS_ACCOUNT_FIELD = "SL461", "statements-account-field", "The transactions' input of `outputs.statements` declares no `account` field.",
        "Each transaction is listed in the document of its account, found by the account id the record carries. Declare the field on the input named by `transactions`: `account: account_id` for Plaid transactions and for canonical financial transactions (`canonical/financial-transaction@1`), a dotted path for a nested id. Records without a value there are not lost: they go to the `unassigned` output (RT174).";
    AMQP_TLS_PLAIN_URL = "SL470", "amqp-tls-plain-url", "An `amqp` source or sink has `tls` settings but an `amqp://` URL.",
        "`tls` (a CA file, a client certificate) only applies to an `amqps://` connection; with a plain `amqp://` URL the connection would not use TLS at all and the settings would silently do nothing. Write `amqps://host:5671/vhost` (RabbitMQ's TLS listener, 5671 by default), or remove `tls`. A URL behind a secret reference is checked the same way when the run starts (RT177).";
    AMQP_TLS_CLIENT_PAIR = "SL471", "amqp-tls-client-pair", "An `amqp` TLS client certificate without its key, or a key without its certificate.",
        "Mutual TLS needs both halves: `client_cert` (the certificate chain, a PEM file) is presented to the server, and `client_key` (its private key, a secret reference such as `${file:certs/client.key}`) proves it. Write both, or neither.";
    AMQP_TLS_FILE = "SL472", "amqp-tls-file", "An `amqp` TLS certificate file is missing or holds no PEM certificate.",
        "`tls.ca_file` and `tls.client_cert` name PEM files (relative to the pipeline file) that must exist and hold at least one `-----BEGIN CERTIFICATE-----` block; a `client_key` written as `${file:...}` must exist too (its content, a secret, is only read when the run starts). A missing or empty file would otherwise fail only at the TLS handshake. Fix the path, or convert the certificate to PEM (`openssl x509 -inform der -in ca.der -out ca.pem`).";
    EXPR_SYNTAX = "SL501", "expr-syntax", "An expression cannot be parsed.",
        "Mapping values, rule conditions, filters and routes are expressions: paths (`PID-5.1`), string literals in double quotes (`\"hl7\"`), numbers, `true`, `false`, `null`, function calls, `+`, comparisons, `and`, `or`, `not`. Note that a string literal needs quotes inside the YAML value: `'\"hl7\"'`.";
    TYPE_MISMATCH = "SL502", "type-mismatch", "An expression has the wrong type.",
        "The expression's type does not fit where it is used: an output field's type, a function's parameter, or a condition (which must be boolean). The help suggests a conversion such as `date(...)` when there is one.";
    UNKNOWN_FUNCTION = "SL503", "unknown-function", "Unknown function.",
        "The function is not one of the built-in functions. `docs/spec-reference.md` lists them with their signatures.";
    WRONG_ARGUMENTS = "SL504", "wrong-arguments", "A function is called with the wrong arguments.",
        "The number of arguments, or a named argument, does not match the function's signature.";
    UNKNOWN_TABLE = "SL505", "unknown-table", "Unknown code table.",
        "`lookup(value, table)` names a table declared under the mapping's `tables`.";
    UNKNOWN_VARIABLE = "SL506", "unknown-variable", "Unknown name in an expression.",
        "A bare name in an expression must be the iteration variable of the enclosing `each` (its `as:`). Segment paths are written with a dash, like `PID-5`.";
    TEMPLATE_ERROR = "SL507", "template-error", "A template is invalid or uses an unbound variable.",
        "`template(\"...\", name=expr, ...)` renders a minijinja template. Every variable the template uses must be passed as a named argument, and the template must parse.";
    MULTI_VALUE = "SL508", "multi-value", "A list is used where one value is expected.",
        "A path with `[*]` yields every repetition. Use it in a list field (`each:`), pick one repetition (`PID-3[0].1`), or join the values with `join(PID-3[*].1, \",\")`.";
    UNKNOWN_GROUP = "SL509", "unknown-group", "Unknown segment group.",
        "`each: group(NAME)` iterates over the instances of a segment group of the message structure (`ORDER_OBSERVATION` in ORU^R01, `ORDER` in ORM^O01, `INSURANCE` in ADT^A01). The name must be a group of the structures of the mapping's `message_types` in its input version, spelled as the standard spells it; `docs/spec-reference.md` explains where the structures come from.";
    SEGMENT_NOT_IN_GROUP = "SL510", "segment-not-in-group", "A path within a segment group names a segment outside the group.",
        "A path on a group variable (`order.OBR-4`) reads only the segments of that group instance, so its segment must occur in the group. Read segments of the whole message with a plain path (`PID-5`), or iterate the group that holds the segment.";
    GROUP_NESTING = "SL511", "group-nesting", "A segment group is iterated from a group that does not contain it.",
        "`var.group(NAME)` iterates the instances of NAME inside the group instance bound to `var`, so NAME must be nested in that group (in ORU^R01, `OBSERVATION` is inside `ORDER_OBSERVATION`). Iterate it from a variable of the group that contains it, or at the top level with `group(NAME)`.";
    NOT_A_GROUP = "SL512", "not-a-group", "A segment group is used as a value, or a value as a segment group.",
        "`group(...)` can only be iterated by `each:` in a list field, and a group variable is read through paths (`order.OBR-4.1`), not used as a value. Conversely, a variable bound to a field repetition (`each: PID-3[*]`) has components (`id.1`), not segments.";
    PHI_UNMASKED = "SL601", "phi-unmasked", "PHI reaches a sink without a masking decision.",
        "A field that carries a PHI class (from the input paths its expression reads) reaches a sink, and no masking policy on the way says what to do with that class. Add a rule for the class (or the field) to the mask stage's policy: `redact`, `partial`, `hash`, `null`, or `keep` with a `reason`. A pipeline with `phi_proof: lenient` gets this as a warning instead: it compiles, the value reaches the sink as it is, and the masking matrix shows the field kept in clear, decided by the `phi_proof` line (for trial runs on synthetic data; never for real patients).";
    KEEP_WITHOUT_REASON = "SL602", "keep-without-reason", "`keep` has no reason.",
        "Keeping PHI in clear is a decision reviewers must be able to read: write `{action: keep, reason: \"...\"}`.";
    UNKNOWN_PHI_CLASS = "SL603", "unknown-phi-class", "Unknown PHI class.",
        "Masking policies name classes such as `name`, `ssn`, `mrn`, `dob`, `address`, `phone`; `docs/spec-reference.md` lists all of them.";
    MASK_HASH_KEY = "SL604", "mask-hash-key", "`hash` and `shift_date` need a key.",
        "Keyed hashing (HMAC-SHA256) needs a secret key so pseudonyms cannot be reversed by hashing guesses, and `shift_date` derives each person's shift from the same key so it cannot be recomputed from the subject's id: set `hash_key: ${VARIABLE}` in the policy.";
    MASK_TYPE_MISMATCH = "SL605", "mask-type-mismatch", "A masking action would change a field's type.",
        "`partial`, `hash`, `redact` and `generalize` to `zip3` write text. On a field whose output type is a date, a datetime, a number or a boolean, that text would break the output schema's contract for every consumer. `shift_date` and `generalize` to `year` keep a date a date (or text), `generalize` to `age` keeps a number a number. Use `null` for such fields (or `keep` with a reason), or give the field its own rule under `fields:`.";
    DLQ_UNENCRYPTED = "SL606", "dlq-unencrypted", "The DLQ would keep raw messages unencrypted.",
        "The DLQ keeps each rejected message whole, and messages hold patient data, so `sluice run` refuses to start (RT021) unless `dlq.encryption_key` names a key (`${SLUICE_DLQ_KEY}` or `${file:path}`: 32 random bytes as 64 hex digits, `openssl rand -hex 32`) or `dlq.plaintext_reason` says why plain text is acceptable (synthetic or test data only). This warning says so at check time, in CI, before a deployment fails.";
    PHI_ALLOWED_WITHOUT_REASON = "SL607", "phi-allowed-without-reason", "A sink allows PHI without a reason.",
        "`phi: {allowed: true}` lets PHI reach a sink unmasked; reviewers must be able to read why (treatment, the covered entity's own EHR, a business associate agreement): write `phi: {allowed: true, reason: \"...\"}`.";
    ENVIRONMENT_POLICY_WEAKER = "SL608", "environment-policy-weaker", "An environment's masking policy is weaker than the stage's own.",
        "`--env NAME` applies a mask stage's `environments.NAME` policy instead of its `policy`, so that staging or development get stricter masking (full de-identification outside production, say). It may only mask more: for every field the stage decides, the environment's action must be at least as strong as the stage's own (null > redact > hash > tokenize > generalize > shift_date > partial > keep). Strengthen the environment's rule for the field named, or drop the environment.";
    UNKNOWN_ENVIRONMENT = "SL609", "unknown-environment", "No mask stage has a policy for the environment.",
        "`--env NAME` names an environment that no mask stage of the pipeline lists under `environments`: probably a typo, and running with production masking by mistake is what this refuses. Use one of the environments the diagnostic lists, or add `environments: {NAME: policy.yaml}` to the mask stages.";
    MASK_VAULT_KEY = "SL610", "mask-vault-key", "`tokenize` needs a `vault_key`.",
        "`tokenize` replaces a value with a random token and keeps the value, encrypted (AES-256-GCM), in the state store's vault, so that `sluice detokenize` can give it back to someone allowed to see it. The vault is encrypted with the policy's `vault_key`: a secret reference (`${SLUICE_VAULT_KEY}` or `${file:vault.key}`) to 32 random bytes as 64 hex digits (`openssl rand -hex 32`). Add it to the policy (or to a policy it extends). It also needs `hash_key`, under which the vault finds a value's token without storing the value in clear.";
    TOKENIZE_NEEDS_STATE = "SL611", "tokenize-needs-state", "`tokenize` needs a state store.",
        "The vault that keeps each tokenized value with its token lives in the pipeline's state store. Add `state: {path: ...}` (SQLite) or `state: {url: ...}` (PostgreSQL) to the pipeline, or mask the field another way (`hash` if it never has to be reversed).";
    UNKNOWN_AUDIENCE = "SL612", "unknown-audience", "A sink's `audience` names no role.",
        "A sink's `audience: NAME` says who reads what it writes, and the role `NAME` of the pipeline's `roles:` says with which masking policy (`masking: policy.yaml`). The name is not a role of the pipeline: fix the name, or declare the role with its `key_sha256`, `may` and `masking`.";
    AUDIENCE_WITHOUT_POLICY = "SL613", "audience-without-policy", "A sink's audience role names no masking policy.",
        "A sink with `audience: NAME` is masked with the policy of role `NAME` (`masking: policy.yaml`) before it writes, on top of what the mask stages on the way decided (the stronger action wins). The role has no `masking` key, so the sink would not be masked for its audience: add `masking: policies/NAME.yaml` to the role, or remove `audience` from the sink.";
    INVALID_RULE = "SL701", "invalid-rule", "A validation rule is not well formed.",
        "Each rule has exactly one check (`require`, `in`, `format`, `pattern` or `max_length`), and all but `require` need a `path`.";
    INVALID_PATTERN = "SL702", "invalid-pattern", "A regular expression does not compile.",
        "`pattern` is a regular expression in Rust regex syntax (no look-around or backreferences).";
    INVALID_MESSAGE_TYPE = "SL703", "invalid-message-type", "A message type is not well formed.",
        "Message types are written `ADT^A01` (message code and trigger event) or `ADT^*` for every event of a message code.";
    TEST_TARGET = "SL801", "test-target", "A test file does not name one thing to test.",
        "A test file (`kind: test`) names exactly one of `pipeline` (a pipeline file) or `mapping` (a mapping file, with optional `rules`, `policy` and `profile`). `rules`, `policy` and `profile` belong to a mapping test only: a pipeline test uses the pipeline's own.";
    UNSUPPORTED_TEST_INPUT = "SL802", "unsupported-test-input", "A test case's input is missing or in a format that cannot run yet.",
        "A case's `input` holds exactly one format key. `hl7v2` (messages one segment per line, in a YAML block scalar `|`) and `stripe` (Stripe objects one JSON object a line) run today; `x12`, `fhir` and `json` inputs come with their input sources. Until then such cases are refused instead of being skipped silently.";
    UNKNOWN_TEST_SINK = "SL803", "unknown-test-sink", "A test expects records at a sink or source the pipeline does not have.",
        "`expect.outputs` is keyed by sink component names of the pipeline under test (`output` in a mapping test), and `input.source` names one of its sources. Fix the name; `sluice plan` lists the components.";
    DUPLICATE_TEST_CASE = "SL804", "duplicate-test-case", "Two test cases have the same name.",
        "Case names identify cases in reports, JUnit files and `--update`; each must be unique in its file.";
}

/// The code with this text (`SL201`).
pub fn find(code: &str) -> Option<&'static Code> {
    ALL.iter().copied().find(|c| c.code.eq_ignore_ascii_case(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_sorted() {
        for pair in ALL.windows(2) {
            assert!(pair[0].code < pair[1].code, "{} before {}", pair[0].code, pair[1].code);
            assert_ne!(pair[0].name, pair[1].name);
        }
    }
}
