//! Links the system OpenBLAS for the conv kernels' matrix products when it is installed
//! (Debian: `apt-get install libopenblas-dev`), else says so and keeps the portable `gemm` crate.
//!
//! `GRAFT_BLAS=off` forces the portable path; `OPENBLAS_LIB_DIR` adds a directory to search.
//!
//! The search runs again when OpenBLAS may have been installed or removed since: when Debian's
//! package database (`/var/lib/dpkg/status`) or Homebrew's `opt` folder changes, or the library
//! that was found changes. (A path that does not exist cannot be watched: cargo would rerun the
//! script, and rebuild this crate, on every build.)

use std::path::PathBuf;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(graft_openblas)");
    println!("cargo:rerun-if-env-changed=GRAFT_BLAS");
    println!("cargo:rerun-if-env-changed=OPENBLAS_LIB_DIR");
    println!("cargo:rerun-if-changed=build.rs");
    for watched in ["/var/lib/dpkg/status", "/opt/homebrew/opt"] {
        if std::path::Path::new(watched).exists() {
            println!("cargo:rerun-if-changed={watched}");
        }
    }
    if std::env::var("GRAFT_BLAS").is_ok_and(|v| v == "off") {
        println!("cargo:warning=GRAFT_BLAS=off: conv kernels use the portable gemm crate (slower)");
        return;
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("OPENBLAS_LIB_DIR").map(PathBuf::from).into_iter().collect();
    let triple_dir = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "/usr/lib/x86_64-linux-gnu",
        Ok("aarch64") => "/usr/lib/aarch64-linux-gnu",
        _ => "/usr/lib",
    };
    dirs.extend(["/usr/local/lib", triple_dir, "/usr/lib64", "/usr/lib", "/opt/homebrew/opt/openblas/lib"].map(PathBuf::from));
    let found = dirs.iter().find_map(|d| ["libopenblas.so", "libopenblas.dylib"].iter().map(|f| d.join(f)).find(|p| p.exists()));
    match found {
        Some(lib) => {
            let dir = lib.parent().expect("a library file has a folder");
            println!("cargo:rerun-if-changed={}", lib.display());
            println!("cargo:rustc-link-search=native={}", dir.display());
            println!("cargo:rustc-link-lib=dylib=openblas");
            println!("cargo:rustc-cfg=graft_openblas");
        }
        None => println!(
            "cargo:warning=OpenBLAS not found (install libopenblas-dev, or set OPENBLAS_LIB_DIR): \
             conv kernels use the portable gemm crate, about 2x slower on AVX-512 machines"
        ),
    }
}
