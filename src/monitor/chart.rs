//! Small inline SVG charts drawn on the server: no script, no external asset. Values become
//! `f64` here only to place pixels; nothing computed from them is ever shown as money.

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

/// The SVG path of a step line: each value holds until the next point, the last one until `to`.
/// `points` must be oldest first; points outside `[from, to]` are clamped to it.
pub fn step_path(
    points: &[(DateTime<Utc>, f64)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Option<String> {
    let first = points.first()?;
    let (min, max) = points.iter().fold((first.1, first.1), |(lo, hi), (_, v)| {
        (lo.min(*v), hi.max(*v))
    });
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

/// A rate over time as a step line, with its lowest and highest value and the range's ends.
pub fn rate_chart(
    title: &str,
    points: &[(DateTime<Utc>, f64)],
    labels: (&str, &str),
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Markup {
    let Some(path) = step_path(points, from, to) else {
        return html! { p.muted { "No stored rates in this range." } };
    };
    let (low_label, high_label) = labels;
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(title) {
            title { (title) }
            line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(HEIGHT - BOTTOM) {}
            line.axis x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH - RIGHT) y2=(HEIGHT - BOTTOM) {}
            text.tick x=(LEFT - 6.0) y=(TOP + 4.0) text-anchor="end" { (high_label) }
            text.tick x=(LEFT - 6.0) y=(HEIGHT - BOTTOM) text-anchor="end" { (low_label) }
            text.tick x=(LEFT) y=(HEIGHT - 6.0) { (from.format("%Y-%m-%d")) }
            text.tick x=(WIDTH - RIGHT) y=(HEIGHT - 6.0) text-anchor="end" { (to.format("%Y-%m-%d")) }
            path.line d=(path) {}
        }
    }
}

/// One bar of the run-duration chart.
pub struct Bar {
    /// Tooltip.
    pub label: String,
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
            text.tick x=(LEFT - 6.0) y=(TOP + 4.0) text-anchor="end" { (super::views::format_ms(max)) }
            text.tick x=(LEFT - 6.0) y=(HEIGHT - BOTTOM) text-anchor="end" { "0" }
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
        // Starts bottom-left (lowest value), steps up half way, ends at the right edge.
        assert_eq!(d, "M64.0,176.0 H346.0 V12.0 H628.0");
    }

    #[test]
    fn a_flat_series_and_an_empty_one_are_drawn_without_dividing_by_zero() {
        let from = at("2026-01-01T00:00:00Z");
        let d = step_path(&[(from, 5.0)], from, from).unwrap();
        assert!(!d.contains("NaN") && !d.contains("inf"), "{d}");
        assert!(step_path(&[], from, from).is_none());
    }

    #[test]
    fn labels_are_escaped() {
        let out = duration_chart(
            "<x>",
            &[Bar {
                label: "<script>".into(),
                value_ms: 5,
                ok: true,
            }],
        )
        .into_string();
        assert!(!out.contains("<script>") && out.contains("&lt;script&gt;"));
    }
}
