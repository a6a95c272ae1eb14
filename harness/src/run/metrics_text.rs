//! A node's `/metrics` (OpenMetrics text, as `prometheus-client` writes it) read by the
//! `nom-openmetrics` parser into samples: name, labels, value. Every harness reader of `/metrics`
//! goes through [`samples`] and picks what it needs by name and label.

use nom_openmetrics::parser;

/// One sample line: `name{label="value",…} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    /// (label, value) in the order written; values unescaped.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(label, _)| label == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Why a `/metrics` answer could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetricsTextError {
    #[error("/metrics is not OpenMetrics or Prometheus text (line {line} does not parse)")]
    Syntax { line: usize },
}

/// Every sample of `text`: OpenMetrics (ending `# EOF`, what a node answers) or, failing that,
/// the older Prometheus text format.
pub fn samples(text: &str) -> Result<Vec<Sample>, MetricsTextError> {
    // Only the samples are read: HELP, TYPE and UNIT lines are left out before parsing, since
    // nom-openmetrics 0.3 wants a sample in every family and prometheus-client writes HELP and
    // TYPE for a labelled family before its first sample.
    let kept: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.starts_with('#') || line.trim_end() == "# EOF")
        .collect();
    let sample_text: String = kept.iter().flat_map(|(_, line)| [*line, "\n"]).collect();
    let families = match parser::openmetrics(&sample_text) {
        Ok((_, families)) => families,
        Err(openmetrics_error) => match parser::prometheus(&sample_text) {
            Ok((_, families)) => families,
            Err(_) => {
                let line = failed_line(&sample_text, &openmetrics_error);
                let line = kept.get(line - 1).map_or(line, |(number, _)| number + 1);
                return Err(MetricsTextError::Syntax { line });
            }
        },
    };
    Ok(families
        .iter()
        .flat_map(|family| &family.samples)
        .map(|sample| Sample {
            name: sample.name().to_string(),
            labels: sample
                .labels()
                .iter()
                .map(|label| (label.name.to_string(), label.value.clone()))
                .collect(),
            value: sample.number(),
        })
        .collect())
}

/// The line of `text` the parser stopped at, counted from 1.
fn failed_line(text: &str, error: &nom::Err<nom_language::error::VerboseError<&str>>) -> usize {
    let rest = match error {
        nom::Err::Error(e) | nom::Err::Failure(e) => e.errors.first().map(|(rest, _)| *rest),
        nom::Err::Incomplete(_) => None,
    };
    let offset = rest.map_or(text.len(), |rest| text.len().saturating_sub(rest.len()));
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_keep_names_labels_and_values() {
        let text = "# HELP pkgnode_http_requests Requests by route.\n\
                    # TYPE pkgnode_http_requests counter\n\
                    pkgnode_http_requests_total{route=\"/{repo}/{snapshot}/simple/{name}/\",method=\"GET\"} 7\n\
                    # HELP pkgnode_git_builds_queued Builds queued.\n\
                    # TYPE pkgnode_git_builds_queued gauge\n\
                    pkgnode_git_builds_queued 2\n\
                    # EOF\n";
        let samples = samples(text).unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].name, "pkgnode_http_requests_total");
        assert_eq!(
            samples[0].label("route"),
            Some("/{repo}/{snapshot}/simple/{name}/")
        );
        assert_eq!(samples[0].label("method"), Some("GET"));
        assert_eq!(samples[0].value, 7.0);
        assert_eq!(samples[1].labels, Vec::new());
        assert_eq!(samples[1].value, 2.0);
    }

    /// prometheus-client writes HELP and TYPE for a labelled family before its first sample;
    /// nom-openmetrics 0.3 wants a sample in every family, so the descriptors are not parsed.
    #[test]
    fn families_without_samples_yet_are_read() {
        let text = "# HELP pkgnode_uploads Uploads by result.\n\
                    # TYPE pkgnode_uploads counter\n\
                    # HELP pkgnode_downloads Package files served.\n\
                    # TYPE pkgnode_downloads counter\n\
                    pkgnode_downloads_total 3\n\
                    # HELP pkgnode_latest_resolutions Requests for latest.\n\
                    # TYPE pkgnode_latest_resolutions counter\n\
                    # EOF\n";
        let samples = samples(text).unwrap();
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].name, "pkgnode_downloads_total");
    }

    #[test]
    fn prometheus_text_without_eof_is_read_too() {
        let samples = samples("up{job=\"a\"} 1\nup{job=\"b\"} 0\n").unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[1].label("job"), Some("b"));
    }

    #[test]
    fn text_that_is_not_metrics_is_an_error_naming_the_line() {
        let text = "# HELP up Up.\n# TYPE up gauge\nup 1\n<html>oops</html>\n# EOF\n";
        assert_eq!(samples(text), Err(MetricsTextError::Syntax { line: 4 }));
    }
}
