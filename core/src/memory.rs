//! Memory estimates checked before allocating, so that an absurd setting (a width of 10⁵, a
//! batch of 10⁷) fails its own run with an error naming the setting instead of aborting the
//! process.

use crate::backbone::Layer;
use crate::error::{GraftError, Result};

/// Bytes of memory this process may still take: `MemAvailable` of `/proc/meminfo`; `None` where
/// it cannot be read (then nothing is refused).
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `bytes` in GiB with two decimals.
pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Checks that `needed` bytes fit in `available` (the machine's, by default); the error says
/// what needs them and which setting to lower.
pub fn check_fits(what: &str, needed: u64, setting: &str, available: Option<u64>) -> Result<()> {
    match available.or_else(available_bytes) {
        Some(have) if needed > have => Err(GraftError::TooLarge(format!(
            "{what} needs about {} but {} of memory is available; lower {setting}",
            gib(needed),
            gib(have)
        ))),
        _ => Ok(()),
    }
}

/// Bytes of a network's parameters and BN buffers (f32).
pub fn parameter_bytes(layers: &[Layer]) -> u64 {
    4 * layers.iter().flat_map(|l| &l.params).map(|(_, s)| s.iter().product::<usize>() as u64).sum::<u64>()
}

/// Bytes a training step keeps for `batch` images: every layer's output (f32) twice (the
/// forward values and their gradients), a lower bound of what the graph holds.
pub fn training_activation_bytes(layers: &[Layer], batch: usize) -> u64 {
    let per_image: u64 = layers.iter().map(|l| l.output_shape.iter().product::<usize>() as u64).sum();
    2 * 4 * per_image * batch as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_does_not_fit_is_refused_naming_the_setting() {
        assert!(check_fits("x", 10, "--batch", Some(10)).is_ok());
        let e = check_fits("the bench net's training batch", 3 << 30, "--batch", Some(1 << 30)).unwrap_err().to_string();
        assert_eq!(e, "too large: the bench net's training batch needs about 3.00 GiB but 1.00 GiB of memory is available; lower --batch");
        assert!(available_bytes().is_some_and(|b| b > 0), "/proc/meminfo is readable on Linux");
    }
}
