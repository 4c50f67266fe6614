//! The scenario report's plot as a self-contained SVG, drawn without dependencies: radio load, jobs running and
//! every job's runs per node on one time axis, so a reader sees when a node's radio rose and where its jobs went.
//!
//! [`render_svg`] is a pure function of a [`Timeline`]: the same input gives the same bytes, every text is
//! XML-escaped (job ids and labels come from users), and no input (empty, zero-length, out of order, NaN loads)
//! produces a NaN or infinite coordinate.
//!
//! Size: about 880 lines of layout and drawing that share one set of layout constants, and 400 of tests with
//! their own scenario generator and XML checker. Not on a plotting crate, measured: `plotters` 0.3.7 (SVG
//! backend, no fonts) drew the same panels in 770 lines instead of 880, but lost the hover titles that name
//! each job's run, wrote SVGs 2.3x larger (50 jobs: 40.5 kB -> 94.6 kB; 300 jobs: 85 kB -> 157 kB), passed
//! control characters into the XML, and its integer axes loop for ever when asked for no minor grid lines.

use std::fmt::{self, Write as _};

/// Everything the plot shows; times are wall-clock milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeline {
    pub title: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Radio threshold drawn as a dashed line on the radio panel.
    pub threshold: f64,
    /// Per node, in display order: radio-load samples (ts_ms, load 0..1), in time order.
    pub radio: Vec<(String, Vec<(u64, f64)>)>,
    /// One span per stretch of a job running on one node.
    pub runs: Vec<RunSpan>,
    /// Vertical markers (faults, threshold crossings): (ts_ms, label).
    pub markers: Vec<(u64, String)>,
}

/// One stretch of a job running on one node, from `start_ms` to `end_ms`, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpan {
    pub job_id: String,
    pub node: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub end: SpanEnd,
}

/// How a run span ended; drawn as a mark at the end of the span's bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanEnd {
    /// The job finished on this node (no mark).
    Completed,
    /// The job failed on this node (red outline).
    Failed,
    /// The job was checkpointed and moved to another node (chevron; a dashed hop joins its next span).
    Migrated,
    /// The job was checkpointed and parked until a node has room (pause mark).
    Parked,
    /// The job's time slice ended and it yielded its node (slash).
    Sliced,
    /// The node was lost with the job on it (red cross).
    Lost,
    /// The node was fenced off and its run no longer counts (grey cross).
    Fenced,
    /// Still running when the timeline ends (the bar fades out).
    Open,
}

impl SpanEnd {
    const ALL: [SpanEnd; 8] = [
        SpanEnd::Completed,
        SpanEnd::Failed,
        SpanEnd::Migrated,
        SpanEnd::Parked,
        SpanEnd::Sliced,
        SpanEnd::Lost,
        SpanEnd::Fenced,
        SpanEnd::Open,
    ];

    fn label(self) -> &'static str {
        match self {
            SpanEnd::Completed => "completed",
            SpanEnd::Failed => "failed",
            SpanEnd::Migrated => "migrated",
            SpanEnd::Parked => "parked",
            SpanEnd::Sliced => "sliced",
            SpanEnd::Lost => "lost",
            SpanEnd::Fenced => "fenced",
            SpanEnd::Open => "open",
        }
    }
}

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 24.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const RADIO_H: f64 = 150.0;
const JOBS_H: f64 = 90.0;
/// Sub-rows drawn at full bar height; above this the bars shrink to fit `MAX_ROWS_H`.
const FULL_ROWS: usize = 12;
const ROW_PITCH: f64 = 9.0;
const MAX_ROWS_H: f64 = FULL_ROWS as f64 * ROW_PITCH;
/// Sub-rows above which bars would be thinner than 2 px: the lane shows a count of running jobs instead.
const MAX_ROWS: usize = 54;
const DENSITY_H: f64 = 60.0;
const LANE_PAD: f64 = 6.0;
const LANE_GAP: f64 = 4.0;
const MARKER_ROW_H: f64 = 13.0;
const MARKER_ROWS: usize = 5;
/// Bold characters of a node name that fit in the left margin.
const NAME_CHARS: usize = 17;
/// Rough advance of one character at 10–11 px, to keep stacked labels apart.
const CHAR_W: f64 = 6.2;

const RED: &str = "#d62728";
const GREY: &str = "#888";
const INK: &str = "#222";
const MARKER: &str = "#7b3294";

/// Node colours (line and lane key), in display order; the reds are left out for the threshold and losses.
const NODE_COLOURS: [&str; 9] =
    ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#9c755f", "#edc948", "#ff9da7", "#bab0ac"];

/// Job colours: a job keeps its colour across nodes, so a migrated job can be followed.
const JOB_COLOURS: [&str; 12] = [
    "#3b75af", "#ef8636", "#519e3e", "#8d69b8", "#84584e", "#d57dbf", "#42b4c6", "#b3b340", "#5f9ed1", "#c85200",
    "#6b8e23", "#a55194",
];

/// A number for an attribute: at most one decimal, never NaN, inf or "-0".
struct N(f64);

impl fmt::Display for N {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = if self.0.is_finite() { (self.0 * 10.0).round() / 10.0 } else { 0.0 };
        if v == 0.0 {
            f.write_str("0")
        } else if v.fract() == 0.0 {
            write!(f, "{v:.0}")
        } else {
            write!(f, "{v:.1}")
        }
    }
}

/// Text for XML content or a quoted attribute value.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and newlines are not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A label cut to `max` characters, with an ellipsis when cut.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// FNV-1a: a hash that does not change between runs, builds or platforms.
fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

fn job_colour(job_id: &str) -> usize {
    (stable_hash(job_id) % JOB_COLOURS.len() as u64) as usize
}

/// Seconds from the start, as a tick label with the decimals the step needs.
fn seconds_label(ms: u64, step_ms: u64) -> String {
    let decimals = match step_ms {
        s if s % 1000 == 0 => 0,
        s if s % 100 == 0 => 1,
        s if s % 10 == 0 => 2,
        _ => 3,
    };
    if ms == 0 {
        return "0".to_owned();
    }
    format!("{:.*}", decimals, ms as f64 / 1000.0)
}

/// The tick step for a time axis: the smallest "nice" step that gives at most a dozen ticks.
fn time_step_ms(span_ms: u64) -> u64 {
    const STEPS: [u64; 25] = [
        1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 60_000, 120_000, 300_000,
        600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000, 21_600_000, 43_200_000,
    ];
    let target = span_ms.div_ceil(12).max(1);
    STEPS.iter().copied().find(|&s| s >= target).unwrap_or_else(|| target.div_ceil(86_400_000) * 86_400_000)
}

