//! Links the system OpenBLAS for the conv kernels' matrix products when it is installed
//! (Debian: `apt-get install libopenblas-dev`), else says so and keeps the portable `gemm` crate.
//!
//! `GRAFT_BLAS=off` forces the portable path; `OPENBLAS_LIB_DIR` adds a directory to search.

use std::path::PathBuf;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(graft_openblas)");
    println!("cargo:rerun-if-env-changed=GRAFT_BLAS");
    println!("cargo:rerun-if-env-changed=OPENBLAS_LIB_DIR");
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
    let found = dirs.iter().find(|d| ["libopenblas.so", "libopenblas.dylib"].iter().any(|f| d.join(f).exists()));
    match found {
        Some(dir) => {
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
