//! Build script: make the binaries (netanom, tests, benches) find libtorch at run time
//! without LD_LIBRARY_PATH.
//!
//! torch-sys links against `$LIBTORCH/lib` (LIBTORCH comes from `.cargo/config.toml`, which
//! points at the `.libtorch` symlink made by `scripts/setup-libtorch.sh`, unless the
//! environment sets it). tch's own build script emits an rpath too, but `rustc-link-arg` from a
//! dependency's build script does not reach this package's binaries, so we emit it here.
//! The symlink is canonicalised so the rpath names the real install directory: the binary keeps
//! working when the repository (and its `.libtorch` link) is moved or deleted.
//!
//! Only `<libtorch>/lib` goes into the rpath: the CUDA runtime libraries that the PyPI build of
//! libtorch_cpu.so needs at load time (libcudart, libcupti, in `<cache>/nvidia/cu13/lib`) are
//! found through the libtorch libraries' own RPATH (`$ORIGIN/../../nvidia/...`), so the wheel's
//! directory layout must be kept (see docs/install.md).
//!
//! `NETANOM_EXTRA_RPATH` (colon-separated, `$ORIGIN` allowed) adds directories after that one,
//! for a package that ships the libraries next to the binary.

use std::env;
use std::fs;
use std::path::PathBuf;

const TORCH_VERSION: &str = "2.13.0";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH_BYPASS_VERSION_CHECK");

    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" {
        // rpath handling below is ELF/Linux specific; other systems set their loader path.
        return;
    }

    // torch-sys uses LIBTORCH_LIB (if set) for the lib dir, else LIBTORCH; mirror that.
    let (root, lib) = match (env::var_os("LIBTORCH_LIB"), env::var_os("LIBTORCH")) {
        (Some(l), _) => (PathBuf::from(&l), PathBuf::from(l).join("lib")),
        (None, Some(t)) => (PathBuf::from(&t), PathBuf::from(t).join("lib")),
        (None, None) => {
            println!(
                "cargo:warning=LIBTORCH is not set (normally set by .cargo/config.toml); \
                 no rpath emitted, run scripts/setup-libtorch.sh"
            );
            return;
        }
    };
    println!("cargo:rerun-if-changed={}", root.display());

    let lib = match fs::canonicalize(&lib) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "error: libtorch library directory {} is not usable ({e}).\n\
                 Run scripts/setup-libtorch.sh (it installs torch=={TORCH_VERSION} from PyPI and \
                 links .libtorch), or set LIBTORCH to a libtorch {TORCH_VERSION} directory.",
                lib.display()
            );
            std::process::exit(1);
        }
    };

    // The PyPI layout has torch/version.py; a libtorch zip has build-version. Check whichever
    // exists, so a wrong libtorch gives a clear message here rather than odd link errors.
    if env::var_os("LIBTORCH_BYPASS_VERSION_CHECK").is_none() {
        if let Some(found) = libtorch_version(&root) {
            let base = found.split('+').next().unwrap_or("").trim().to_string();
            if base != TORCH_VERSION {
                eprintln!(
                    "error: {} holds libtorch {found}, tch 0.26 needs {TORCH_VERSION}. \
                     Run scripts/setup-libtorch.sh or set LIBTORCH_BYPASS_VERSION_CHECK=1.",
                    root.display()
                );
                std::process::exit(1);
            }
        }
    }

    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());

    // Extra run-time search directories for packaged installs, searched after the one above,
    // e.g. NETANOM_EXTRA_RPATH='$ORIGIN/../lib/netanom/torch/lib' (colon-separated; `$ORIGIN`
    // is kept literally: rustc runs the linker without a shell). See docs/install.md.
    println!("cargo:rerun-if-env-changed=NETANOM_EXTRA_RPATH");
    if let Ok(extra) = env::var("NETANOM_EXTRA_RPATH") {
        for dir in extra.split(':').filter(|d| !d.is_empty()) {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        }
    }
}

fn libtorch_version(root: &std::path::Path) -> Option<String> {
    if let Ok(s) = fs::read_to_string(root.join("build-version")) {
        return Some(s.trim().to_string());
    }
    let s = fs::read_to_string(root.join("version.py")).ok()?;
    s.lines().find_map(|l| {
        l.strip_prefix("__version__ = ")
            .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
    })
}