/// A nice step for a count axis with at most about five ticks.
fn count_step(max: usize) -> usize {
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if max <= 5 * step * m {
                return step * m;
            }
        }
        step *= 10;
    }
}

/// Maps times onto the plot's x range; times outside the window are clamped to its edges.
struct Scale {
    start: u64,
    end: u64,
    span: f64,
}

impl Scale {
    fn new(t: &Timeline) -> Scale {
        let end = t.end_ms.max(t.start_ms);
        Scale { start: t.start_ms, end, span: (end - t.start_ms).max(1) as f64 }
    }

    fn x(&self, ts: u64) -> f64 {
        LEFT + (ts.clamp(self.start, self.end) - self.start) as f64 / self.span * PLOT_W
    }
}

/// Jobs running on one node over time: (ts, count) at every change, starting with 0 at the window start.
fn running_counts(spans: &[&RunSpan], scale: &Scale) -> Vec<(u64, usize)> {
    let mut events: Vec<(u64, i64)> = Vec::with_capacity(spans.len() * 2);
    for s in spans {
        let a = s.start_ms.clamp(scale.start, scale.end);
        let b = s.end_ms.clamp(a, scale.end);
        if b > a {
            events.push((a, 1));
            events.push((b, -1));
        }
    }
    // Ends before starts at the same instant: a span is [start, end).
    events.sort_unstable();
    let mut out = vec![(scale.start, 0usize)];
    let mut n: i64 = 0;
    for (i, &(ts, d)) in events.iter().enumerate() {
        n += d;
        if events.get(i + 1).is_some_and(|&(next, _)| next == ts) {
            continue;
        }
        let c = n.max(0) as usize;
        match out.last_mut() {
            Some(last) if last.1 == c => {}
            Some(last) if last.0 == ts => last.1 = c,
            _ => out.push((ts, c)),
        }
    }
    out
}

/// Writes a step line through (x, y) samples as polyline points: each value holds until the next sample.
/// Coordinates are rounded first, so runs of samples that land on the same pixel row collapse. Returns the
/// number of points written.
fn step_points(out: &mut String, pts: impl Iterator<Item = (f64, f64)>) -> usize {
    let round = |v: f64| if v.is_finite() { (v * 10.0).round() / 10.0 } else { 0.0 };
    let mut n = 0;
    let mut emit = |out: &mut String, x: f64, y: f64| {
        let _ = write!(out, "{}{},{}", if n == 0 { "" } else { " " }, N(x), N(y));
        n += 1;
    };
    // The last point written, and the x of the last sample seen.
    let mut cur: Option<(f64, f64)> = None;
    let mut last_x = None;
    for (x, y) in pts {
        let (x, y) = (round(x), round(y));
        match cur {
            None => {
                emit(out, x, y);
                cur = Some((x, y));
            }
            Some((cx, cy)) if cy != y => {
                if cx != x {
                    emit(out, x, cy);
                }
                emit(out, x, y);
                cur = Some((x, y));
            }
            Some(_) => {}
        }
        last_x = Some(x);
    }
    if let (Some(lx), Some((cx, cy))) = (last_x, cur) {
        if lx != cx {
            emit(out, lx, cy);
        }
    }
    n
}

/// How one lane draws its runs.
enum LaneMode {
    /// One bar per span, in `rows` sub-rows `pitch` apart.
    Bars { rows: usize, pitch: f64, bar_h: f64 },
    /// Too many overlapping runs for bars: the count of running jobs as an area.
    Density { rows: usize },
}

struct Lane<'a> {
    name: &'a str,
    colour: &'static str,
    spans: Vec<(usize, &'a RunSpan)>,
    /// Sub-row of each span, parallel to `spans`.
    row: Vec<usize>,
    counts: Vec<(u64, usize)>,
    mode: LaneMode,
    top: f64,
    height: f64,
}

/// Greedy interval packing on screen coordinates: each span goes into the first sub-row that is free from its
/// start, leaving room for the end mark. Returns each span's sub-row and the number of sub-rows.
fn pack(spans: &[(usize, &RunSpan)], scale: &Scale) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by(|&a, &b| {
        let (sa, sb) = (spans[a].1, spans[b].1);
        (sa.start_ms, sa.end_ms, &sa.job_id, spans[a].0).cmp(&(sb.start_ms, sb.end_ms, &sb.job_id, spans[b].0))
    });
    let mut row = vec![0; spans.len()];
    let mut row_end: Vec<f64> = Vec::new();
    for i in order {
        let s = spans[i].1;
        let x0 = scale.x(s.start_ms);
        let x1 = scale.x(s.end_ms).max(x0 + 1.0);
        let r = match row_end.iter().position(|&e| e + 5.0 <= x0) {
            Some(r) => r,
            None => {
                row_end.push(f64::NEG_INFINITY);
                row_end.len() - 1
            }
        };
        row_end[r] = x1;
        row[i] = r;
    }
    (row, row_end.len())
}

/// Greedy stacking of marker labels into rows so they do not overlap; returns (row, anchored at the end).
fn stack_labels(markers: &[(u64, String)], scale: &Scale) -> (Vec<(usize, bool)>, usize) {
    let mut order: Vec<usize> = (0..markers.len()).collect();
    order.sort_by(|&a, &b| (markers[a].0, &markers[a].1, a).cmp(&(markers[b].0, &markers[b].1, b)));
    let mut placed = vec![(0, false); markers.len()];
    let mut row_end: Vec<f64> = Vec::new();
    for i in order {
        let x = scale.x(markers[i].0);
        let w = clip(&markers[i].1, 40).chars().count() as f64 * CHAR_W + 6.0;
        let right_anchored = x + w > WIDTH - 4.0;
        let (x0, x1) = if right_anchored { (x - w, x) } else { (x, x + w) };
        let r = match row_end.iter().position(|&e| e <= x0) {
            Some(r) => r,
            None if row_end.len() < MARKER_ROWS => {
                row_end.push(f64::NEG_INFINITY);
                row_end.len() - 1
            }
            // Out of rows: overlap in the row that frees up first.
            None => row_end.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).map(|(r, _)| r).unwrap_or(0),
        };
        row_end[r] = x1;
        placed[i] = (r, right_anchored);
    }
    (placed, row_end.len())
}

