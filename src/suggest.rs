//! "Did you mean ...?" for misspelt names (presets, tables, columns), as ripgrep does
//! for flags.

/// The candidate closest to `name`, if it is close enough to be a likely typo.
pub fn nearest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(name, c), *c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn suggests_only_close_names() {
        assert_eq!(nearest("documnets", &["documents", "problems"]), Some("documents"));
        assert_eq!(nearest("zzz", &["documents", "problems"]), None);
    }
}
