//! The console's charts: SVG drawn by `plotters` (its SVG backend only), embedded in the page.

use plotters::prelude::*;

/// Chart size in pixels.
const SIZE: (u32, u32) = (760, 260);

/// One line of a line chart.
pub struct Line<'a> {
    /// Legend text.
    pub name: &'a str,
    /// Colour.
    pub color: RGBColor,
    /// One value per x label.
    pub values: &'a [i64],
}

/// Blue (sent).
pub const BLUE: RGBColor = RGBColor(37, 99, 235);
/// Green (delivered).
pub const GREEN: RGBColor = RGBColor(22, 163, 74);

fn top(values: impl Iterator<Item = i64>) -> i64 {
    // Headroom above the highest point, and a range even when everything is 0.
    let max = values.max().unwrap_or(0).max(1);
    max + (max / 10).max(1)
}

/// The chart's frame on `root`: caption, margin and label areas, the same on every chart.
fn frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    caption: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(44);
    builder
}

/// A line chart of `lines` over `labels` (x axis), as an `<svg>` element.
pub fn lines(caption: &str, labels: &[String], lines: &[Line<'_>]) -> String {
    svg_of(|svg| draw_lines(svg, caption, labels, lines).map_err(|e| e.to_string()))
}

/// What `draw` writes, or nothing (logged) when it fails: a page never fails for its chart.
fn svg_of(draw: impl FnOnce(&mut String) -> Result<(), String>) -> String {
    let mut svg = String::new();
    if let Err(e) = draw(&mut svg) {
        tracing::warn!(error.message = %e, "chart not drawn");
        return String::new();
    }
    svg
}

fn draw_lines<'a>(
    svg: &'a mut String,
    caption: &str,
    labels: &[String],
    lines: &[Line<'_>],
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let n = i32::try_from(labels.len()).unwrap_or(i32::MAX).max(1);
    let y_max = top(lines.iter().flat_map(|l| l.values.iter().copied()));
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = frame(&root, caption).build_cartesian_2d(0..(n - 1).max(1), 0..y_max)?;
    chart
        .configure_mesh()
        .x_labels(12)
        .x_label_formatter(&|i| {
            usize::try_from(*i)
                .ok()
                .and_then(|i| labels.get(i))
                .cloned()
                .unwrap_or_default()
        })
        .label_style(("sans-serif", 12))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    for l in lines {
        let points = l
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| (i32::try_from(i).unwrap_or(0), *v));
        let color = l.color;
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(l.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(200, 200, 200))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

/// A bar chart of `bars` (label, value), as an `<svg>` element.
pub fn bars(caption: &str, bars: &[(&str, i64)]) -> String {
    svg_of(|svg| draw_bars(svg, caption, bars).map_err(|e| e.to_string()))
}

fn draw_bars<'a>(
    svg: &'a mut String,
    caption: &str,
    bars: &[(&str, i64)],
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let y_max = top(bars.iter().map(|b| b.1));
    #[allow(clippy::cast_precision_loss)]
    let n = bars.len().max(1) as f64;
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = frame(&root, caption).build_cartesian_2d(-0.5..(n - 0.5), 0..y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len().max(1))
        .label_style(("sans-serif", 12))
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() > 0.01 || i < 0.0 {
                return String::new();
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            bars.get(i as usize).map(|b| b.0.to_owned()).unwrap_or_default()
        })
        .label_style(("sans-serif", 12))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
        #[allow(clippy::cast_precision_loss)]
        let x = i as f64;
        Rectangle::new([(x - 0.35, 0), (x + 0.35, *v)], BLUE.filled())
    }))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_labels() {
        let labels: Vec<String> = (0..24).map(|h| format!("{h:02}h")).collect();
        let sent: Vec<i64> = (0..24).collect();
        let svg = lines(
            "Sent per hour",
            &labels,
            &[Line {
                name: "sent",
                color: BLUE,
                values: &sent,
            }],
        );
        assert!(svg.starts_with("<svg"), "{svg:.80}");
        assert!(svg.contains("Sent per hour") && svg.contains("sent") && svg.contains(">\n10h\n<"));
        let svg = bars("Outcomes", &[("success", 3), ("qualified", 1)]);
        assert!(svg.starts_with("<svg") && svg.contains("qualified") && svg.contains("<rect"));
    }
}
