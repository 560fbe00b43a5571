//! Properties of loop identification one segment at a time (`sluice_x12::loops::Identifier`):
//! over sets made of a real 837P's and 835's segments in any order and number, an identifier
//! that records nothing (what validation uses) places every segment where the recording one
//! does (`identify_with`), with the same structural findings, in both segment-order modes,
//! ended by SE or not, and keeps no placement or loop instance.

use proptest::prelude::*;
use sluice_x12::codec::{self, Delimiters, Segment};
use sluice_x12::guide::by_id;
use sluice_x12::loops::{Identifier, identify_with};

const CLAIMS: &str = include_str!("fixtures/claims-837p.x12");
const REMITS: &str = include_str!("fixtures/remits-835.x12");

/// The segments of the file's set (ST..SE), as text.
fn pool(file: &'static str) -> Vec<&'static str> {
    let st = file.find("ST*").expect("a set");
    let se = file.find("SE*").expect("a trailer");
    let end = se + file[se..].find('~').expect("terminated");
    file[st..=end].split_terminator('~').map(str::trim).collect()
}

fn same_places(text: &str, guide_id: &str, closed: bool, strict_order: bool) -> Result<(), TestCaseError> {
    let guide = by_id(guide_id).expect("bundled");
    let segments: Vec<Segment> = codec::segments(text.as_bytes(), Delimiters::default(), 0).collect();
    let recorded = identify_with(guide, segments.clone(), closed, strict_order);
    let mut streaming = Identifier::new(guide, closed, strict_order, false);
    for (i, seg) in segments.iter().enumerate() {
        let placed = streaming.push(seg);
        let expected = recorded.placements[i];
        prop_assert_eq!(placed.use_.map(|u| u as *const _), expected.use_.map(|u| u as *const _), "segment {}", i + 1);
        prop_assert_eq!(placed.loop_def.id.as_str(), recorded.loop_of(i), "segment {}", i + 1);
    }
    let streamed = streaming.finish();
    prop_assert_eq!(&streamed.findings, &recorded.findings);
    prop_assert!(streamed.placements.is_empty() && streamed.instances.is_empty() && streamed.segments.is_empty());
    Ok(())
}

proptest! {
    #[test]
    fn an_identifier_that_records_nothing_places_segments_as_the_recording_one(
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..120),
        remits in any::<bool>(),
        keep_trailer in any::<bool>(),
        strict_order in any::<bool>(),
    ) {
        let (file, guide) = if remits { (REMITS, "005010X221A1") } else { (CLAIMS, "005010X222A1") };
        let pool = pool(file);
        let (st, body) = pool.split_first().expect("ST");
        let mut text = format!("{st}~");
        for pick in &picks {
            let segment: &&str = pick.get(body);
            text.push_str(segment);
            text.push('~');
        }
        if keep_trailer {
            text.push_str(pool.last().expect("SE"));
            text.push('~');
        }
        same_places(&text, guide, keep_trailer, strict_order)?;
    }
}

#[test]
fn the_fixtures_place_alike() {
    for (file, guide) in [(CLAIMS, "005010X222A1"), (REMITS, "005010X221A1")] {
        let text = pool(file).join("~") + "~";
        same_places(&text, guide, true, true).unwrap();
    }
}
