//! `netanom` must never load libtorch: extraction would pay its ≈ 0.3 s start-up per process
//! (docs/performance.md). The guarantee is structural — nothing this crate depends on links
//! libtorch — and both halves are checked here: the dependency graph, and the built binary.

use std::path::Path;
use std::process::Command;

/// Crates that link libtorch.
const TORCH_CRATES: [&str; 2] = ["tch", "torch-sys"];

/// Shared libraries of libtorch (and the CUDA runtime it drags in).
const TORCH_LIBS: [&str; 4] = ["libtorch", "libc10", "libcudart", "libgomp"];

#[test]
fn the_dependency_graph_has_no_libtorch() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--prefix",
            "none",
            "-e",
            "normal,build",
        ])
        .args(["--manifest-path", manifest, "-p", "netanom-cli"])
        .output()
        .expect("run cargo tree");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crates: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(crates.contains(&"netanom-core"), "unexpected tree:\n{text}");
    assert!(crates.contains(&"pcap"), "unexpected tree:\n{text}");
    for c in TORCH_CRATES {
        assert!(!crates.contains(&c), "netanom-cli depends on {c}:\n{text}");
    }
}

/// The shared libraries `path` loads, as `ldd` lists them.
fn loaded_libraries(path: &Path) -> String {
    let out = Command::new("ldd").arg(path).output().expect("run ldd");
    assert!(out.status.success(), "ldd {}", path.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_binary_loads_no_libtorch() {
    let exe = Path::new(env!("CARGO_BIN_EXE_netanom"));
    // The same check on a release build when there is one (scripts/bench-extract.sh makes it).
    let release = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/netanom");
    for bin in std::iter::once(exe.to_path_buf()).chain(release.is_file().then_some(release)) {
        let libs = loaded_libraries(&bin);
        assert!(libs.contains("libpcap"), "{}:\n{libs}", bin.display());
        for lib in TORCH_LIBS {
            assert!(
                !libs.contains(lib),
                "{} loads {lib}:\n{libs}",
                bin.display()
            );
        }
    }
}
