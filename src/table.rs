//! The one Markdown table printer, for the scenario report and the benchmarks' tables.
//!
//! Cells are written as given (no padding), so a table's bytes depend only on its cells: reports stay
//! reproducible and diffable. A crate such as `comfy-table` pads columns to align them in a terminal, which
//! would change every recorded report; this printer is the few lines the house needs.

/// How a column's cells sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A Markdown table: a header line, the alignment rule (`---` or `---:`), then one line per row.
pub fn markdown(head: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let mut s = line(head.iter().map(|(h, _)| *h));
    let rule: Vec<&str> = head
        .iter()
        .map(|(_, a)| match a {
            Align::Left => "---",
            Align::Right => "---:",
        })
        .collect();
    s.push_str(&format!("|{}|\n", rule.join("|")));
    for r in rows {
        s.push_str(&line(r.iter().map(String::as_str)));
    }
    s
}

/// One table line: `| a | b |`.
fn line<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    format!("| {} |\n", cells.collect::<Vec<_>>().join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_rule_and_rows() {
        let t = markdown(
            &[("jobs", Align::Left), ("p50 ms", Align::Right)],
            &[vec!["1".into(), "12.3".into()], vec!["10".into(), "—".into()]],
        );
        assert_eq!(t, "| jobs | p50 ms |\n|---|---:|\n| 1 | 12.3 |\n| 10 | — |\n");
    }

    #[test]
    fn no_rows_is_a_header_and_a_rule() {
        assert_eq!(markdown(&[("a", Align::Left)], &[]), "| a |\n|---|\n");
    }
}
