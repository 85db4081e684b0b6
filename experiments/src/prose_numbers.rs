//! The numbers `paper.md`'s prose quotes, and whether each is backed by a generated table.
//!
//! Invariant: a number the prose quotes as a result must be one the generated tables show — the
//! tables being a pure function of `results/` (`paper`), a quoted number is then a number in
//! `results/` at the precision the prose gives it. A number that is not a result (a setting, a
//! constant of Go's design) is named, with what it is, in a list the check is given; anything else
//! is a number that drifted from the data, and the check reports its line.
//!
//! Algorithm: the paper is read line by line. Skipped whole: fenced code, the text between a
//! table's `<!-- generated:NAME -->` markers (the pool of backing numbers), headings, and the
//! reference list (from `### References` to the next `## ` heading). In a prose line, inline code
//! spans, link targets, bracketed citations, `§` sections, `#` issues, proposal, JEP and seed
//! numbers (`proposal 17503`, `seed 003`), Go versions (`Go 1.7`),
//! numbers with a superscript exponent (`10⁶`) and years (1970–2030 without a thousands comma) are
//! not results and are blanked first. Every other number — `1,024`, `98.7`, `0.86`, the two ends of
//! `25–47 µs` (the unit after a range applies to both ends) — is quoted with its decimals and the
//! unit after it. It is backed when some number `v` of the tables, scaled by a factor its unit
//! allows (`ms` and `s` quote µs or ns columns, `MiB` quotes KiB columns, `%` quotes fractions),
//! rounds to it at the quoted precision; single-digit integers are too common to check and are
//! skipped.

use std::sync::LazyLock;

use regex::Regex;

/// A number the prose quotes.
#[derive(Clone, Debug, PartialEq)]
pub struct Quoted {
    /// 1-based line in the paper.
    pub line: usize,
    /// The number as written, with its unit (`98.7 %`).
    pub text: String,
    /// Its value.
    pub value: f64,
    /// Digits after its decimal point.
    pub decimals: u32,
    /// The unit written after it, if one of those [`scales`] knows.
    pub unit: Option<String>,
}

/// A number the prose may quote that is not a result: its text as written (`1,024`, `10`) and
/// what it is.
pub type Constant = (&'static str, &'static str);

/// Where a line of the paper is.
#[derive(Clone, Copy, PartialEq)]
enum Region {
    Prose,
    Fence,
    Generated,
    References,
}

/// Each line of `paper` with its region.
fn regions(paper: &str) -> Vec<(usize, &str, Region)> {
    let mut region = Region::Prose;
    let mut out = Vec::new();
    for (i, line) in paper.lines().enumerate() {
        let t = line.trim_start();
        // The line's own region, and the region of the lines after it.
        let (here, next) = match region {
            Region::Fence if t.starts_with("```") => (Region::Fence, Region::Prose),
            Region::Generated if t.starts_with("<!-- end generated:") => {
                (Region::Generated, Region::Prose)
            }
            Region::References if t.starts_with("## ") => (Region::Prose, Region::Prose),
            Region::Prose if t.starts_with("```") => (Region::Fence, Region::Fence),
            Region::Prose if t.starts_with("<!-- generated:") => {
                (Region::Generated, Region::Generated)
            }
            Region::Prose if t.starts_with("### References") => {
                (Region::References, Region::References)
            }
            r => (r, r),
        };
        region = next;
        out.push((i + 1, line, here));
    }
    out
}

