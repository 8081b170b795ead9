//! Small inline SVG charts drawn on the server: no script, no external asset. Values become
//! `f64` here only to place pixels and to label the axis with rounded ticks; nothing computed
//! from them is ever shown as a rate or as money (the page's table shows the exact values).

use chrono::{DateTime, Utc};
use maud::{Markup, html};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 24.0;

fn plot_width() -> f64 {
    WIDTH - LEFT - RIGHT
}

fn plot_height() -> f64 {
    HEIGHT - TOP - BOTTOM
}

/// Maps `v` in `[min, max]` to a y coordinate (higher values higher up).
fn y_of(v: f64, min: f64, max: f64) -> f64 {
    let span = if max > min { max - min } else { 1.0 };
    TOP + plot_height() * (1.0 - (v - min) / span)
}

/// The value range drawn for `points`: their lowest and highest, widened by a margin, and to at
/// least a thousandth of their level, so that a rate that barely moves is drawn as the near
/// flat line it is rather than stretched into a zigzag across the whole height.
pub fn value_range(points: &[(DateTime<Utc>, f64)]) -> Option<(f64, f64)> {
    let first = points.first()?;
    let (lo, hi) = points.iter().fold((first.1, first.1), |(lo, hi), (_, v)| {
        (lo.min(*v), hi.max(*v))
    });
    let mid = (lo + hi) / 2.0;
    let span = (hi - lo).max(mid.abs() * 0.001).max(f64::MIN_POSITIVE) * 1.1;
    Some((mid - span / 2.0, mid + span / 2.0))
}

/// Axis tick labels for `[min, max]`: enough decimals that the low, middle and high ticks read
/// differently, and no more.
pub fn tick_labels(min: f64, max: f64) -> [String; 3] {
    let step = ((max - min) / 2.0).abs();
    let decimals = if step > 0.0 {
        (-(step.log10().floor()) as i64 + 1).clamp(0, 10) as usize
    } else {
        4
    };
    [min, (min + max) / 2.0, max].map(|v| format!("{v:.decimals$}"))
}

/// The SVG path of a step line: each value holds until the next point, the last one until `to`.
/// `points` must be oldest first; points outside `[from, to]` are clamped to it.
pub fn step_path(
    points: &[(DateTime<Utc>, f64)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Option<String> {
    let (min, max) = value_range(points)?;
    let span_ms = (to - from).num_milliseconds().max(1) as f64;
    let x_of = |t: DateTime<Utc>| {
        let ms = (t.clamp(from, to) - from).num_milliseconds() as f64;
        LEFT + plot_width() * ms / span_ms
    };
    let mut d = String::new();
    for (i, (t, v)) in points.iter().enumerate() {
        let (x, y) = (x_of(*t), y_of(*v, min, max));
        if i == 0 {
            d.push_str(&format!("M{x:.1},{y:.1}"));
        } else {
            d.push_str(&format!(" H{x:.1} V{y:.1}"));
        }
    }
    d.push_str(&format!(" H{:.1}", x_of(to)));
    Some(d)
}

/// A rate over time as a step line, with rounded ticks on the value axis and the range's ends.
/// `labels` are the exact lowest and highest stored values, shown in the chart's title.
pub fn rate_chart(
    title: &str,
    points: &[(DateTime<Utc>, f64)],
    labels: (&str, &str),
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Markup {
    let (Some(path), Some((min, max))) = (step_path(points, from, to), value_range(points)) else {
        return html! { p.muted { "No stored rates in this range." } };
    };
    let (low_label, high_label) = labels;
    let ticks = tick_labels(min, max);
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(title) {
            title { (title) ": lowest " (low_label) ", highest " (high_label) ", " (points.len()) " changes" }
            line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(HEIGHT - BOTTOM) {}
            line.axis x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH - RIGHT) y2=(HEIGHT - BOTTOM) {}
            text.tick x=(LEFT - 6.0) y=(TOP + 4.0) text-anchor="end" { (ticks[2]) }
            text.tick x=(LEFT - 6.0) y=(TOP + plot_height() / 2.0 + 4.0) text-anchor="end" { (ticks[1]) }
            text.tick x=(LEFT - 6.0) y=(HEIGHT - BOTTOM) text-anchor="end" { (ticks[0]) }
            text.tick x=(LEFT) y=(HEIGHT - 6.0) { (from.format("%Y-%m-%d")) }
            text.tick x=(WIDTH - RIGHT) y=(HEIGHT - 6.0) text-anchor="end" { (to.format("%Y-%m-%d")) }
            path.line d=(path) {}
        }
    }
}

/// One bar of the run-duration chart.
pub struct Bar {
    /// Tooltip: task, outcome, when, duration.
    pub label: String,
    /// When the run finished (the time axis).
    pub at: Option<DateTime<Utc>>,
    /// Height, in milliseconds.
    pub value_ms: i64,
    /// Drawn as a failure when false.
    pub ok: bool,
}

/// Run durations as bars, oldest on the left.
pub fn duration_chart(title: &str, bars: &[Bar]) -> Markup {
    if bars.is_empty() {
        return html! { p.muted { "No finished runs yet." } };
    }
    let max = bars.iter().map(|b| b.value_ms).max().unwrap_or(1).max(1);
    let slot = plot_width() / bars.len() as f64;
    // Thin bars even when there are few runs, so one run does not look like a wall.
    let width = (slot * 0.8).clamp(1.0, 24.0);
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(title) {
            title { (title) }
            line.axis x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH - RIGHT) y2=(HEIGHT - BOTTOM) {}
            text.tick x=(LEFT - 6.0) y=(TOP + 4.0) text-anchor="end" { (format_ms(max)) }
            text.tick x=(LEFT - 6.0) y=(HEIGHT - BOTTOM) text-anchor="end" { "0" }
            @if let Some(first) = bars.first().and_then(|b| b.at) {
                text.tick x=(LEFT) y=(HEIGHT - 6.0) { (first.format("%m-%d %H:%M")) }
            }
            @if let Some(last) = bars.last().and_then(|b| b.at) {
                text.tick x=(WIDTH - RIGHT) y=(HEIGHT - 6.0) text-anchor="end" { (last.format("%m-%d %H:%M UTC")) }
            }
            @for (i, bar) in bars.iter().enumerate() {
                @let h = plot_height() * bar.value_ms.max(0) as f64 / max as f64;
                rect class=(if bar.ok { "bar ok" } else { "bar bad" })
                    x=(format!("{:.1}", LEFT + slot * i as f64 + (slot - width) / 2.0))
                    y=(format!("{:.1}", HEIGHT - BOTTOM - h))
                    width=(format!("{width:.1}")) height=(format!("{:.1}", h.max(1.0))) {
                    title { (bar.label) }
                }
            }
        }
    }
}

