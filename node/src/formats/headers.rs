//! RFC 822-style header blocks: wheel `METADATA`, sdist `PKG-INFO` and R `DESCRIPTION` (DCF).

/// Parses `Key: value` lines with continuation lines (leading whitespace) into ordered pairs.
/// Parsing stops at the first blank line (the body of a METADATA file). Keys repeat for
/// multi-valued fields such as `Requires-Dist`.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if fields.is_empty() {
                continue;
            }
            break;
        }
        if line.starts_with([' ', '\t']) {
            let Some((_, value)) = fields.last_mut() else {
                return Err(format!(
                    "line {} continues a field that was never started",
                    number + 1
                ));
            };
            let more = line.trim();
            // PKG-INFO may mark continuation lines with '|' (old setuptools).
            let more = more.strip_prefix('|').unwrap_or(more).trim();
            if !more.is_empty() && more != "." {
                if !value.is_empty() {
                    value.push(' ');
                }
                value.push_str(more);
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!(
                "line {} is not 'Field: value': {:?}",
                number + 1,
                truncate(line)
            ));
        };
        let key = key.trim();
        if key.is_empty() || key.contains(' ') {
            return Err(format!(
                "line {} has an invalid field name {:?}",
                number + 1,
                truncate(key)
            ));
        }
        fields.push((key.to_string(), value.trim().to_string()));
    }
    Ok(fields)
}

/// The first value of `key` (case-insensitive).
pub fn get<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// Every value of `key` (case-insensitive), in order.
pub fn get_all(fields: &[(String, String)], key: &str) -> Vec<String> {
    fields
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.clone())
        .collect()
}

fn truncate(text: &str) -> String {
    text.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_lines_join_and_body_is_ignored() {
        let fields =
            parse("Package: a\nImports: b,\n    c (>= 1.0)\nLicense: MIT\n\nbody: text\n").unwrap();
        assert_eq!(get(&fields, "imports"), Some("b, c (>= 1.0)"));
        assert_eq!(get(&fields, "body"), None);
        assert_eq!(fields.len(), 3);
    }

    #[test]
    fn multi_valued_and_errors() {
        let fields = parse("Requires-Dist: a\nRequires-Dist: b>=2\n").unwrap();
        assert_eq!(get_all(&fields, "Requires-Dist"), vec!["a", "b>=2"]);
        assert!(parse(" leading continuation").is_err());
        assert!(parse("no colon here").is_err());
    }
}