/// Draws the end mark of a bar whose right edge is at `x`, centred on `cy`, `a` high from the centre.
fn end_mark(out: &mut String, end: SpanEnd, x: f64, cy: f64, a: f64) {
    let cross = |out: &mut String, colour: &str| {
        let (x0, x1) = (x + 0.5, x + 0.5 + 2.0 * a);
        let _ = write!(
            out,
            r#"<path d="M{},{}L{},{}M{},{}L{},{}" stroke="{colour}" stroke-width="1.6" fill="none"/>"#,
            N(x0),
            N(cy - a),
            N(x1),
            N(cy + a),
            N(x0),
            N(cy + a),
            N(x1),
            N(cy - a)
        );
    };
    match end {
        SpanEnd::Completed | SpanEnd::Failed | SpanEnd::Open => {}
        SpanEnd::Migrated => {
            let _ = write!(
                out,
                r#"<path d="M{},{}L{},{}L{},{}" stroke="{INK}" stroke-width="1.4" fill="none"/>"#,
                N(x + 1.0),
                N(cy - a),
                N(x + 1.0 + a),
                N(cy),
                N(x + 1.0),
                N(cy + a)
            );
        }
        SpanEnd::Parked => {
            let _ = write!(
                out,
                r#"<path d="M{},{}v{}M{},{}v{}" stroke="{INK}" stroke-width="1.2"/>"#,
                N(x + 1.5),
                N(cy - a),
                N(2.0 * a),
                N(x + 4.0),
                N(cy - a),
                N(2.0 * a)
            );
        }
        SpanEnd::Sliced => {
            let _ = write!(
                out,
                r#"<path d="M{},{}L{},{}" stroke="{INK}" stroke-width="1.3"/>"#,
                N(x + 1.0),
                N(cy + a),
                N(x + 1.0 + a),
                N(cy - a)
            );
        }
        SpanEnd::Lost => cross(out, RED),
        SpanEnd::Fenced => cross(out, GREY),
    }
}

/// Draws one bar in job colour `c`, styled for how it `end`s, from `x0` to `x1` and `h` high from `y`.
fn bar(out: &mut String, (c, end): (usize, SpanEnd), (x0, x1): (f64, f64), y: f64, h: f64, tip: &str) {
    let fill = JOB_COLOURS[c];
    let w = (x1 - x0).max(1.0);
    match end {
        SpanEnd::Open => {
            let fade = (w * 0.5).min(24.0);
            let _ = write!(
                out,
                r#"<g><title>{tip}</title><rect x="{}" y="{}" width="{}" height="{}" fill="{fill}"/><rect x="{}" y="{}" width="{}" height="{}" fill="url(#f{c})"/></g>"#,
                N(x0),
                N(y),
                N(w - fade),
                N(h),
                N(x0 + w - fade),
                N(y),
                N(fade),
                N(h)
            );
        }
        SpanEnd::Failed => {
            let _ = write!(
                out,
                r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{fill}" fill-opacity="0.5" stroke="{RED}" stroke-width="1.4"><title>{tip}</title></rect>"#,
                N(x0),
                N(y),
                N(w),
                N(h)
            );
        }
        _ => {
            let _ = write!(
                out,
                r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{fill}"><title>{tip}</title></rect>"#,
                N(x0),
                N(y),
                N(w),
                N(h)
            );
        }
    }
}

