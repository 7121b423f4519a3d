//! `--plot DIR`: SVG charts — commit-latency CDF per region for each (protocol, workload),
//! median / p99 commit latency against conflict rate per region and protocol, and p99
//! commit against p99 execution latency per region and protocol.

use super::RunReport;
use anyhow::{anyhow, Context};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn file_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing chart: {e:?}")
}

/// Write every chart into `dir`; returns the files written.
pub fn write_all(dir: &Path, reports: &[RunReport]) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for report in reports {
        written.push(cdf_chart(dir, report)?);
    }
    written.extend(conflict_charts(dir, reports)?);
    Ok(written)
}

fn cdf_chart(dir: &Path, report: &RunReport) -> anyhow::Result<PathBuf> {
    let conflicts = report
        .conflict_pct
        .map_or_else(String::new, |c| format!("-c{c}"));
    let path = dir.join(format!(
        "cdf-{}{}.svg",
        file_name(&report.protocol),
        conflicts
    ));
    let max_ms = report
        .regions
        .iter()
        .flat_map(|r| r.cdf.last().map(|p| p.0))
        .fold(1.0, f64::max)
        * 1.05;
    let target = path.clone();
    let root = SVGBackend::new(&target, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let title = format!(
        "{} on {}{} — commit latency CDF",
        report.protocol,
        report.topology,
        report
            .conflict_pct
            .map_or_else(String::new, |c| format!(", {c}% conflicts"))
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..max_ms, 0f64..1f64)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("commit latency (ms)")
        .y_desc("fraction of requests")
        .draw()
        .map_err(plot_err)?;
    for (i, region) in report.regions.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        draw_line(
            &mut chart,
            region.cdf.iter().copied(),
            color.stroke_width(2),
            region.region.clone(),
        )?;
    }
    finish(chart, &root, SeriesLabelPosition::LowerRight)?;
    Ok(path)
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// One labelled line, its legend entry drawn in the same style.
fn draw_line(
    chart: &mut Chart<'_, '_>,
    points: impl IntoIterator<Item = (f64, f64)>,
    style: ShapeStyle,
    label: String,
) -> anyhow::Result<()> {
    chart
        .draw_series(LineSeries::new(points, style))
        .map_err(plot_err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    Ok(())
}

/// The legend box, then the file.
fn finish<'a>(
    mut chart: Chart<'a, 'a>,
    root: &DrawingArea<SVGBackend<'a>, plotters::coord::Shift>,
    legend: SeriesLabelPosition,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)
}

/// `(conflict %, p50 ms, p99 ms)` of one region under one protocol.
/// (conflict %, commit p50, commit p99, execution p99), ms.
type ConflictPoint = (f64, f64, f64, f64);

/// A line's label and the value it draws.
type ChartLine = (&'static str, fn(&ConflictPoint) -> f64);

/// One kind of conflict chart: its file prefix, title and the two lines drawn per
/// protocol (label, value; the first thick, the second thin).
struct ConflictChart {
    prefix: &'static str,
    title: &'static str,
    lines: [ChartLine; 2],
}

const CONFLICT_CHARTS: [ConflictChart; 2] = [
    ConflictChart {
        prefix: "conflicts",
        title: "commit latency vs conflict rate",
        lines: [("p50", |p| p.1), ("p99", |p| p.2)],
    },
    ConflictChart {
        prefix: "conflicts-p99",
        title: "p99 commit and execution latency vs conflict rate",
        lines: [("commit p99", |p| p.2), ("exec p99", |p| p.3)],
    },
];

/// One chart per region and kind ([`CONFLICT_CHARTS`]) with a line pair per protocol.
fn conflict_charts(dir: &Path, reports: &[RunReport]) -> anyhow::Result<Vec<PathBuf>> {
    // protocol → region → points
    let mut series: BTreeMap<String, BTreeMap<String, Vec<ConflictPoint>>> = BTreeMap::new();
    for report in reports {
        let Some(conflict) = report.conflict_pct else {
            continue;
        };
        for region in &report.regions {
            series
                .entry(report.protocol.clone())
                .or_default()
                .entry(region.region.clone())
                .or_default()
                .push((conflict, region.p50_ms, region.p99_ms, region.exec_p99_ms));
        }
    }
    let distinct_conflicts = {
        let mut all: Vec<f64> = reports.iter().filter_map(|r| r.conflict_pct).collect();
        all.sort_by(f64::total_cmp);
        all.dedup();
        all.len()
    };
    if distinct_conflicts < 2 {
        return Ok(Vec::new());
    }
    let regions: Vec<String> = reports
        .first()
        .map(|r| r.regions.iter().map(|x| x.region.clone()).collect())
        .unwrap_or_default();
    let mut written = Vec::new();
    for kind in &CONFLICT_CHARTS {
        for region in &regions {
            written.push(conflict_chart(dir, kind, region, &series)?);
        }
    }
    Ok(written)
}

fn conflict_chart(
    dir: &Path,
    kind: &ConflictChart,
    region: &str,
    series: &BTreeMap<String, BTreeMap<String, Vec<ConflictPoint>>>,
) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{}-{}.svg", kind.prefix, file_name(region)));
    let [(first_label, first), (second_label, second)] = kind.lines;
    let max_ms = series
        .values()
        .filter_map(|by_region| by_region.get(region))
        .flatten()
        .map(|p| first(p).max(second(p)))
        .fold(1.0, f64::max)
        * 1.1;
    let target = path.clone();
    let root = SVGBackend::new(&target, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{region}: {}", kind.title), ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..100f64, 0f64..max_ms)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("conflicts (%)")
        .y_desc("latency (ms)")
        .draw()
        .map_err(plot_err)?;
    for (i, (protocol, by_region)) in series.iter().enumerate() {
        let Some(points) = by_region.get(region) else {
            continue;
        };
        let mut points = points.clone();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let color = Palette99::pick(i).to_rgba();
        draw_line(
            &mut chart,
            points.iter().map(|p| (p.0, first(p))),
            color.stroke_width(2),
            format!("{protocol} {first_label}"),
        )?;
        draw_line(
            &mut chart,
            points.iter().map(|p| (p.0, second(p))),
            color.stroke_width(1),
            format!("{protocol} {second_label}"),
        )?;
    }
    finish(chart, &root, SeriesLabelPosition::UpperLeft)?;
    Ok(path)
}
