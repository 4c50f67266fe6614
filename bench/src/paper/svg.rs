//! The evaluation's plots as dependency-free SVG: groups (workloads) of series (methods); a series of several
//! values is a box plot (box p25–p75, median line, whiskers min–max), a series of one value a bar. Dashed
//! horizontal lines mark published figures.
use microlambda::plot::esc;
use microlambda::stats::Sorted;
use std::fmt::Write;

/// One workload's series: (label, values).
pub type Group<'a> = (&'a str, Vec<(String, Vec<f64>)>);

const COLOURS: [&str; 6] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
const W: f64 = 860.0;
const H: f64 = 380.0;
const LEFT: f64 = 70.0;
const TOP: f64 = 40.0;
const PLOT_H: f64 = 250.0;

/// A plot titled `title` with the y axis in `unit`, on a log scale when `log`; `refs` are (label, value) lines.
pub fn chart(title: &str, unit: &str, log: bool, groups: &[Group<'_>], refs: &[(String, f64)]) -> String {
    let values = groups.iter().flat_map(|(_, s)| s.iter().flat_map(|(_, v)| v.iter().copied()));
    let all: Vec<f64> =
        values.chain(refs.iter().map(|r| r.1)).filter(|v| v.is_finite() && (!log || *v > 0.0)).collect();
    let hi = all.iter().copied().fold(f64::MIN, f64::max).max(1e-9);
    let lo = all.iter().copied().fold(f64::MAX, f64::min).min(hi);
    let (a, b) =
        if log { ((lo.log10()).floor(), (hi.log10()).ceil().max(lo.log10().floor() + 1.0)) } else { (0.0, hi * 1.1) };
    let y = |v: f64| {
        let t = if log { (v.max(10f64.powf(a)).log10() - a) / (b - a) } else { v / b };
        TOP + PLOT_H * (1.0 - t.clamp(0.0, 1.0))
    };
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" \
         font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{LEFT}\" y=\"22\" \
         font-size=\"14\">{}</text>\n",
        esc(title)
    );
    // The y axis: decades on a log scale, five steps on a linear one.
    let ticks: Vec<f64> = if log {
        (a as i32..=b as i32).map(|e| 10f64.powi(e)).collect()
    } else {
        (0..=5).map(|i| b * i as f64 / 5.0).collect()
    };
    for t in ticks {
        let yy = y(t);
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{}\" \
             y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - 20.0,
            LEFT - 4.0,
            yy + 4.0,
            short(t)
        );
    }
    let _ = writeln!(
        s,
        "<text transform=\"translate(16,{:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        TOP + PLOT_H / 2.0,
        esc(unit)
    );
    let slot = (W - LEFT - 20.0) / groups.len().max(1) as f64;
    let mut legend: Vec<String> = Vec::new();
    for (g, (name, series)) in groups.iter().enumerate() {
        let x0 = LEFT + slot * g as f64;
        let width = slot * 0.8 / series.len().max(1) as f64;
        for (k, (label, v)) in series.iter().enumerate() {
            let c = match legend.iter().position(|l| l == label) {
                Some(i) => i,
                None => {
                    legend.push(label.clone());
                    legend.len() - 1
                }
            };
            let colour = COLOURS[c % COLOURS.len()];
            let x = x0 + slot * 0.1 + width * k as f64;
            series_mark(&mut s, v, (x, width * 0.8), colour, &y, &format!("{name}, {label}"));
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x0 + slot / 2.0,
            TOP + PLOT_H + 16.0,
            esc(name)
        );
    }
    for (i, (label, v)) in refs.iter().enumerate() {
        let yy = y(*v);
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#555\" stroke-dasharray=\"5,4\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>",
            W - 20.0,
            W - 22.0,
            yy - 3.0 - 11.0 * (i % 2) as f64,
            esc(label)
        );
    }
    for (i, label) in legend.iter().enumerate() {
        let (lx, ly) = (LEFT + 240.0 * (i % 3) as f64, TOP + PLOT_H + 36.0 + 16.0 * (i / 3) as f64);
        let _ = writeln!(
            s,
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"12\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{ly:.1}\">{}</text>",
            ly - 9.0,
            COLOURS[i % COLOURS.len()],
            lx + 16.0,
            esc(label)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A box (several values) or a bar (one) at x..x+w.
fn series_mark(s: &mut String, v: &[f64], (x, w): (f64, f64), colour: &str, y: &dyn Fn(f64) -> f64, tip: &str) {
    let sorted = Sorted::new(v);
    let p = |q: f64| sorted.percentile(q).unwrap_or(f64::NAN);
    if v.len() == 1 {
        let (top, base) = (y(v[0]), y(0.0));
        let _ = writeln!(
            s,
            "<rect x=\"{x:.1}\" y=\"{top:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>{}: \
             {}</title></rect>",
            (base - top).max(1.0),
            esc(tip),
            short(v[0])
        );
        return;
    }
    if v.is_empty() {
        return;
    }
    let (lo, q1, med, q3, hi) = (p(0.0), p(0.25), p(0.5), p(0.75), p(1.0));
    let mid = x + w / 2.0;
    let _ = writeln!(
        s,
        "<g><title>{}: n {} min {} p25 {} median {} p75 {} max {}</title><line x1=\"{mid:.1}\" x2=\"{mid:.1}\" \
         y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\"/><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" \
         height=\"{:.1}\" fill=\"{colour}\" fill-opacity=\"0.35\" stroke=\"{colour}\"/><line x1=\"{x:.1}\" \
         x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"2\"/></g>",
        esc(tip),
        v.len(),
        short(lo),
        short(q1),
        short(med),
        short(q3),
        short(hi),
        y(hi),
        y(lo),
        y(q3),
        (y(q1) - y(q3)).max(1.0),
        x + w,
        y(med),
        y(med)
    );
}

/// A tick or value label: 3 significant figures, no exponent for the ranges plotted here.
fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.digits$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_of_several_values_is_a_box_and_of_one_a_bar_and_every_reference_is_a_line() {
        let groups: Vec<Group<'_>> = vec![
            ("face", vec![("ours".into(), vec![1.0, 2.0, 3.0, 40.0]), ("pickle".into(), vec![0.5])]),
            ("ride <&>", vec![("ours".into(), vec![2.0, 2.5]), ("pickle".into(), vec![])]),
        ];
        let svg = chart("t", "ms", true, &groups, &[("paper < 10 ms".into(), 10.0), ("CRIU".into(), 150.0)]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<g><title>").count(), 2, "{svg}");
        assert_eq!(svg.matches("median 2.50 ").count(), 1, "{svg}");
        assert_eq!(svg.matches("stroke-dasharray").count(), 2);
        assert!(svg.contains("ride &lt;&amp;&gt;") && !svg.contains("ride <&>"));
        // Two series labels in the legend, each once.
        assert_eq!(svg.matches(">ours</text>").count(), 1);
        assert_eq!(svg.matches(">pickle</text>").count(), 1);
    }

    #[test]
    fn labels_keep_three_significant_figures() {
        assert_eq!(short(0.01234), "0.0123");
        assert_eq!(short(1234.4), "1234");
        assert_eq!(short(10.0), "10.0");
    }
}
