//! The targets that link the netanom crate (label_csv, model_json) load libtorch: give them
//! the same rpath the main build gives its binaries (see ../build.rs), so no
//! LD_LIBRARY_PATH is needed.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Some(root) = std::env::var_os("LIBTORCH") {
        let root = std::path::PathBuf::from(root);
        let lib = std::fs::canonicalize(&root).unwrap_or(root).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
