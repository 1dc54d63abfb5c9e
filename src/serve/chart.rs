//! The dashboard's charts: line charts over a time axis, drawn on the server as SVG, so a
//! page needs no JavaScript. The time axis is labelled in UTC with ticks chosen for the
//! range (ten minutes for an hour, three hours for a day, days for a week, weeks for a
//! month); the value axis with round numbers in the chart's unit. Deploys are vertical
//! lines labelled with the version, so a version that changed a series shows where it
//! started. Not for reading data: the caller hands over the points.

use std::fmt::Write as _;

/// The width of the drawing, in SVG units (pixels at 1:1).
const WIDTH: f64 = 760.0;
/// The height of the drawing.
const HEIGHT: f64 = 220.0;
/// Room on the left for the value labels.
const LEFT: f64 = 64.0;
/// Room on the right for the legend.
const RIGHT: f64 = 96.0;
/// Room above the plot for the deploy labels.
const TOP: f64 = 18.0;
/// Room below the plot for the time labels.
const BOTTOM: f64 = 34.0;
/// The most time ticks an axis carries.
const MAX_TICKS: i64 = 10;
/// Seconds in a day.
const DAY: i64 = 86_400;

/// The colours of the series, in order (a series past the last one takes the first again).
const COLOURS: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Tick steps of a time axis and where they are counted from (seconds after the epoch
/// that a tick falls on): weeks start on Mondays (1970-01-05).
const STEPS: [(i64, i64); 14] = [
    (60, 0),
    (300, 0),
    (600, 0),
    (900, 0),
    (1_800, 0),
    (3_600, 0),
    (7_200, 0),
    (10_800, 0),
    (21_600, 0),
    (43_200, 0),
    (DAY, 0),
    (2 * DAY, 0),
    (7 * DAY, 4 * DAY),
    (28 * DAY, 4 * DAY),
];

/// The time a chart spans, in seconds since the epoch, and the width of its buckets: a
/// line is broken where a series skips a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeAxis {
    /// The left end.
    pub from: i64,
    /// The right end.
    pub to: i64,
    /// The width of a bucket, in seconds.
    pub bucket: i64,
}

/// How the values of a chart read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds.
    Millis,
    /// A share, shown as a percentage.
    Share,
    /// US dollars.
    Usd,
    /// A score from 0 to 1.
    Score,
    /// A count.
    Count,
}

/// One line of a chart: its points in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend's label (`v3`).
    pub label: String,
    /// `(seconds since the epoch, value)`, in time order.
    pub points: Vec<(i64, f64)>,
}

/// A moment marked on the time axis: a vertical line with a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// When, in seconds since the epoch.
    pub at: i64,
    /// The label (`v8`).
    pub label: String,
}

/// The ticks of a time axis from `from` to `to`: at most [`MAX_TICKS`], on round UTC times,
/// each with its label (`14:30`; a day as `Dec 06`).
pub fn time_ticks(from: i64, to: i64) -> Vec<(i64, String)> {
    let span = (to - from).max(1);
    // Past the longest step, whole days enough to stay under the most ticks.
    let (step, origin) = STEPS
        .iter()
        .copied()
        .find(|(step, _)| span / step < MAX_TICKS)
        .unwrap_or(((span / (MAX_TICKS - 1) / DAY + 1) * DAY, 0));
    let first = origin + (from - origin).div_euclid(step) * step;
    let first = if first < from { first + step } else { first };
    let mut ticks = Vec::new();
    let mut at = first;
    while at <= to && ticks.len() < usize::try_from(MAX_TICKS + 1).unwrap_or(usize::MAX) {
        ticks.push((at, time_label(at, step)));
        at += step;
    }
    ticks
}

/// `at` as a tick's label: the day (`Dec 06`) when the step is a day or more or `at` is
/// midnight, else the time of day (`14:30`).
fn time_label(at: i64, step: i64) -> String {
    let days = at.div_euclid(DAY);
    let seconds = at.rem_euclid(DAY);
    if step >= DAY || seconds == 0 {
        let (_, month, day) = crate::calendar::civil_date(days);
        let months = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let name = months
            .get(usize::try_from(month).unwrap_or(1).saturating_sub(1))
            .copied()
            .unwrap_or("?");
        format!("{name} {day:02}")
    } else {
        format!("{:02}:{:02}", seconds / 3_600, (seconds % 3_600) / 60)
    }
}

/// The top of a value axis whose highest value is `max`, and its step: a round number
/// (1, 2, 2.5 or 5 times a power of ten) split in four, at least `floor` (so a chart of
/// zeros still has an axis).
pub fn value_ticks(max: f64, floor: f64) -> (f64, f64) {
    let max = if max.is_finite() {
        max.max(floor)
    } else {
        floor
    };
    let rough = max / 4.0;
    let power = 10_f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|step| step * 4.0 >= max * (1.0 - 1e-9))
        .unwrap_or(10.0 * power);
    (step * 4.0, step)
}

