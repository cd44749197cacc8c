//! `${VAR}` and `${VAR:-default}` substitution in the config text, before YAML parsing.
//!
//! `$$` writes a literal `$`. A variable that is unset (and has no default) is an error that
//! names the variable and the line, so a missing secret never silently becomes "".

/// Substitutes variables in `text` using `lookup`, except on comment lines (first non-blank
/// character `#`), so a commented-out example never requires its variable. Errors name the
/// variable and line.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            out.push_str(&interpolate_line(line, index + 1, &lookup)?);
        }
    }
    Ok(out)
}

fn interpolate_line(
    text: &str,
    line: usize,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        let (before, after) = rest.split_at(pos);
        out.push_str(before);
        if let Some(tail) = after.strip_prefix("$$") {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or(InterpolationError::Unclosed { line })?;
            let expr = &tail[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (expr, None),
            };
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || name.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(InterpolationError::BadName {
                    line,
                    name: name.to_string(),
                });
            }
            match lookup(name).or_else(|| default.map(str::to_string)) {
                Some(value) => out.push_str(&value),
                None => {
                    return Err(InterpolationError::Unset {
                        line,
                        name: name.to_string(),
                    })
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    #[error("line {line}: environment variable `{name}` is not set; set it, or give a default with `${{{name}:-default}}`")]
    Unset { line: usize, name: String },
    #[error(
        "line {line}: `${{` is not closed by `}}`; write `${{VAR}}`, or `$$` for a literal `$`"
    )]
    Unclosed { line: usize },
    #[error("line {line}: `{name}` is not a valid variable name (letters, digits and `_`)")]
    BadName { line: usize, name: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("kafka:9092".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_and_defaults() {
        assert_eq!(interpolate("a: ${HOST}", env).unwrap(), "a: kafka:9092");
        assert_eq!(interpolate("${MISSING:-x}", env).unwrap(), "x");
        assert_eq!(interpolate("${MISSING:-}", env).unwrap(), "");
        assert_eq!(interpolate("${EMPTY:-x}", env).unwrap(), "");
        assert_eq!(
            interpolate("cost $$5 and $x", env).unwrap(),
            "cost $5 and $x"
        );
        assert_eq!(interpolate("no vars", env).unwrap(), "no vars");
        assert_eq!(
            interpolate("# ${NOPE}\n  # x: ${NOPE}\na: ${HOST}", env).unwrap(),
            "# ${NOPE}\n  # x: ${NOPE}\na: kafka:9092"
        );
    }

    #[test]
    fn errors_name_variable_and_line() {
        let error = interpolate("a: 1\nb: ${NOPE}\n", env).unwrap_err();
        assert_eq!(
            error,
            InterpolationError::Unset {
                line: 2,
                name: "NOPE".into()
            }
        );
        assert!(error.to_string().contains("NOPE"));
        assert!(matches!(
            interpolate("${OPEN", env),
            Err(InterpolationError::Unclosed { line: 1 })
        ));
        assert!(matches!(
            interpolate("${A-B}", env),
            Err(InterpolationError::BadName { .. })
        ));
    }
}
