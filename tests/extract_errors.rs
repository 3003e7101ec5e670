//! `netanom extract` on bad input: every error names the file, exits with the documented
//! code (1 input error, 2 usage error) and nothing panics.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use common::*;

fn arp_frame() -> Vec<u8> {
    pad_to(eth(ETH_ARP, &arp_request()), 60)
}

/// A good Ethernet capture: 2 frames in window 1700000000, 1 in window 1700000001 (ω = 1).
fn good_capture() -> Pcap {
    let mut p = Pcap::micro(linktype::EN10MB);
    p.packet(t("1700000000.1"), &arp_frame());
    p.packet(t("1700000000.6"), &arp_frame());
    p.packet(t("1700000001.2"), &arp_frame());
    p
}

fn args(list: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    list.iter().map(|a| a.as_ref().to_owned()).collect()
}

/// Asserts an input error: exit 1, a `netanom: error: <path>: ...` line that contains every
/// one of `needles`, and no panic.
fn assert_input_error(run: &Run, path: &Path, needles: &[&str]) {
    run.assert_no_panic();
    assert_eq!(run.code, 1, "exit code; stderr:\n{}", run.stderr);
    let prefix = format!("netanom: error: {}: ", path.display());
    let line = run
        .stderr
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| {
            panic!(
                "no line starting with {prefix:?} in stderr:\n{}",
                run.stderr
            )
        });
    for n in needles {
        assert!(
            line.to_lowercase().contains(&n.to_lowercase()),
            "{n:?} not in {line:?}"
        );
    }
}

/// The data rows (after the header) of extract's standard output.
fn data_rows(stdout: &str) -> usize {
    stdout.lines().skip(1).filter(|l| !l.is_empty()).count()
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-file.pcap");
    let run = extract(&[&path], "1");
    assert_input_error(&run, &path, &["no such file"]);
    assert_eq!(
        run.stderr.trim_end().lines().count(),
        1,
        "one line:\n{}",
        run.stderr
    );
    assert_eq!(data_rows(&run.stdout), 0);
}

#[test]
fn directory_instead_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = extract(&[dir.path()], "1");
    assert_input_error(&run, dir.path(), &["directory"]);
    assert_eq!(
        run.stderr.trim_end().lines().count(),
        1,
        "one line:\n{}",
        run.stderr
    );
}

#[test]
fn text_file_is_not_a_capture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "this is not a capture file\nat all\n").unwrap();
    let run = extract(&[&path], "1");
    assert_input_error(&run, &path, &["not a pcap"]);
    assert_eq!(
        run.stderr.trim_end().lines().count(),
        1,
        "one line:\n{}",
        run.stderr
    );
}

#[test]
fn empty_file_is_not_a_capture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.pcap");
    std::fs::write(&path, b"").unwrap();
    let run = extract(&[&path], "1");
    assert_input_error(&run, &path, &["not a pcap"]);
    assert_eq!(
        run.stderr.trim_end().lines().count(),
        1,
        "one line:\n{}",
        run.stderr
    );
}

#[test]
fn header_only_capture_gives_no_windows() {
    // A valid pcap header and no packets: not an error, just no rows.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nothing.pcap");
    Pcap::micro(linktype::EN10MB).write(&path);
    let run = extract(&[&path], "1");
    run.assert_ok();
    assert_eq!(run.stdout, format!("{}\n", expected_header()));
}

#[test]
fn unsupported_link_type_is_named_with_the_supported_list() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wifi.pcap");
    let mut p = Pcap::micro(linktype::IEEE802_11);
    p.packet(
        t("1700000000.1"),
        &[0x08, 0x00, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    );
    p.write(&path);
    let run = extract(&[&path], "1");
    assert_input_error(
        &run,
        &path,
        &["unsupported link type", "IEEE802_11", "105", "supported"],
    );
    // The list of supported ones, each named.
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("IEEE802_11"))
        .unwrap();
    let (_, supported) = line
        .split_once("supported:")
        .expect("a list after 'supported:'");
    for name in ["EN10MB", "LINUX_SLL", "LINUX_SLL2", "RAW", "NULL", "LOOP"] {
        assert!(
            supported.contains(name),
            "{name} not in the supported list: {line}"
        );
    }
    assert_eq!(data_rows(&run.stdout), 0);
}

