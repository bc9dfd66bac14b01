//! How durations, byte sizes and counts are written, and the one way a
//! value outside its [`Limit`] is refused: `expected MIN to MAX, found
//! VALUE: WHY`. Every section's checks go through here, so no key can be
//! parsed without its bounds being checked.

use std::time::Duration;

use super::Problems;
use crate::config::bounds::Limit;
use crate::config::raw::RawBytes;

/// `text` as a duration within `limit`; `default` when unset. A refused
/// value also yields `default`, so checks that relate keys see a sane one.
pub(super) fn duration(
    text: Option<&str>,
    key: &str,
    default: Duration,
    limit: &Limit<Duration>,
    p: &mut Problems,
) -> Duration {
    let Some(t) = text else { return default };
    match humantime::parse_duration(t) {
        Ok(d) if limit.contains(&d) => d,
        Ok(_) => {
            p.add(
                key,
                format!(
                    "expected {} to {}, found {t:?}: {}",
                    show_duration(limit.min),
                    show_duration(limit.max),
                    limit.why
                ),
            );
            default
        }
        Err(e) => {
            p.add(
                key,
                format!("expected a duration such as \"30s\" or \"24h\", found {t:?} ({e})"),
            );
            default
        }
    }
}

/// A count within `limit`; `default` when unset or refused.
pub(super) fn count(
    value: Option<u32>,
    key: &str,
    default: u32,
    limit: &Limit<u32>,
    p: &mut Problems,
) -> u32 {
    let Some(n) = value else { return default };
    if limit.contains(&n) {
        return n;
    }
    p.add(
        key,
        format!(
            "expected {} to {}, found {n}: {}",
            limit.min, limit.max, limit.why
        ),
    );
    default
}

/// A byte size (a number, or text such as `"8MiB"`) within `limit`;
/// `default` when unset or refused.
pub(super) fn bytes(
    value: Option<&RawBytes>,
    key: &str,
    default: u64,
    limit: &Limit<u64>,
    p: &mut Problems,
) -> u64 {
    let n = match value {
        None => return default,
        Some(RawBytes::Number(n)) => *n,
        Some(RawBytes::Text(t)) => match parse_bytes(t) {
            Some(n) => n,
            None => {
                p.add(
                    key,
                    format!("expected a size such as \"8MiB\", found {t:?}"),
                );
                return default;
            }
        },
    };
    if limit.contains(&n) {
        return n;
    }
    p.add(
        key,
        format!(
            "expected {} to {}, found {}: {}",
            show_bytes(limit.min),
            show_bytes(limit.max),
            show_bytes(n),
            limit.why
        ),
    );
    default
}

/// `"8MiB"`, `"512KiB"`, `"1GiB"`, `"1000"`, `"4MB"` → bytes.
pub(super) fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// A limit as it would be written in the file: `"1h"`, `"30d"`, `"2m"`
/// (humantime would print 365 days as months and hours).
pub(super) fn show_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 {
        return humantime::format_duration(d).to_string();
    }
    // Days from two up: one day reads better as 24h, as the engines write
    // search.max_keep_alive.
    const DAY: u64 = 86_400;
    if secs >= 2 * DAY && secs % DAY == 0 {
        return format!("{}d", secs / DAY);
    }
    for (unit, size) in [("h", 3_600), ("m", 60)] {
        if secs >= size && secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

fn show_bytes(n: u64) -> String {
    for (unit, size) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= size && n % size == 0 {
            return format!("{}{unit}", n / size);
        }
    }
    format!("{n} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("8MiB"), Some(8 << 20));
        assert_eq!(parse_bytes("512 KiB"), Some(512 << 10));
        assert_eq!(parse_bytes("1000"), Some(1000));
        assert_eq!(parse_bytes("4MB"), Some(4_000_000));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("99999999999999999999GiB"), None);
        assert_eq!(show_bytes(64 << 20), "64MiB");
        assert_eq!(show_bytes(1500), "1500 bytes");
    }

    #[test]
    fn limits_print_as_they_are_written() {
        for (d, shown) in [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_secs(120), "2m"),
            (Duration::from_secs(3_600), "1h"),
            (Duration::from_secs(86_400), "24h"),
            (Duration::from_secs(2 * 86_400), "2d"),
            (Duration::from_secs(365 * 86_400), "365d"),
            (Duration::from_millis(1500), "1s 500ms"),
        ] {
            assert_eq!(show_duration(d), shown);
            assert_eq!(humantime::parse_duration(shown).unwrap(), d);
        }
    }

    #[test]
    fn a_refused_value_names_the_limit_and_yields_the_default() {
        let limit = Limit {
            min: Duration::from_secs(1),
            max: Duration::from_secs(60),
            why: "because",
        };
        let mut p = Problems::default();
        let five = Duration::from_secs(5);
        assert_eq!(duration(Some("0s"), "k", five, &limit, &mut p), five);
        assert_eq!(duration(Some("2m"), "k", five, &limit, &mut p), five);
        assert_eq!(duration(Some("soon"), "k", five, &limit, &mut p), five);
        assert_eq!(duration(None, "k", five, &limit, &mut p), five);
        assert_eq!(
            duration(Some("1m"), "k", five, &limit, &mut p),
            Duration::from_secs(60)
        );
        let messages: Vec<String> = p.0.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages[..2],
            [
                "k: expected 1s to 1m, found \"0s\": because",
                "k: expected 1s to 1m, found \"2m\": because"
            ]
        );
        assert!(
            messages[2].starts_with("k: expected a duration"),
            "{messages:?}"
        );
        assert_eq!(messages.len(), 3);
    }
}
