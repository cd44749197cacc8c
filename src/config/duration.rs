//! Human-readable durations in the config (`250ms`, `10s`, `2m`, `1h`).

use std::time::Duration;

/// Parses `250ms`, `10s`, `1.5s`, `2m`, `1h`, `0`. A bare number without a unit is rejected
/// (except `0`) because it is ambiguous between seconds and milliseconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| {
            format!("`{text}` has no unit; write it like `250ms`, `10s`, `2m` or `1h`")
        })?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| {
        format!("`{text}` is not a duration; write it like `250ms`, `10s`, `2m` or `1h`")
    })?;
    let seconds_per_unit = match unit.trim() {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "`{text}` has unknown unit `{other}`; use ms, s, m or h"
            ))
        }
    };
    let seconds = value * seconds_per_unit;
    if !seconds.is_finite() || seconds > 365.0 * 24.0 * 3600.0 {
        return Err(format!("`{text}` is too long (at most one year)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Formats a duration the way the config accepts it, for error messages and logs.
pub fn format(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis % 1000 == 0 {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

/// Serde adapter: `#[serde(with = "crate::config::duration::serde_text")]`.
pub mod serde_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse(&text).map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format(*duration))
    }
}

/// Serde adapter for an optional duration (absent or `null` = `None`).
pub mod serde_option_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| super::parse(&text).map_err(serde::de::Error::custom))
            .transpose()
    }

    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => serializer.serialize_str(&super::format(*duration)),
            None => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse(" 3s "), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn rejects_bad_text() {
        assert!(parse("10").unwrap_err().contains("no unit"));
        assert!(parse("10 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse("s").is_err());
        assert!(parse("-1s").is_err());
        assert!(parse("1e400s").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for text in ["250ms", "10s", "0s"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }
}