#[test]
fn a_bad_second_file_fails_before_any_window_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pcap");
    good_capture().write(&good);
    let bad = dir.path().join("missing.pcap");
    let run = extract(&[&good, &bad], "1");
    assert_input_error(&run, &bad, &["no such file"]);
    assert_eq!(data_rows(&run.stdout), 0, "stdout:\n{}", run.stdout);
}

/// Writes `good_capture()` plus a fourth record cut after `keep` of its bytes.
fn cut_capture(dir: &Path, keep: usize) -> PathBuf {
    let good = good_capture();
    let mut bytes = good.bytes();
    let mut last = Pcap::micro(linktype::EN10MB);
    last.packet(t("1700000002.5"), &arp_frame());
    let record = &last.bytes()[24..]; // 16-byte record header + 60 bytes
    assert_eq!(record.len(), 76);
    bytes.extend_from_slice(&record[..keep]);
    let path = dir.join(format!("cut-{keep}.pcap"));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_cut_off_file_ends_there_and_the_next_file_is_still_read() {
    // docs/features.md, "Damaged files": the same rule for every command.
    let dir = tempfile::tempdir().unwrap();
    let cut = cut_capture(dir.path(), 46);
    let mut later = Pcap::micro(linktype::EN10MB);
    later.packet(t("1700000003.3"), &arp_frame());
    later.packet(t("1700000003.4"), &arp_frame());
    let next = dir.path().join("next.pcap");
    later.write(&next);
    let run = extract(&[&cut, &next], "1");
    assert_input_error(&run, &cut, &["cut off after packet 3"]);
    let csv = parse_csv(&run.stdout);
    assert_eq!(
        csv.starts(),
        [
            "1700000000.000000",
            "1700000001.000000",
            "1700000002.000000",
            "1700000003.000000"
        ],
        "the cut file's windows, an empty one, then the next file's"
    );
    assert_eq!(csv.counts(), [2.0, 1.0, 0.0, 2.0]);
}

#[test]
fn file_cut_off_mid_record_keeps_the_windows_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    // Cut inside the packet data (16 + 30 of 76 bytes) and inside the record header (9).
    for keep in [46, 9] {
        let path = cut_capture(dir.path(), keep);
        let run = extract(&[&path], "1");
        assert_input_error(&run, &path, &["cut off"]);
        let csv = parse_csv(&run.stdout);
        assert_eq!(
            csv.starts(),
            ["1700000000.000000", "1700000001.000000"],
            "cut at {keep}"
        );
        assert_eq!(csv.counts(), [2.0, 1.0], "cut at {keep}");
        // The same with --output: the rows are in the file.
        let out = dir.path().join(format!("cut-{keep}.csv"));
        let run = netanom(&args(&[
            &"extract",
            &"--window",
            &"1",
            &"--pcap",
            &path,
            &"--output",
            &out,
        ]));
        assert_input_error(&run, &path, &["cut off"]);
        let csv = parse_csv(&std::fs::read_to_string(&out).unwrap());
        assert_eq!(csv.counts(), [2.0, 1.0], "--output, cut at {keep}");
    }
}

#[test]
fn bad_window_values_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.pcap");
    good_capture().write(&path);
    // `--window=V` so that clap hands V to the parser even when it starts with '-'.
    for value in [
        "0",
        "0.0",
        "-1",
        "abc",
        "0.0000001",
        "",
        "1e3",
        "1.2.3",
        "-0.5",
    ] {
        let run = netanom(&args(&[
            &"extract",
            &"--pcap",
            &path,
            &format!("--window={value}"),
        ]));
        run.assert_no_panic();
        assert_eq!(run.code, 2, "--window={value:?}: stderr:\n{}", run.stderr);
        assert!(
            run.stderr.contains("--window"),
            "--window={value:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("'{value}'"))
                || run.stderr.contains(&format!("\"{value}\"")),
            "--window={value:?}: the value is not quoted back: {}",
            run.stderr
        );
        assert_eq!(run.stdout, "", "--window={value:?}: nothing on stdout");
    }
    // `--window -1` (separate argument): clap refuses it as an unknown flag; still exit 2.
    let run = netanom(&args(&[&"extract", &"--pcap", &path, &"--window", &"-1"]));
    run.assert_no_panic();
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("-1"), "{}", run.stderr);
}