/// `1.2 s`, `350 ms`, `2 min 5 s`.
pub fn format_ms(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_step_line_holds_each_value_until_the_next_and_runs_to_the_end() {
        let from = at("2026-01-01T00:00:00Z");
        let to = at("2026-01-03T00:00:00Z");
        let points = [(from, 1.0), (at("2026-01-02T00:00:00Z"), 2.0)];
        let d = step_path(&points, from, to).unwrap();
        // Starts low (the lowest value, inside the margin), steps up half way, ends at the right
        // edge.
        assert_eq!(d, "M64.0,168.5 H346.0 V19.5 H628.0");
    }

    #[test]
    fn a_flat_series_and_an_empty_one_are_drawn_without_dividing_by_zero() {
        let from = at("2026-01-01T00:00:00Z");
        let d = step_path(&[(from, 5.0)], from, from).unwrap();
        assert!(!d.contains("NaN") && !d.contains("inf"), "{d}");
        assert!(step_path(&[], from, from).is_none());
    }

    #[test]
    fn a_rate_that_barely_moves_gets_distinct_ticks_and_a_near_flat_line() {
        let from = at("2026-01-01T00:00:00Z");
        let points = [(from, 1.1172), (at("2026-01-02T00:00:00Z"), 1.1173)];
        let (min, max) = value_range(&points).unwrap();
        let [low, mid, high] = tick_labels(min, max);
        assert!(low != mid && mid != high, "{low} {mid} {high}");
        assert!(low.len() <= 8 && high.len() <= 8, "{low} {high}");
        assert!(
            low.starts_with("1.11") && high.starts_with("1.11"),
            "{low} {high}"
        );
        // The change of 0.0001 on a level of 1.1 spans less than a tenth of the height.
        let (y0, y1) = (y_of(1.1172, min, max), y_of(1.1173, min, max));
        assert!((y0 - y1).abs() < plot_height() / 10.0, "{y0} {y1}");
    }

    #[test]
    fn labels_are_escaped() {
        let out = duration_chart(
            "<x>",
            &[Bar {
                label: "<script>".into(),
                at: None,
                value_ms: 5,
                ok: true,
            }],
        )
        .into_string();
        assert!(!out.contains("<script>") && out.contains("&lt;script&gt;"));
    }
}