/// Text in a prose line that holds no result, blanked before numbers are read.
static NOT_RESULTS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"`[^`]*`",                                     // inline code
        r"|\]\([^)]*\)",                                // link targets
        r"|\[\d+(?:[,–-]\s*\d+)*\]",                    // citations [4], [9, 10]
        r"|§\s*\d+",                                    // sections
        r"|#\d+",                                       // issues
        r"|\b(?:proposal|JEP|seed)\s+\d+",              // proposals, JEPs, seeds
        r"|\bGo\s+\d+(?:\.\d+)*(?:[–-]\d+(?:\.\d+)*)?", // Go versions and ranges
        r"|\bgo\d+(?:\.\d+)+",                          // go1.7
        r"|\d+[⁰¹²³⁴⁵⁶⁷⁸⁹⁻]+",                          // powers of ten
        r"|\b(?:19[7-9]\d|20[0-3]\d)\b",                // years
        r"|<!--.*?-->",                                 // comments
    ))
    .expect("valid regex")
});

/// A number as the paper writes it, in prose and tables alike: `1,024`, `98.7`, `0.86`.
const WRITTEN: &str = r"\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?";

/// The value of a number as written (its thousands commas dropped).
pub fn value_of(written: &str) -> Option<f64> {
    written.replace(',', "").parse().ok()
}

/// Any number as written (the tables' numbers).
static PLAIN: LazyLock<Regex> = LazyLock::new(|| Regex::new(WRITTEN).expect("valid regex"));

/// A number, optionally the first end of a range, and the unit after it.
static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?P<lead>^|[^\w.,/:+-])(?P<a>{WRITTEN})(?:\s*[–-]\s*(?P<b>{WRITTEN}))?(?P<tail>-fold|\s?(?:%|×|µs|ms|ns|s|KiB|MiB|GiB|KB|MB|Mops/s|M))?"
    ))
    .expect("valid regex")
});

/// The numbers `paper`'s prose quotes, in order.
pub fn quoted(paper: &str) -> Vec<Quoted> {
    let mut out = Vec::new();
    for (line, text, region) in regions(paper) {
        if region != Region::Prose || text.trim_start().starts_with('#') {
            continue;
        }
        let blanked = NOT_RESULTS.replace_all(text, " ");
        let letter_at = |i: usize| {
            blanked[i..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
        };
        for m in NUMBER.captures_iter(&blanked) {
            let last = m.name("b").or(m.name("a")).expect("a number");
            let mut tail = m.name("tail");
            // A unit is a whole word: `20 seeds` has none.
            if tail.is_some_and(|t| letter_at(t.end())) {
                tail = None;
            }
            // A number glued to a word (`x86`, `v2`, `3rd`) is a name, not a quantity.
            if tail.is_none() && letter_at(last.end()) {
                continue;
            }
            let unit = match tail.map(|t| t.as_str().trim()) {
                Some("-fold") | Some("×") => Some("×".to_owned()),
                Some(u) => Some(u.to_owned()),
                None => None,
            };
            let ends = [m.name("a"), m.name("b")];
            for end in ends.into_iter().flatten() {
                let written = end.as_str();
                let Some(value) = value_of(written) else {
                    continue;
                };
                let decimals = written.split_once('.').map_or(0, |(_, d)| d.len() as u32);
                out.push(Quoted {
                    line,
                    text: match &unit {
                        Some(u) => format!("{written} {u}"),
                        None => written.to_owned(),
                    },
                    value,
                    decimals,
                    unit: unit.clone(),
                });
            }
        }
    }
    out
}

/// Every number in `paper`'s generated tables (cells, headers and notes alike).
pub fn generated(paper: &str) -> Vec<f64> {
    regions(paper)
        .into_iter()
        .filter(|(_, _, r)| *r == Region::Generated)
        .flat_map(|(_, text, _)| PLAIN.find_iter(text).filter_map(|m| value_of(m.as_str())))
        .collect()
}

/// The factors a table's number may be scaled by to give a number quoted with `unit`: a quoted
/// `ms` may be a table's µs (÷1000) or ms, a quoted `%` a table's fraction or percent, and so on.
pub fn scales(unit: Option<&str>) -> &'static [f64] {
    match unit {
        Some("ms") => &[1.0, 1e-3, 1e-6],
        Some("s") => &[1.0, 1e-3, 1e-6, 1e-9],
        Some("µs") => &[1.0, 1e-3],
        Some("MiB" | "MB") => &[1.0, 1.0 / 1024.0, 1.0 / (1024.0 * 1024.0)],
        Some("GiB") => &[1.0, 1.0 / 1024.0],
        Some("KiB" | "KB") => &[1.0, 1.0 / 1024.0, 1024.0],
        Some("%") => &[1.0, 100.0],
        Some("M") => &[1.0, 1e-6],
        _ => &[1.0],
    }
}