#[test]
fn missing_required_options_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.pcap");
    good_capture().write(&path);
    let run = netanom(&args(&[&"extract", &"--pcap", &path]));
    run.assert_no_panic();
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--window"), "{}", run.stderr);
    let run = netanom(&args(&[&"extract", &"--window", &"1"]));
    run.assert_no_panic();
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--pcap"), "{}", run.stderr);
}

#[test]
fn unwritable_output_path() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("good.pcap");
    good_capture().write(&input);
    // A path under a directory that does not exist, and a path that is a directory
    // (both fail even for root).
    let missing_parent = dir.path().join("no-such-dir").join("features.csv");
    let is_dir = dir.path().to_path_buf();
    for out in [missing_parent, is_dir] {
        let run = netanom(&args(&[
            &"extract",
            &"--window",
            &"1",
            &"--pcap",
            &input,
            &"--output",
            &out,
        ]));
        assert_input_error(&run, &out, &["output"]);
        assert_eq!(run.stdout, "", "no CSV on stdout when --output is given");
    }
}

#[test]
fn an_input_error_leaves_an_existing_output_file_alone() {
    // `--output features.csv --pcap typo.pcap` must not destroy last run's features.csv:
    // the input is refused before anything is written.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("features.csv");
    std::fs::write(&out, "previous results\n").unwrap();
    let missing = dir.path().join("typo.pcap");
    let run = netanom(&args(&[
        &"extract",
        &"--window",
        &"1",
        &"--pcap",
        &missing,
        &"--output",
        &out,
    ]));
    assert_input_error(&run, &missing, &["no such file"]);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "previous results\n",
        "the existing output file was overwritten although no input could be read"
    );
}

#[test]
fn model_subcommands_without_netanom_full_say_what_is_missing() {
    // `netanom` runs `extract` itself and execs `netanom-full` for the rest: a lone copy must
    // still extract, and name the missing sibling for the others.
    let dir = tempfile::tempdir().unwrap();
    let lone = dir.path().join("netanom");
    std::fs::copy(netanom_exe(), &lone).unwrap();
    let out = std::process::Command::new(&lone)
        .args(["score", "--model", "m", "--pcap", "x.pcap"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("netanom-full") && stderr.contains("install it next to"),
        "{stderr}"
    );
    let out = std::process::Command::new(&lone)
        .args(["extract", "--window", "1", "--pcap"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/lo-sample.pcap"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("window_start,window_end,"));
}

#[test]
fn a_crafted_capture_of_alternating_timestamps_gives_bounded_output() {
    // Timestamps alternating between two times just over max_gap_windows apart, then three
    // points walking back: before, each pair of packets wrote up to 100,000 empty windows.
    let dir = tempfile::tempdir().unwrap();
    let mut p = Pcap::micro(linktype::EN10MB);
    let (a, b) = (1_700_000_000i64, 1_700_000_000i64 + 100_001);
    for _ in 0..200 {
        p.packet(t(&a.to_string()), &arp_frame());
        p.packet(t(&b.to_string()), &arp_frame());
    }
    let mut x = b + 50_000;
    for _ in 0..200 {
        p.packet(t(&x.to_string()), &arp_frame());
        p.packet(t(&(x + 100_000).to_string()), &arp_frame());
        x -= 100_001;
    }
    let path = dir.path().join("alternating.pcap");
    p.write(&path);
    let run = extract(&[&path], "1");
    run.assert_no_panic();
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Time covered for the first time is a..b+150,000 (forward moves within max_gap, filled
    // once as quiet windows); every other packet adds at most one window. Before, each pair
    // of the first part filled 100,000 windows again: about 20 million rows.
    let rows = data_rows(&run.stdout);
    assert!(
        rows <= 800 + 250_001,
        "{rows} rows for 800 packets: the output must stay bounded"
    );
    assert!(
        rows >= 250_000,
        "{rows} rows: the first-time gaps are quiet windows"
    );
    assert!(
        run.stderr.to_lowercase().contains("jump"),
        "the jumps are reported:\n{}",
        run.stderr
    );
}