/// Renders the timeline as a standalone SVG document, about 1200 px wide; its height grows with the nodes.
pub fn render_svg(t: &Timeline) -> String {
    let scale = Scale::new(t);
    let mut out = String::with_capacity(16 * 1024 + t.runs.len() * 200);

    // Nodes in display order: the radio's, then any that only ran jobs, in order of first appearance.
    let mut nodes: Vec<&str> = Vec::new();
    for name in t.radio.iter().map(|(n, _)| n.as_str()).chain(t.runs.iter().map(|r| r.node.as_str())) {
        if !nodes.contains(&name) {
            nodes.push(name);
        }
    }
    let colour_of = |name: &str| {
        let i = nodes.iter().position(|n| *n == name).unwrap_or(0);
        NODE_COLOURS[i % NODE_COLOURS.len()]
    };

    // Top: title, subtitle, node legend, stacked marker labels.
    let jobs = {
        let mut ids: Vec<&str> = t.runs.iter().map(|r| r.job_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    let mut legend = String::new();
    let (mut lx, mut ly) = (LEFT, 64.0);
    for name in &nodes {
        let label = clip(name, 24);
        let w = 26.0 + label.chars().count() as f64 * CHAR_W + 18.0;
        if lx + w > WIDTH - RIGHT && lx > LEFT {
            lx = LEFT;
            ly += 16.0;
        }
        let _ = write!(
            legend,
            r#"<path d="M{},{}h18" stroke="{}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            N(lx),
            N(ly - 4.0),
            colour_of(name),
            N(lx + 24.0),
            N(ly),
            esc(&label)
        );
        lx += w;
    }
    let (label_rows, n_label_rows) = stack_labels(&t.markers, &scale);
    let labels_top = ly + 12.0;
    let radio_top = labels_top + n_label_rows as f64 * MARKER_ROW_H + 8.0;
    let radio_bottom = radio_top + RADIO_H;
    let jobs_top = radio_bottom + 26.0;
    let jobs_bottom = jobs_top + JOBS_H;
    let lanes_top = jobs_bottom + 26.0;

    // Lanes: pack each node's spans, choose how to draw them, and stack the lanes.
    let mut lanes: Vec<Lane> = Vec::with_capacity(nodes.len());
    let mut y = lanes_top;
    for name in &nodes {
        let spans: Vec<(usize, &RunSpan)> = t.runs.iter().enumerate().filter(|(_, r)| r.node == *name).collect();
        let (row, rows) = pack(&spans, &scale);
        let refs: Vec<&RunSpan> = spans.iter().map(|(_, s)| *s).collect();
        let counts = running_counts(&refs, &scale);
        let mode = if rows <= FULL_ROWS {
            LaneMode::Bars { rows, pitch: ROW_PITCH, bar_h: 6.0 }
        } else if rows <= MAX_ROWS {
            let pitch = MAX_ROWS_H / rows as f64;
            LaneMode::Bars { rows, pitch, bar_h: (pitch * 0.75).max(1.2) }
        } else {
            LaneMode::Density { rows }
        };
        let inner = match mode {
            LaneMode::Bars { rows, pitch, .. } => (rows as f64 * pitch).max(18.0),
            LaneMode::Density { .. } => DENSITY_H,
        };
        let height = inner + 2.0 * LANE_PAD;
        lanes.push(Lane { name, colour: colour_of(name), spans, row, counts, mode, top: y, height });
        y += height + LANE_GAP;
    }
    let lanes_bottom = if lanes.is_empty() { lanes_top + 30.0 } else { y - LANE_GAP };
    let axis_y = lanes_bottom + 8.0;
    let legend_y = axis_y + 52.0;
    let height = legend_y + 30.0;

    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#,
        w = N(WIDTH),
        h = N(height)
    );
    let title = if t.title.is_empty() { "Scenario timeline" } else { t.title.as_str() };
    let _ = write!(out, "<title>{}</title>", esc(title));
    out.push_str(concat!(
        "<style>text{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;font-size:11px;fill:#333}",
        ".t{font-size:16px;font-weight:bold;fill:#111}.s{fill:#666;font-size:10px}",
        ".p{font-weight:bold;font-size:12px}.e{text-anchor:end}.c{text-anchor:middle}",
        ".h{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}",
        ".g{stroke:#e8e8e8;stroke-width:1}.m{stroke:#7b3294;stroke-width:1;stroke-dasharray:4 3}",
        ".f{fill:#fff;stroke:#bbb;stroke-width:1}</style>"
    ));
    out.push_str("<defs>");
    for (i, c) in JOB_COLOURS.iter().enumerate() {
        let _ = write!(
            out,
            r#"<linearGradient id="f{i}"><stop offset="0" stop-color="{c}"/><stop offset="1" stop-color="{c}" stop-opacity="0"/></linearGradient>"#
        );
    }
    out.push_str("</defs>");
    let _ = write!(out, r##"<rect width="{}" height="{}" fill="#fff"/>"##, N(WIDTH), N(height));

    let window_s = (scale.end - scale.start) as f64 / 1000.0;
    let _ = write!(
        out,
        r#"<text class="t" x="{}" y="24">{}</text><text class="s" x="{}" y="42">window {} s · {} node{} · {} run{} of {} job{} · {} marker{}</text>"#,
        N(LEFT),
        esc(title),
        N(LEFT),
        N(window_s),
        nodes.len(),
        if nodes.len() == 1 { "" } else { "s" },
        t.runs.len(),
        if t.runs.len() == 1 { "" } else { "s" },
        jobs,
        if jobs == 1 { "" } else { "s" },
        t.markers.len(),
        if t.markers.len() == 1 { "" } else { "s" },
    );
    out.push_str(&legend);

    // Panel frames and vertical time grid lines behind everything.
    let step = time_step_ms(scale.end - scale.start);
    let ticks: Vec<u64> =
        (0..=13).filter_map(|k| step.checked_mul(k)).take_while(|&d| d <= scale.end - scale.start).collect();
    for (top, h) in [(radio_top, RADIO_H), (jobs_top, JOBS_H)] {
        let _ =
            write!(out, r#"<rect class="f" x="{}" y="{}" width="{}" height="{}"/>"#, N(LEFT), N(top), N(PLOT_W), N(h));
    }
    for lane in &lanes {
        let _ = write!(
            out,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}" fill-opacity="0.07"/><rect x="{}" y="{}" width="4" height="{}" fill="{}"/>"#,
            N(LEFT),
            N(lane.top),
            N(PLOT_W),
            N(lane.height),
            lane.colour,
            N(LEFT - 5.0),
            N(lane.top),
            N(lane.height),
            lane.colour
        );
    }
    out.push_str(r#"<g class="g">"#);
    for &d in &ticks {
        let x = scale.x(scale.start + d);
        for (top, bottom) in [(radio_top, radio_bottom), (jobs_top, jobs_bottom), (lanes_top, lanes_bottom)] {
            let _ = write!(out, r#"<path d="M{},{}V{}"/>"#, N(x), N(top), N(bottom));
        }
    }
    out.push_str("</g>");

    // Radio panel.
    let radio_y = |load: f64| radio_bottom - load.clamp(0.0, 1.0) * RADIO_H;
    let _ = write!(out, r#"<text class="p" x="10" y="{}">Radio load</text>"#, N(radio_top + 12.0));
    out.push_str(r#"<g class="g">"#);
    for k in 1..5 {
        let _ = write!(out, r#"<path d="M{},{}h{}"/>"#, N(LEFT), N(radio_y(k as f64 * 0.2)), N(PLOT_W));
    }
    out.push_str("</g>");
    for k in 0..=5 {
        let v = k as f64 * 0.2;
        let _ = write!(out, r#"<text class="e" x="{}" y="{}">{:.1}</text>"#, N(LEFT - 10.0), N(radio_y(v) + 4.0), v);
    }
    let mut any_radio = false;
    for (name, samples) in &t.radio {
        let mut pts = String::new();
        let n = step_points(
            &mut pts,
            samples.iter().filter(|(_, l)| l.is_finite()).map(|&(ts, l)| (scale.x(ts), radio_y(l))),
        );
        if n > 0 {
            any_radio = true;
            let _ = write!(
                out,
                r#"<polyline points="{pts}" fill="none" stroke="{}" stroke-width="1.6" stroke-linejoin="round"><title>{}</title></polyline>"#,
                colour_of(name),
                esc(name)
            );
        }
    }
    if !any_radio {
        let _ = write!(
            out,
            r#"<text class="s c" x="{}" y="{}">no radio samples</text>"#,
            N(LEFT + PLOT_W / 2.0),
            N(radio_top + RADIO_H / 2.0)
        );
    }
    if t.threshold.is_finite() {
        let ty = radio_y(t.threshold);
        let _ = write!(
            out,
            r#"<path d="M{},{}h{}" stroke="{RED}" stroke-width="1.4" stroke-dasharray="7 4"/><text class="h e" x="{}" y="{}" style="fill:{RED}">threshold {}</text>"#,
            N(LEFT),
            N(ty),
            N(PLOT_W),
            N(LEFT + PLOT_W - 4.0),
            N(ty - 5.0),
            (t.threshold * 100.0).round() / 100.0
        );
    }

    // Jobs-running panel: one step line per node on a shared scale.
    let max_count = lanes.iter().flat_map(|l| l.counts.iter().map(|c| c.1)).max().unwrap_or(0);
    let cstep = count_step(max_count.max(1));
    let cmax = max_count.max(1).div_ceil(cstep) * cstep;
    let count_y = |c: usize| jobs_bottom - c as f64 / cmax as f64 * JOBS_H;
    let _ = write!(out, r#"<text class="p" x="10" y="{}">Jobs running</text>"#, N(jobs_top + 12.0));
    out.push_str(r#"<g class="g">"#);
    for c in (cstep..cmax).step_by(cstep) {
        let _ = write!(out, r#"<path d="M{},{}h{}"/>"#, N(LEFT), N(count_y(c)), N(PLOT_W));
    }
    out.push_str("</g>");
    for c in (0..=cmax).step_by(cstep) {
        let _ = write!(out, r#"<text class="e" x="{}" y="{}">{c}</text>"#, N(LEFT - 10.0), N(count_y(c) + 4.0));
    }
    for lane in &lanes {
        let mut pts = String::new();
        let mut counts = lane.counts.clone();
        if counts.last().is_some_and(|c| c.0 < scale.end) {
            counts.push((scale.end, counts.last().map_or(0, |c| c.1)));
        }
        step_points(&mut pts, counts.iter().map(|&(ts, c)| (scale.x(ts), count_y(c))));
        let _ = write!(
            out,
            r#"<polyline points="{pts}" fill="none" stroke="{}" stroke-width="1.6" stroke-linejoin="round"><title>{}</title></polyline>"#,
            lane.colour,
            esc(lane.name)
        );
    }

    // Lanes: node name on the left, one bar per span, hops between the nodes of a migrated job.
    let _ = write!(out, r#"<text class="p" x="10" y="{}">Job runs</text>"#, N(lanes_top - 8.0));
    let _ = write!(
        out,
        r#"<text class="s" x="{}" y="{}">one bar per stretch of a job on a node; colour = job; mark = how it ended</text>"#,
        N(LEFT),
        N(lanes_top - 8.0)
    );
    if lanes.is_empty() {
        let _ = write!(
            out,
            r#"<text class="s c" x="{}" y="{}">no runs</text>"#,
            N(LEFT + PLOT_W / 2.0),
            N(lanes_top + 18.0)
        );
    }
    // Where each span was drawn, by index in `t.runs`: (x0, x1, centre y).
    let mut drawn: Vec<Option<(f64, f64, f64)>> = vec![None; t.runs.len()];
    for lane in &lanes {
        let peak = lane.counts.iter().map(|c| c.1).max().unwrap_or(0);
        let _ = write!(
            out,
            r#"<text class="e" x="{}" y="{}" style="font-weight:bold">{}<title>{}</title></text><text class="s e" x="{}" y="{}">{} run{} · peak {}</text>"#,
            N(LEFT - 10.0),
            N(lane.top + 14.0),
            esc(&clip(lane.name, NAME_CHARS)),
            esc(lane.name),
            N(LEFT - 10.0),
            N(lane.top + 27.0),
            lane.spans.len(),
            if lane.spans.len() == 1 { "" } else { "s" },
            peak
        );
        let inner_top = lane.top + LANE_PAD;
        match lane.mode {
            LaneMode::Bars { pitch, bar_h, .. } => {
                let a = (bar_h * 0.6).clamp(1.5, 4.0);
                for (k, &(i, s)) in lane.spans.iter().enumerate() {
                    let x0 = scale.x(s.start_ms);
                    let x1 = scale.x(s.end_ms).max(x0 + 1.0);
                    let y = inner_top + lane.row[k] as f64 * pitch + (pitch - bar_h) / 2.0;
                    let tip = esc(&format!(
                        "{} on {}: {}–{} s, {}",
                        s.job_id,
                        s.node,
                        N(s.start_ms.saturating_sub(scale.start) as f64 / 1000.0),
                        N(s.end_ms.saturating_sub(scale.start) as f64 / 1000.0),
                        s.end.label()
                    ));
                    bar(&mut out, (job_colour(&s.job_id), s.end), (x0, x1), y, bar_h, &tip);
                    end_mark(&mut out, s.end, x1, y + bar_h / 2.0, a);
                    drawn[i] = Some((x0, x1, y + bar_h / 2.0));
                }
            }
            LaneMode::Density { rows } => {
                let h = lane.height - 2.0 * LANE_PAD;
                let peak = peak.max(1);
                let base = inner_top + h;
                let mut pts = String::new();
                let mut counts = lane.counts.clone();
                counts.push((scale.end, 0));
                step_points(&mut pts, counts.iter().map(|&(ts, c)| (scale.x(ts), base - c as f64 / peak as f64 * h)));
                let _ = write!(
                    out,
                    r#"<polygon points="{},{} {pts} {},{}" fill="{}" fill-opacity="0.45" stroke="{}"/><text class="s h" x="{}" y="{}">{rows} overlapping rows: drawn as the count of running jobs</text>"#,
                    N(LEFT),
                    N(base),
                    N(LEFT + PLOT_W),
                    N(base),
                    lane.colour,
                    lane.colour,
                    N(LEFT + 4.0),
                    N(inner_top + 9.0)
                );
                for &(i, s) in &lane.spans {
                    let x1 = scale.x(s.end_ms);
                    end_mark(&mut out, s.end, x1, base - 4.0, 3.0);
                    drawn[i] = Some((scale.x(s.start_ms), x1, base - 4.0));
                }
            }
        }
    }
    // Hops: a migrated span joined to the same job's next span, when that one runs on another node.
    let mut by_job: Vec<usize> = (0..t.runs.len()).collect();
    by_job
        .sort_by(|&a, &b| (&t.runs[a].job_id, t.runs[a].start_ms, a).cmp(&(&t.runs[b].job_id, t.runs[b].start_ms, b)));
    out.push_str(r##"<g stroke="#444" stroke-width="1" stroke-dasharray="2 2" fill="none" opacity="0.6">"##);
    for w in by_job.windows(2) {
        let (a, b) = (&t.runs[w[0]], &t.runs[w[1]]);
        if a.job_id != b.job_id || a.end != SpanEnd::Migrated || a.node == b.node {
            continue;
        }
        if let (Some((_, ax1, ay)), Some((bx0, _, by))) = (drawn[w[0]], drawn[w[1]]) {
            let _ = write!(out, r#"<path d="M{},{}L{},{}"/>"#, N(ax1 + 5.0), N(ay), N(bx0), N(by));
        }
    }
    out.push_str("</g>");

    // Markers: dashed lines across every panel, labels stacked above the radio panel.
    for (i, (ts, label)) in t.markers.iter().enumerate() {
        let x = scale.x(*ts);
        let (row, right) = label_rows[i];
        let ly = labels_top + (row as f64 + 1.0) * MARKER_ROW_H - 3.0;
        let _ = write!(
            out,
            r#"<path class="m" d="M{},{}V{}"/><text class="h{}" x="{}" y="{}" style="fill:{MARKER}">{}<title>{}</title></text>"#,
            N(x),
            N(ly + 3.0),
            N(lanes_bottom),
            if right { " e" } else { "" },
            N(if right { x - 3.0 } else { x + 3.0 }),
            N(ly),
            esc(&clip(label, 40)),
            esc(label)
        );
    }

    // Time axis.
    let _ = write!(out, r##"<path d="M{},{}h{}" stroke="#555"/>"##, N(LEFT), N(axis_y), N(PLOT_W));
    for &d in &ticks {
        let x = scale.x(scale.start + d);
        let _ = write!(
            out,
            r##"<path d="M{},{}v5" stroke="#555"/><text class="c" x="{}" y="{}">{}</text>"##,
            N(x),
            N(axis_y),
            N(x),
            N(axis_y + 17.0),
            seconds_label(d, step)
        );
    }
    let _ = write!(
        out,
        r#"<text class="s c" x="{}" y="{}">seconds since start</text>"#,
        N(LEFT + PLOT_W / 2.0),
        N(axis_y + 32.0)
    );

    // Legend for span ends, hops and markers.
    let _ = write!(out, r#"<text class="p" x="10" y="{}">Span ends</text>"#, N(legend_y + 4.0));
    let mut x = LEFT;
    for end in SpanEnd::ALL {
        let y = legend_y - 3.0;
        let mut item = String::new();
        bar(&mut item, (0, end), (x, x + 24.0), y, 6.0, end.label());
        end_mark(&mut item, end, x + 24.0, y + 3.0, 3.6);
        out.push_str(&item);
        let _ = write!(out, r#"<text x="{}" y="{}">{}</text>"#, N(x + 36.0), N(legend_y + 4.0), end.label());
        x += 36.0 + end.label().len() as f64 * CHAR_W + 18.0;
    }
    let _ = write!(
        out,
        r##"<path d="M{},{}h24" stroke="#444" stroke-dasharray="2 2"/><text x="{}" y="{}">hop</text><path class="m" d="M{},{}v14"/><text x="{}" y="{}">marker</text>"##,
        N(x),
        N(legend_y),
        N(x + 30.0),
        N(legend_y + 4.0),
        N(x + 72.0),
        N(legend_y - 8.0),
        N(x + 78.0),
        N(legend_y + 4.0)
    );

    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;
    const WINDOW: u64 = 60_000;
    /// node-b's radio crosses the threshold here and falls back below it at `CLEAR`.
    const SPIKE: u64 = 20_500;
    const CLEAR: u64 = 35_000;
    /// node-c is killed here; its jobs restart elsewhere at `RECOVER`.
    const KILL: u64 = 48_000;
    const RECOVER: u64 = 49_500;
    /// How the sample jobs come: their durations (min, max) and every how many jobs one comes in the burst
    /// just before the spike (so that the spike has jobs to move).
    struct Load {
        durations: (u64, u64),
        burst_every: usize,
    }
    const SMALL: Load = Load { durations: (3_000, 16_000), burst_every: 3 };
    const BUSY: Load = Load { durations: (1_500, 9_500), burst_every: 10 };

    /// xorshift64: the sample scenarios are the same on every run without a seeded rand dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn range(&mut self, lo: u64, hi: u64) -> u64 {
            lo + self.next() % (hi - lo)
        }
    }

    fn eligible(t: u64) -> Vec<&'static str> {
        ["node-a", "node-b", "node-c"]
            .into_iter()
            .filter(|&n| match n {
                "node-b" => !(SPIKE..CLEAR).contains(&t),
                "node-c" => t < KILL,
                _ => true,
            })
            .collect()
    }

    /// A testbed-like minute: three nodes; node-b's radio spikes over 0.8 from 20.5 s to 35 s and its jobs
    /// migrate or park; long jobs are time-sliced; some jobs fail; node-c is killed at 48 s (its runs are lost
    /// or fenced and restart elsewhere); the jobs still running at 60 s are open.
    fn scenario(n_jobs: usize, load: Load) -> Timeline {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut radio = Vec::new();
        for (name, base) in [("node-a", 0.32), ("node-b", 0.38), ("node-c", 0.27)] {
            let mut samples = Vec::new();
            for ts in (0..=WINDOW).step_by(250) {
                if name == "node-c" && ts > KILL {
                    break;
                }
                let noise = (rng.range(0, 1000) as f64 / 1000.0 - 0.5) * 0.08;
                let ramp = |from: u64, to: u64| (ts.saturating_sub(from) as f64 / (to - from) as f64).min(1.0);
                let level = match name {
                    "node-b" if ts < SPIKE - 1_500 => base,
                    "node-b" if ts < CLEAR => base + (0.95 - base) * ramp(SPIKE - 1_500, SPIKE + 1_000),
                    "node-b" => 0.95 - (0.95 - base) * ramp(CLEAR, CLEAR + 2_000),
                    "node-a" if (38_000..44_000).contains(&ts) => base + 0.25,
                    _ => base,
                };
                samples.push((T0 + ts, (level + noise).clamp(0.0, 1.0)));
            }
            radio.push((name.to_owned(), samples));
        }

        let mut runs = Vec::new();
        for j in 0..n_jobs {
            let job_id = format!("job-{j:03}");
            let mut t = if j % load.burst_every == 0 { rng.range(15_000, 20_000) } else { rng.range(0, 56_000) };
            let mut rem = rng.range(load.durations.0, load.durations.1);
            let fail_after = (j % 15 == 7).then(|| rem * 2 / 3);
            let mut done = 0;
            let mut sliced = false;
            let mut hops = rng.next() as usize;
            let mut node = {
                let e = eligible(t);
                e[hops % e.len()]
            };
            loop {
                let (mut stop, mut end) = (t + rem, SpanEnd::Completed);
                let mut candidates = vec![(WINDOW, SpanEnd::Open)];
                if let Some(f) = fail_after.filter(|&f| f > done) {
                    candidates.push((t + f - done, SpanEnd::Failed));
                }
                if node == "node-b" && t < SPIKE {
                    let end = if j % 5 == 0 { SpanEnd::Parked } else { SpanEnd::Migrated };
                    candidates.push((SPIKE + rng.range(40, 400), end));
                }
                if node == "node-c" && t < KILL {
                    candidates.push((KILL, if j % 5 < 2 { SpanEnd::Fenced } else { SpanEnd::Lost }));
                }
                if !sliced && rem > 10_000 {
                    candidates.push((t + 6_000, SpanEnd::Sliced));
                }
                for (ts, e) in candidates {
                    if ts < stop {
                        (stop, end) = (ts, e);
                    }
                }
                runs.push(RunSpan {
                    job_id: job_id.clone(),
                    node: node.to_owned(),
                    start_ms: T0 + t,
                    end_ms: T0 + stop,
                    end,
                });
                let ran = stop - t;
                match end {
                    SpanEnd::Completed | SpanEnd::Failed | SpanEnd::Open => break,
                    SpanEnd::Migrated => t = stop + 60,
                    SpanEnd::Parked => t = stop + 1_800,
                    SpanEnd::Sliced => {
                        sliced = true;
                        t = stop + 400;
                    }
                    // Progress since the last checkpoint is gone: the job restarts with what it had left.
                    SpanEnd::Lost | SpanEnd::Fenced => {
                        t = RECOVER;
                        hops += 1;
                        node = eligible(t)[hops % 2];
                        continue;
                    }
                }
                done += ran;
                rem -= ran;
                if t >= WINDOW {
                    break;
                }
                if end != SpanEnd::Sliced || !eligible(t).contains(&node) {
                    hops += 1;
                    let e: Vec<_> = eligible(t).into_iter().filter(|n| *n != node).collect();
                    node = e[hops % e.len()];
                }
            }
        }
        Timeline {
            title: "Scenario: radio spike on node-b, node-c killed".to_owned(),
            start_ms: T0,
            end_ms: T0 + WINDOW,
            threshold: 0.8,
            radio,
            runs,
            markers: vec![
                (T0 + SPIKE, "node-b radio > 0.8".to_owned()),
                (T0 + CLEAR, "node-b radio < 0.8".to_owned()),
                (T0 + KILL, "fault: kill node-c".to_owned()),
                (T0 + RECOVER, "node-c fenced, jobs restarted".to_owned()),
            ],
        }
    }

    /// Checks an entity reference at the start of `s`.
    fn entity(s: &str) -> Result<usize, String> {
        for e in ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"] {
            if s.starts_with(e) {
                return Ok(e.len());
            }
        }
        Err(format!("bad entity at {:?}", &s[..s.len().min(12)]))
    }

    /// A small well-formedness checker for what `render_svg` writes: one root, balanced tags, quoted unique
    /// attributes, and no raw `<` or `&` in text or attribute values.
    fn check_xml(s: &str) -> Result<(), String> {
        let b = s.as_bytes();
        let mut stack: Vec<&str> = Vec::new();
        let (mut i, mut roots) = (0, 0);
        while i < b.len() {
            match b[i] {
                b'<' => {
                    let end = i + s[i..].find('>').ok_or("unclosed tag")?;
                    let tag = &s[i + 1..end];
                    if let Some(name) = tag.strip_prefix('/') {
                        let open = stack.pop().ok_or(format!("stray </{name}>"))?;
                        if open != name {
                            return Err(format!("<{open}> closed by </{name}>"));
                        }
                        i = end + 1;
                        continue;
                    }
                    let self_closing = tag.ends_with('/');
                    let body = tag.strip_suffix('/').unwrap_or(tag);
                    let name_len = body.find(|c: char| c.is_whitespace()).unwrap_or(body.len());
                    let name = &body[..name_len];
                    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':') {
                        return Err(format!("bad tag name {name:?}"));
                    }
                    let mut seen = Vec::new();
                    let mut rest = body[name_len..].trim_start();
                    while !rest.is_empty() {
                        let eq = rest.find('=').ok_or(format!("attribute without value in <{name}>"))?;
                        let attr = &rest[..eq];
                        if attr.is_empty() || attr.contains(char::is_whitespace) || seen.contains(&attr) {
                            return Err(format!("bad or repeated attribute {attr:?} in <{name}>"));
                        }
                        seen.push(attr);
                        let q = rest[eq + 1..].chars().next().filter(|c| *c == '"' || *c == '\'').ok_or("unquoted")?;
                        let close = rest[eq + 2..].find(q).ok_or("unterminated attribute")?;
                        let value = &rest[eq + 2..eq + 2 + close];
                        if value.contains('<') {
                            return Err(format!("raw < in attribute {attr}"));
                        }
                        for (k, _) in value.match_indices('&') {
                            entity(&value[k..])?;
                        }
                        rest = rest[eq + 2 + close + 1..].trim_start();
                    }
                    if stack.is_empty() {
                        roots += 1;
                    }
                    if !self_closing {
                        stack.push(name);
                    }
                    i = end + 1;
                }
                b'&' => i += entity(&s[i..])?,
                c if stack.is_empty() && !c.is_ascii_whitespace() => return Err("text outside the root".into()),
                _ => i += 1,
            }
        }
        match (stack.last(), roots) {
            (Some(open), _) => Err(format!("<{open}> never closed")),
            (None, 1) => Ok(()),
            (None, n) => Err(format!("{n} root elements")),
        }
    }

    fn assert_clean(svg: &str) {
        check_xml(svg).unwrap();
        assert!(svg.starts_with("<svg "), "{}", &svg[..40]);
        for bad in ["NaN", "inf"] {
            assert!(!svg.contains(bad), "{bad} in output");
        }
    }

    fn example_path(name: &str) -> std::path::PathBuf {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn checker_rejects_broken_xml() {
        for bad in ["<a><b></a></b>", "<a>x & y</a>", r#"<a x="1" x="2"/>"#, "<a/><b/>", "<a>", r#"<a x="<"/>"#] {
            assert!(check_xml(bad).is_err(), "{bad}");
        }
        check_xml(r#"<a x="&amp;"><b/>t &lt; u</a>"#).unwrap();
    }

    #[test]
    fn realistic_timeline_renders_clean_svg() {
        let t = scenario(50, SMALL);
        assert!(t.runs.iter().any(|r| r.end == SpanEnd::Migrated));
        let svg = render_svg(&t);
        assert_clean(&svg);
        for (name, _) in &t.radio {
            assert!(svg.contains(&format!(">{name}<")), "no label for {name}");
        }
        assert!(svg.contains("threshold 0.8"));
        assert!(svg.contains(r#"stroke-dasharray="7 4""#), "no dashed threshold line");
        for (_, label) in &t.markers {
            assert!(svg.contains(&esc(label)));
        }
        std::fs::write(example_path("plot-example.svg"), &svg).unwrap();
    }

    #[test]
    fn user_text_is_escaped() {
        let mut t = scenario(5, SMALL);
        t.title = "it's <b>\"bold\"</b>".to_owned();
        t.runs.push(RunSpan {
            job_id: "a<b&c".to_owned(),
            node: "n&1".to_owned(),
            start_ms: T0 + 1_000,
            end_ms: T0 + 2_000,
            end: SpanEnd::Lost,
        });
        t.markers.push((T0 + 3_000, "x > y & \"z\"".to_owned()));
        let svg = render_svg(&t);
        assert_clean(&svg);
        assert!(svg.contains("a&lt;b&amp;c"));
        assert!(!svg.contains("a<b&c"));
        assert!(svg.contains("it&apos;s &lt;b&gt;&quot;bold&quot;&lt;/b&gt;"));
        assert!(svg.contains(">n&amp;1<"));
    }

    #[test]
    fn empty_and_degenerate_timelines_render() {
        assert_clean(&render_svg(&Timeline::default()));
        // Zero-length window, samples and spans outside it, a NaN load and threshold, end before start.
        let t = Timeline {
            title: String::new(),
            start_ms: 5_000,
            end_ms: 5_000,
            threshold: f64::NAN,
            radio: vec![("x".into(), vec![(1, 0.5), (9_000, f64::NAN), (9_999, 7.0)]), ("y".into(), vec![])],
            runs: vec![
                RunSpan { job_id: "j".into(), node: "x".into(), start_ms: 9, end_ms: 1, end: SpanEnd::Open },
                RunSpan { job_id: "k".into(), node: "z".into(), start_ms: 5_000, end_ms: 5_000, end: SpanEnd::Failed },
            ],
            markers: vec![(0, String::new()), (u64::MAX, "late".into())],
        };
        assert_clean(&render_svg(&t));
        let huge = Timeline { start_ms: 0, end_ms: u64::MAX, ..t };
        assert_clean(&render_svg(&huge));
    }

    /// The architecture invariant: the plot needs nothing beyond std (and does no I/O outside its tests).
    #[test]
    fn plot_uses_only_std() {
        let src = include_str!("plot.rs");
        let body = &src[..src.find("#[cfg(test)]").unwrap()];
        for line in body.lines().map(str::trim_start) {
            if line.starts_with("use ") {
                assert!(line.starts_with("use std::"), "{line}");
            }
            assert!(!line.contains("std::fs") && !line.contains("std::time"), "{line}");
        }
    }

    #[test]
    fn rendering_is_deterministic() {
        let t = scenario(50, SMALL);
        assert_eq!(render_svg(&t), render_svg(&t.clone()));
    }

    #[test]
    fn three_hundred_jobs_stay_small() {
        let t = scenario(300, BUSY);
        let svg = render_svg(&t);
        assert_clean(&svg);
        assert!(svg.len() < 500_000, "{} bytes for {} spans", svg.len(), t.runs.len());
        std::fs::write(example_path("plot-example-300.svg"), &svg).unwrap();
    }

    #[test]
    fn crowded_lane_falls_back_to_a_count() {
        let mut t = scenario(20, SMALL);
        for j in 0..(MAX_ROWS as u64 + 20) {
            let end = if j % 9 == 0 { SpanEnd::Lost } else { SpanEnd::Completed };
            let (start_ms, end_ms) = (T0 + 10_000 + j * 50, T0 + 40_000 - j * 80);
            t.runs.push(RunSpan { job_id: format!("burst-{j}"), node: "node-a".into(), start_ms, end_ms, end });
        }
        let svg = render_svg(&t);
        assert_clean(&svg);
        assert!(svg.contains("overlapping rows: drawn as the count of running jobs"));
        std::fs::write(example_path("plot-example-crowded.svg"), &svg).unwrap();
    }

    #[test]
    fn packing_keeps_bars_apart() {
        let t = scenario(300, BUSY);
        let scale = Scale::new(&t);
        let spans: Vec<(usize, &RunSpan)> = t.runs.iter().enumerate().filter(|(_, r)| r.node == "node-a").collect();
        let (row, rows) = pack(&spans, &scale);
        assert!(rows > 1);
        for a in 0..spans.len() {
            for b in a + 1..spans.len() {
                let (sa, sb) = (spans[a].1, spans[b].1);
                if row[a] == row[b] {
                    assert!(sa.end_ms <= sb.start_ms || sb.end_ms <= sa.start_ms, "{sa:?} overlaps {sb:?}");
                }
            }
        }
    }

    #[test]
    fn running_counts_step_at_every_change() {
        let span =
            |s, e| RunSpan { job_id: "j".into(), node: "n".into(), start_ms: s, end_ms: e, end: SpanEnd::Completed };
        let (a, b, c) = (span(10, 20), span(20, 30), span(15, 25));
        let t = Timeline { start_ms: 0, end_ms: 100, ..Timeline::default() };
        let counts = running_counts(&[&a, &b, &c], &Scale::new(&t));
        assert_eq!(counts, vec![(0, 0), (10, 1), (15, 2), (25, 1), (30, 0)]);
    }

    #[test]
    fn axis_steps_are_nice() {
        let cases = [(0, 1), (1_000, 100), (10_000, 1_000), (60_000, 5_000), (300_000, 30_000), (3_600_000, 300_000)];
        for (span, step) in cases {
            assert_eq!(time_step_ms(span), step, "span {span}");
        }
        assert_eq!(seconds_label(2_500, 500), "2.5");
        assert_eq!(seconds_label(20_000, 5_000), "20");
        assert_eq!((count_step(3), count_step(12), count_step(40)), (1, 5, 10));
        assert_eq!(
            (N(-0.01).to_string(), N(1.25).to_string(), N(f64::INFINITY).to_string()),
            ("0".into(), "1.3".into(), "0".into())
        );
    }
}