/// Whether `q` rounds from some number of `pool` under a scale its unit allows.
pub fn backed(q: &Quoted, pool: &[f64]) -> bool {
    let step = 10f64.powi(q.decimals as i32);
    scales(q.unit.as_deref()).iter().any(|&scale| {
        pool.iter()
            .any(|&v| ((v * scale * step).round() - q.value * step).abs() < 1e-6)
    })
}

/// The numbers `paper`'s prose quotes that neither a generated table backs nor `constants`
/// names; single-digit integers are not checked.
pub fn unbacked(paper: &str, constants: &[Constant]) -> Vec<Quoted> {
    let mut pool = generated(paper);
    pool.extend(constants.iter().filter_map(|(text, _)| value_of(text)));
    quoted(paper)
        .into_iter()
        .filter(|q| !(q.decimals == 0 && q.value < 10.0))
        .filter(|q| !backed(q, &pool))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAPER: &str = "\
# Title 2026

Barriers at Go's 1 KiB offset avoid 98.7 % of the re-scan, pausing 25–47 µs (Go 1.7, [4], §6, proposal 17503).
The `--depth 10000` run took 2.8 ms, 29-fold shorter; see golang/go#12932 and 10⁶ samples.

<!-- generated:t -->
| a | b |
| 98.71 | 2775 |
| 25.2 | 46.6 |
<!-- end generated:t -->

```sh
run --seed 12345
```

### References

1. Someone. A paper. *PLDI* 1998, 77 pages.

## 7. More

The p99 was 123 µs in 2015.
";

    #[test]
    fn prose_numbers_skip_code_tables_references_and_names() {
        let q: Vec<String> = quoted(PAPER).into_iter().map(|q| q.text).collect();
        assert_eq!(
            q,
            [
                "1 KiB", "98.7 %", "25 µs", "47 µs", "2.8 ms", "29 ×", "123 µs"
            ]
        );
    }

    #[test]
    fn a_quote_is_backed_by_a_table_number_at_its_precision_and_unit() {
        let unbacked: Vec<String> = unbacked(PAPER, &[])
            .into_iter()
            .map(|q| format!("{}:{}", q.line, q.text))
            .collect();
        // 98.7 % ← 98.71; 25–47 µs ← 25.2, 46.6; 2.8 ms ← 2775 µs; "29-fold" has no backing
        // table number, nor has the 123 µs on line 25.
        assert_eq!(unbacked, ["4:29 ×", "22:123 µs"]);
        let named = super::unbacked(PAPER, &[("29", "a ratio"), ("123", "a setting")]);
        assert!(named.is_empty(), "{named:?}");
    }

    #[test]
    fn thousands_commas_and_unit_scales_are_read() {
        let q = quoted("Over 1,046,745 samples, 0.86 MiB, 3–4 KiB, 20 seeds, x86 and 3rd.");
        let values: Vec<(f64, Option<&str>)> =
            q.iter().map(|q| (q.value, q.unit.as_deref())).collect();
        assert_eq!(
            values,
            [
                (1_046_745.0, None),
                (0.86, Some("MiB")),
                (3.0, Some("KiB")),
                (4.0, Some("KiB")),
                (20.0, None),
            ]
        );
        assert!(backed(&q[1], &[880.0]));
        assert!(!backed(&q[1], &[870.0]));
    }
}
