//! Wall-clock timestamps as written into state files.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch. State files store times in this unit so that the
/// round-trip benchmark can split a delegation into its phases.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A duration in microseconds rendered for humans: `850ms`, `3.2s`, `4m05s`.
pub fn human_us(us: u64) -> String {
    let ms = us / 1000;
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human_us(850_000), "850ms");
        assert_eq!(human_us(3_250_000), "3.2s");
        assert_eq!(human_us(245_000_000), "4m05s");
    }
}
