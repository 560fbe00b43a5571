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
