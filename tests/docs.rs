//! The README says what docs/performance.md says: every speed ratio the README quotes
//! (`1.35x`) is a ratio of performance.md's latest pass (`**1.35**`).

use std::path::Path;

fn read(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The numbers written `<digits>.<digits>x` in `text`.
fn ratios(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    for (end, _) in text.match_indices('x') {
        let start = text[..end]
            .char_indices()
            .rev()
            .find(|&(_, c)| !(c.is_ascii_digit() || c == '.'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let number = &text[start..end];
        let well_formed = number.split('.').count() == 2
            && number.split('.').all(|part| !part.is_empty())
            && !bytes.get(end + 1).is_some_and(u8::is_ascii_alphanumeric);
        if well_formed {
            found.push(number.to_string());
        }
    }
    found
}

#[test]
fn the_readmes_speed_figures_come_from_the_performance_page() {
    let readme = read("README.md");
    let performance = read("docs/performance.md");
    let latest = performance
        .split("\n### ")
        .nth(1)
        .expect("docs/performance.md has a results section per pass");
    let quoted = ratios(&readme);
    assert!(quoted.len() >= 6, "the README quotes its speed: {quoted:?}");
    for ratio in quoted {
        assert!(
            latest.contains(&format!("**{ratio}**")) || latest.contains(&format!(" {ratio} ")),
            "README.md quotes {ratio}x, which the latest pass of docs/performance.md does not show"
        );
    }
}

#[test]
fn ratios_are_read_as_written() {
    assert_eq!(
        ratios("at 1.35x and 0.9x, 2x, 1.5xy, L3 K8"),
        ["1.35", "0.9"]
    );
}