/// `value` as the axis labels of `unit` show it.
pub fn format_value(value: f64, unit: Unit) -> String {
    let number = |v: f64| {
        if v == 0.0 {
            "0".to_owned()
        } else if v.abs() >= 100.0 {
            format!("{v:.0}")
        } else if v.abs() >= 1.0 {
            trim(format!("{v:.1}"))
        } else {
            trim(format!("{v:.4}"))
        }
    };
    match unit {
        Unit::Millis => format!("{} ms", number(value)),
        Unit::Share => format!("{}%", number(value * 100.0)),
        Unit::Usd => format!("${}", number(value)),
        Unit::Score | Unit::Count => number(value),
    }
}

fn trim(text: String) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// Where things go on the drawing.
struct Frame {
    axis: TimeAxis,
    top: f64,
}

impl Frame {
    fn x(&self, at: i64) -> f64 {
        let span = (self.axis.to - self.axis.from).max(1) as f64;
        let at = at.clamp(self.axis.from, self.axis.to);
        LEFT + (at - self.axis.from) as f64 / span * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, value: f64) -> f64 {
        let share = if self.top > 0.0 {
            value / self.top
        } else {
            0.0
        };
        HEIGHT - BOTTOM - share.clamp(0.0, 1.0) * (HEIGHT - TOP - BOTTOM)
    }
}

/// A line chart as SVG (`id="chart-{id}"`): one line per series, a labelled time axis,
/// a value axis in `unit`, and `markers` as labelled vertical lines.
pub fn line_chart(
    id: &str,
    axis: TimeAxis,
    unit: Unit,
    series: &[Series],
    markers: &[Marker],
) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(_, v)| *v))
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let floor = match unit {
        Unit::Share => 0.01,
        Unit::Score => 1.0,
        Unit::Usd => 0.01,
        Unit::Millis | Unit::Count => 1.0,
    };
    let (top, step) = value_ticks(max, floor);
    let frame = Frame { axis, top };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart-svg\" id=\"chart-{}\" \
         width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\">",
        crate::escape::html(id)
    );
    value_axis(&mut svg, &frame, step, unit);
    time_axis(&mut svg, &frame);
    for marker in markers {
        let x = frame.x(marker.at);
        let label = crate::escape::html(&marker.label);
        let _ = write!(
            svg,
            "<g class=\"deploy\" data-version=\"{label}\"><line x1=\"{x:.1}\" y1=\"{TOP}\" \
             x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#555\" stroke-dasharray=\"4 3\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{label}</text></g>",
            HEIGHT - BOTTOM,
            x,
            TOP - 5.0
        );
    }
    for (index, line) in series.iter().enumerate() {
        draw_series(&mut svg, &frame, index, line);
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal grid lines with their values, four steps of `step`.
fn value_axis(svg: &mut String, frame: &Frame, step: f64, unit: Unit) {
    for i in 0..=4 {
        let value = step * f64::from(i);
        let y = frame.y(value);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\"/>\
             <text class=\"value-tick\" x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" \
             text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            if i == 0 { "#888" } else { "#eee" },
            LEFT - 4.0,
            y + 3.0,
            crate::escape::html(&format_value(value, unit))
        );
    }
}

/// The time axis: a tick and a label at each of [`time_ticks`], and `UTC` at its end.
fn time_axis(svg: &mut String, frame: &Frame) {
    let base = HEIGHT - BOTTOM;
    svg.push_str("<g class=\"x-axis\">");
    for (at, label) in time_ticks(frame.axis.from, frame.axis.to) {
        let x = frame.x(at);
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{base}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#888\"/>\
             <text class=\"tick\" data-at=\"{at}\" x=\"{x:.1}\" y=\"{:.1}\" font-size=\"10\" \
             text-anchor=\"middle\">{}</text>",
            base + 4.0,
            base + 15.0,
            crate::escape::html(&label)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">UTC</text></g>",
        WIDTH - RIGHT,
        base + 28.0
    );
}

