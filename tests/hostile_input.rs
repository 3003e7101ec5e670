//! Property tests of the parsers that take hostile input, on the stable toolchain: the same
//! entry points as the cargo-fuzz targets in fuzz/ (scripts/fuzz.sh), so CI covers them
//! without nightly. Each property: the input is accepted or refused with an error, never a
//! panic, and what is accepted keeps its invariants.

use std::path::Path;

use proptest::prelude::*;

use netanom::csv::{csv_header, parse_feature_csv};
use netanom::decode::{decode, LinkType};
use netanom::eval::Labels;
use netanom::model::bundle::parse_meta;
use netanom::pipeline::{pump, Pace, PacketSource, Windower};
use netanom::window::{Omega, Window, WindowConfig};

/// The seed corpora of the fuzz targets, so the properties start from valid inputs.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(!seeds.is_empty(), "empty corpus {}", dir.display());
    seeds
}

/// A seed from `seeds` with up to 16 bytes overwritten, some bytes cut off the end, or not.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    (
        0..n,
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..16),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(move |(i, edits, cut, do_cut)| {
            let mut b = seeds[i].clone();
            for (at, v) in edits {
                if !b.is_empty() {
                    let k = at.index(b.len());
                    b[k] = v;
                }
            }
            if do_cut && !b.is_empty() {
                b.truncate(cut.index(b.len()));
            }
            b
        })
}

/// Reads `data` as a capture file through the whole offline pipeline; the windows emitted.
fn read_capture(data: &[u8], max_gap: u64) -> Option<(u64, u64)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.pcap");
    std::fs::write(&path, data).unwrap();
    let source = PacketSource::open_files(&[path], Pace::Unpaced).ok()?;
    let mut config = WindowConfig::new(Omega::from_micros(100_000).unwrap());
    config.max_gap_windows = max_gap;
    let mut windows = Windower::new(config, Vec::<Window>::new());
    let report = pump(source, &mut windows, &mut ()).expect("a Vec sink never fails");
    Some((report.counts.packets, windows.stats().windows))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decode_takes_any_bytes(link in 0..LinkType::ALL.len(), frame in proptest::collection::vec(any::<u8>(), 0..256)) {
        let s = decode(LinkType::ALL[link], &frame, 42, 1514);
        prop_assert_eq!((s.ts_ns, s.wire_len), (42, 1514));
    }

    #[test]
    fn decode_takes_mutated_real_frames(frame in mutated(corpus("decode")), link in 0..LinkType::ALL.len()) {
        let s = decode(LinkType::ALL[link], frame.get(1..).unwrap_or(&[]), 7, 60);
        prop_assert_eq!(s.wire_len, 60);
    }

    #[test]
    fn feature_csv_takes_any_text(text in ".{0,400}") {
        if let Ok(rows) = parse_feature_csv(Path::new("p.csv"), &text) {
            prop_assert!(rows.iter().all(|r| r.features.iter().all(|v| v.is_finite())));
        }
    }

    #[test]
    fn feature_csv_takes_mutated_files(data in mutated(corpus("feature_csv"))) {
        let text = String::from_utf8_lossy(&data);
        if let Ok(rows) = parse_feature_csv(Path::new("p.csv"), &text) {
            prop_assert!(text.starts_with(&csv_header()));
            prop_assert!(rows.len() <= text.lines().count());
        }
    }

    #[test]
    fn labels_take_any_text(text in ".{0,300}") {
        let _ = Labels::parse_str("labels.csv", &text);
    }

    #[test]
    fn labels_take_mutated_files(data in mutated(corpus("label_csv"))) {
        let _ = Labels::parse_str("labels.csv", &String::from_utf8_lossy(&data));
    }

    #[test]
    fn model_json_takes_mutated_files(data in mutated(corpus("model_json"))) {
        if let Ok((meta, _, _)) = parse_meta(&data, Path::new("model.json"), None) {
            prop_assert_eq!(meta.feature_names.len(), 53);
        }
    }
}

proptest! {
    // Each case runs libpcap on a file: fewer cases.
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn captures_take_mutated_files(data in mutated(corpus("capture_file"))) {
        if let Some((packets, windows)) = read_capture(&data, 1000) {
            prop_assert!(windows <= packets * 1001 + 1, "{} windows for {} packets", windows, packets);
        }
    }
}

#[test]
fn the_seed_captures_are_read_whole() {
    // The properties above start from these: make sure they are real captures.
    for seed in corpus("capture_file") {
        let (packets, windows) = read_capture(&seed, 1000).expect("a readable capture");
        assert_eq!(packets, 10);
        assert!(windows >= 1);
    }
    let (meta, _, _) = parse_meta(&corpus("model_json")[0], Path::new("model.json"), None)
        .expect("the shipped model.json");
    assert_eq!(meta.omega.to_string(), "0.5");
}
