//! An advisory lock beside a results file (`<results>.lock`), so that two runs of one suite
//! cannot both run the grid: a run of the whole suite holds it exclusively and writes who it is
//! into it; `--shard` runs share it (they split the grid between them) and keep out a whole run.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Held for as long as the run lasts; dropping it (or the process ending, even by `kill -9`)
/// releases the lock.
pub struct ResultsLock {
    _file: File,
}

/// The lock file of `results`: `<results>.lock`.
pub fn lock_path(results: &Path) -> PathBuf {
    let mut name = results.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    results.with_file_name(name)
}

impl ResultsLock {
    /// Takes the lock of `results`: exclusive for a whole-suite run, shared for a shard. When
    /// another run holds it, the error names that run (its process id and command line) and what
    /// to do.
    pub fn acquire(results: &Path, shard: bool) -> Result<Self> {
        let path = lock_path(results);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening the lock file {}", path.display()))?;
        let taken = if shard { fs4::fs_std::FileExt::try_lock_shared(&file) } else { fs4::fs_std::FileExt::try_lock_exclusive(&file) };
        if !taken.with_context(|| format!("locking {}", path.display()))? {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let who = if holder.trim().is_empty() { "one or more `--shard` runs".to_string() } else { holder.trim().to_string() };
            bail!(
                "{} is in use by another graft run ({who}); wait for it to finish. Runs of one suite can share a results \
                 file only as shards (--shard i/n), and a whole-suite run cannot start while shards run",
                results.display()
            );
        }
        // A whole-suite run says who it is; a shard clears what an earlier whole run left (shards
        // are named as such in the refusal).
        let me = if shard { String::new() } else { format!("pid {}: {}", std::process::id(), std::env::args().collect::<Vec<_>>().join(" ")) };
        file.set_len(0).and_then(|_| file.seek(SeekFrom::Start(0))).and_then(|_| file.write_all(me.as_bytes())).ok();
        Ok(Self { _file: file })
    }
}