/// One series: a path broken where it skips a bucket, a dot per point (a point alone
/// shows), and its label in the legend.
fn draw_series(svg: &mut String, frame: &Frame, index: usize, line: &Series) {
    let colour = COLOURS[index % COLOURS.len()];
    let label = crate::escape::html(&line.label);
    let mut path = String::new();
    let mut previous: Option<i64> = None;
    for &(at, value) in line.points.iter().filter(|(_, v)| v.is_finite()) {
        let joined = previous.is_some_and(|p| at - p <= frame.axis.bucket);
        let _ = write!(
            path,
            "{}{:.1},{:.1} ",
            if joined { "L" } else { "M" },
            frame.x(at),
            frame.y(value)
        );
        previous = Some(at);
    }
    let _ = write!(
        svg,
        "<g class=\"series\" data-series=\"{label}\"><path fill=\"none\" stroke=\"{colour}\" \
         stroke-width=\"1.8\" d=\"{}\"/>",
        path.trim_end()
    );
    // Dots only where they stay readable.
    if line.points.len() <= 200 {
        for &(at, value) in line.points.iter().filter(|(_, v)| v.is_finite()) {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"{colour}\"/>",
                frame.x(at),
                frame.y(value)
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"{colour}\">{label}</text></g>",
        WIDTH - RIGHT + 8.0,
        TOP + 14.0 * (index as f64 + 0.5)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-05-01 09:37:12 UTC, a Wednesday.
    const NOW: i64 = 1_714_556_232;

    fn labels(from: i64, to: i64) -> Vec<String> {
        time_ticks(from, to).into_iter().map(|(_, l)| l).collect()
    }

    #[test]
    fn ticks_suit_each_range() {
        // An hour: every ten minutes.
        assert_eq!(
            labels(NOW - 3_600, NOW),
            ["08:40", "08:50", "09:00", "09:10", "09:20", "09:30"]
        );
        // A day: every three hours, midnight named by its date.
        assert_eq!(
            labels(NOW - DAY, NOW),
            [
                "12:00", "15:00", "18:00", "21:00", "May 01", "03:00", "06:00", "09:00"
            ]
        );
        // A week: every day.
        assert_eq!(
            labels(NOW - 7 * DAY, NOW),
            [
                "Apr 25", "Apr 26", "Apr 27", "Apr 28", "Apr 29", "Apr 30", "May 01"
            ]
        );
        // Thirty days: every Monday.
        assert_eq!(
            labels(NOW - 30 * DAY, NOW),
            ["Apr 08", "Apr 15", "Apr 22", "Apr 29"]
        );
        for span in [60, 3_600, DAY, 7 * DAY, 30 * DAY, 400 * DAY, 5_000 * DAY] {
            let ticks = time_ticks(NOW - span, NOW);
            assert!(!ticks.is_empty() && ticks.len() <= 11, "{span}: {ticks:?}");
            assert!(ticks.iter().all(|(at, _)| (NOW - span..=NOW).contains(at)));
        }
    }

    #[test]
    fn value_axes_are_round() {
        let close = |(top, step): (f64, f64), (t, s): (f64, f64)| {
            assert!(
                (top - t).abs() < 1e-9 && (step - s).abs() < 1e-9,
                "{top} {step}"
            );
        };
        close(value_ticks(0.0, 1.0), (1.0, 0.25));
        close(value_ticks(730.0, 1.0), (800.0, 200.0));
        close(value_ticks(1_000.0, 1.0), (1_000.0, 250.0));
        close(value_ticks(0.031, 0.01), (0.04, 0.01));
        close(value_ticks(f64::NAN, 1.0), (1.0, 0.25));
        assert_eq!(format_value(0.25, Unit::Share), "25%");
        assert_eq!(format_value(1_250.0, Unit::Millis), "1250 ms");
        assert_eq!(format_value(0.0025, Unit::Usd), "$0.0025");
        assert_eq!(format_value(2.5, Unit::Count), "2.5");
    }

    #[test]
    fn a_chart_has_its_series_markers_and_axis() {
        let axis = TimeAxis {
            from: NOW - DAY,
            to: NOW,
            bucket: 3_600,
        };
        let series = [
            Series {
                label: "v1".into(),
                points: vec![(NOW - 5 * 3_600, 100.0), (NOW - 4 * 3_600, 120.0)],
            },
            Series {
                label: "v2<".into(),
                // A skipped bucket breaks the line.
                points: vec![(NOW - 3 * 3_600, 400.0), (NOW - 3_600, 420.0)],
            },
        ];
        let marker = Marker {
            at: NOW - 3 * 3_600,
            label: "v2".into(),
        };
        let svg = line_chart("latency", axis, Unit::Millis, &series, &[marker]);
        assert!(svg.contains("id=\"chart-latency\""));
        assert!(svg.contains("data-series=\"v1\""));
        assert!(svg.contains("data-series=\"v2&lt;\""));
        assert!(svg.contains("class=\"deploy\" data-version=\"v2\""));
        assert!(svg.contains(">May 01</text>"));
        assert!(svg.contains(">800 ms</text>"));
        assert_eq!(svg.matches(" M").count() + svg.matches("\"M").count(), 3);
    }
}
