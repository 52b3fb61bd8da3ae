//! The run as an SVG: throughput per second on top, p50 / p99 latency per second below, with
//! the end of the warm-up marked. Drawn with plotters' SVG backend only (text is emitted as
//! SVG `<text>` and laid out with plotters' built-in metrics, so no system fonts or
//! fontconfig are needed).

use std::path::Path;

use plotters::prelude::*;

use crate::stats::Second;

/// Writes the plot of `timeline` to `path`. `warmup_s` marks where measuring began.
pub fn write_svg(
    path: &Path,
    title: &str,
    timeline: &[Second],
    warmup_s: f64,
) -> Result<(), String> {
    draw(path, title, timeline, warmup_s).map_err(|e| format!("plot {}: {e}", path.display()))
}

fn draw(
    path: &Path,
    title: &str,
    timeline: &[Second],
    warmup_s: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    // Drop trailing empty seconds (the timeline is sized with slack).
    let used = timeline
        .iter()
        .rposition(|s| s.ops + s.errors > 0)
        .map_or(0, |i| i + 1);
    let secs = &timeline[..used];
    let xmax = (used as f64).max(warmup_s + 1.0).max(1.0);
    // A point per second, at the middle of its bucket.
    let ops: Vec<(f64, f64)> = secs
        .iter()
        .enumerate()
        .map(|(i, s)| (i as f64 + 0.5, s.ops as f64))
        .collect();
    let errs: Vec<(f64, f64)> = secs
        .iter()
        .enumerate()
        .map(|(i, s)| (i as f64 + 0.5, s.errors as f64))
        .collect();
    let quantile = |q: f64| -> Vec<(f64, f64)> {
        secs.iter()
            .enumerate()
            .filter(|(_, s)| !s.latency.is_empty())
            .map(|(i, s)| {
                (
                    i as f64 + 0.5,
                    s.latency.value_at_quantile(q) as f64 / 1000.0,
                )
            })
            .collect()
    };
    let p50 = quantile(0.50);
    let p99 = quantile(0.99);
    let ops_max = ops.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let lat_max = p99.iter().map(|p| p.1).fold(0.001, f64::max) * 1.1;

    let root = SVGBackend::new(path, (1000, 720)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (top, bottom) = root.split_vertically(340);

    let mut chart = ChartBuilder::on(&top)
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..xmax, 0f64..ops_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("ops/s")
        .draw()?;
    chart
        .draw_series(LineSeries::new(ops, BLUE.stroke_width(2)))?
        .label("completed ops/s")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    if errs.iter().any(|p| p.1 > 0.0) {
        chart
            .draw_series(LineSeries::new(errs, RED.stroke_width(2)))?
            .label("errors/s")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    }
    warmup_line(&mut chart, warmup_s, ops_max)?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let mut chart = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..xmax, 0f64..lat_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("latency (ms)")
        .draw()?;
    chart
        .draw_series(LineSeries::new(p50, GREEN.stroke_width(2)))?
        .label("p50")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
    chart
        .draw_series(LineSeries::new(p99, MAGENTA.stroke_width(2)))?
        .label("p99")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], MAGENTA));
    warmup_line(&mut chart, warmup_s, lat_max)?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn warmup_line(
    chart: &mut Chart<'_, '_>,
    warmup_s: f64,
    ymax: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    if warmup_s > 0.0 {
        chart
            .draw_series(LineSeries::new(
                vec![(warmup_s, 0.0), (warmup_s, ymax)],
                BLACK.mix(0.4),
            ))?
            .label("end of warm-up")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.4)));
    }
    Ok(())
}
