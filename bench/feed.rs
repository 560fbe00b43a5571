//! Benchmark input shared by the criterion benches (included with `#[path]`): the bundled
//! example feed repeated to any number of messages, each with a unique MSH-10, so benches need
//! nothing outside the repository.

use std::path::Path;

/// `messages` newline-separated messages (segments separated by CR), each with a unique MSH-10.
pub fn repeated_example_feed(repo: &Path, messages: usize) -> String {
    let feed = std::fs::read_to_string(repo.join("examples/hl7/feed-2024-01-15.hl7"))
        .expect("examples/hl7/feed-2024-01-15.hl7 is readable");
    let seeds: Vec<&str> = feed.split('\n').map(|m| m.trim_end_matches('\r')).filter(|m| !m.is_empty()).collect();
    assert!(!seeds.is_empty(), "the example feed holds messages");
    let mut out = String::with_capacity(feed.len() * (messages / seeds.len() + 1));
    for i in 0..messages {
        let msg = seeds[i % seeds.len()];
        // MSH-10 is the 10th `|`-separated item of the MSH segment (MSH-1 is the separator).
        let (msh, rest) = msg.split_once('\r').unwrap_or((msg, ""));
        let mut fields: Vec<String> = msh.split('|').map(str::to_string).collect();
        if fields.len() > 9 {
            fields[9] = format!("MSG{i:010}");
        }
        out.push_str(&fields.join("|"));
        if !rest.is_empty() {
            out.push('\r');
            out.push_str(rest);
        }
        out.push_str("\r\n");
    }
    out
}

/// One ORU message whose OBX-5 (an ED value: `^application^pdf^Base64^<data>`) carries
/// `payload_len` bytes of Base64 text (deterministic, no escape sequences), for the large-payload
/// bench and the zero-copy test.
pub fn large_obx5_message(payload_len: usize) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::with_capacity(payload_len + 512);
    text.push_str("MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240115103000||ORU^R01^ORU_R01|BIG0001|P|2.5.1\r");
    text.push_str("PID|1||123456^^^HOSP^MR||DOE^JANE||19800115|F\r");
    text.push_str("OBR|1|ORD1|FIL1|11502-2^Laboratory report^LN\r");
    text.push_str("OBX|1|ED|11502-2^Laboratory report^LN||^application^pdf^Base64^");
    let mut x: u32 = 0x2545_F491;
    text.extend((0..payload_len).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        char::from(B64[(x % 64) as usize])
    }));
    text.push_str("||||||F");
    text
}

/// The fields benchmark B2 extracts (docs/benchmarks.md): JSON key and Sluice path. Every peer
/// reads the first repetition, the named component (the first when none is named) and its first
/// subcomponent, escapes decoded; a missing or empty value is written as `""`.
pub const B2_FIELDS: &[(&str, &str)] = &[
    ("msh9_1", "MSH-9.1"),
    ("msh9_2", "MSH-9.2"),
    ("msh10", "MSH-10"),
    ("pid3_1", "PID-3.1"),
    ("pid5_1", "PID-5.1"),
    ("pid5_2", "PID-5.2"),
    ("pid7", "PID-7"),
    ("pid8", "PID-8"),
];
