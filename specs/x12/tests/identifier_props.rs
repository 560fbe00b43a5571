//! Properties of loop identification one segment at a time (`sluice_x12::loops::Identifier`):
//! over sets made of a real 837P's and 835's segments in any order and number, an identifier
//! that records nothing (what validation uses) places every segment where the recording one
//! does (`identify_with`), with the same structural findings, in both segment-order modes,
//! ended by SE or not, and keeps no placement or loop instance; and a set read in parts (a
//! splitter with a set limit) is checked exactly as the whole set is.

mod common;

use common::{pool, random_set};
use proptest::prelude::*;
use sluice_x12::codec::{self, Delimiters, Segment};
use sluice_x12::envelope::{Checker, Finding, InterchangeResult, Mode};
use sluice_x12::guide::by_id;
use sluice_x12::loops::{Identifier, identify_with};
use sluice_x12::split::Splitter;

const CLAIMS: &str = include_str!("fixtures/claims-837p.x12");
const REMITS: &str = include_str!("fixtures/remits-835.x12");

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
        let text = random_set(file, &picks, keep_trailer);
        same_places(&text, guide, keep_trailer, strict_order)?;
    }
}

/// What the guide-validating checker says over `text` split with `limit` (`None`: whole sets).
fn checked(text: &str, limit: Option<usize>) -> (Vec<Finding>, Vec<InterchangeResult>, usize) {
    let items: Vec<_> = match limit {
        Some(l) => Splitter::with_set_limit(text.as_bytes(), l).map(Result::unwrap).collect(),
        None => Splitter::new(text.as_bytes()).map(Result::unwrap).collect(),
    };
    let parts = items.iter().filter(|i| matches!(i, sluice_x12::split::Item::SetPart { .. })).count();
    let mut checker = Checker::with_guides(Mode::Strict);
    let mut found = Vec::new();
    let mut done = Vec::new();
    for item in &items {
        found.extend(checker.check(item));
        done.extend(checker.take_done());
    }
    found.extend(checker.finish(text.len()));
    done.extend(checker.take_done());
    (found, done, parts)
}

proptest! {
    #[test]
    fn a_set_read_in_parts_is_checked_as_the_whole_set(
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..120),
        remits in any::<bool>(),
        keep_trailer in any::<bool>(),
        limit in 1..600usize,
    ) {
        let (file, gs) = if remits {
            (REMITS, "GS*HP*S*R*20240115*1030*1*X*005010X221A1~")
        } else {
            (CLAIMS, "GS*HC*S*R*20240115*1030*1*X*005010X222A1~")
        };
        let text = format!(
            "ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *240115*1030*^*00501*000000001*0*P*:~\
             {gs}{}GE*1*1~IEA*1*000000001~",
            random_set(file, &picks, keep_trailer)
        );
        let (found, done, _) = checked(&text, Some(limit));
        let (whole_found, whole_done, none) = checked(&text, None);
        prop_assert_eq!(none, 0);
        prop_assert_eq!(found, whole_found);
        prop_assert_eq!(done, whole_done);
    }
}

#[test]
fn a_long_set_is_read_in_parts_and_checked_as_the_whole_set() {
    for file in [CLAIMS, REMITS] {
        let (found, done, parts) = checked(file, Some(64));
        assert!(parts > 3, "the fixture set comes in parts: {parts}");
        assert_eq!((found, done), {
            let (f, d, _) = checked(file, None);
            (f, d)
        });
    }
}

#[test]
fn the_fixtures_place_alike() {
    for (file, guide) in [(CLAIMS, "005010X222A1"), (REMITS, "005010X221A1")] {
        let text = pool(file).join("~") + "~";
        same_places(&text, guide, true, true).unwrap();
    }
}
