//! Small SVG charts rendered on the server: no chart library, no script,
//! nothing the Content-Security-Policy has to allow.

use std::fmt::Write;

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn empty(message: &str) -> String {
    format!("<p class=\"hint\">{}</p>", escape(message))
}

/// Vertical bars, one per (label, value), each with a tooltip.
pub fn bars(data: &[(String, u64)], empty_message: &str) -> String {
    if data.is_empty() || data.iter().all(|d| d.1 == 0) {
        return empty(empty_message);
    }
    let (width, height, bottom) = (360.0, 180.0, 20.0);
    let max = data.iter().map(|d| d.1).max().unwrap_or(1).max(1) as f64;
    let slot = width / data.len() as f64;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (i, (label, value)) in data.iter().enumerate() {
        let h = (height - bottom - 12.0) * *value as f64 / max;
        let x = i as f64 * slot + slot * 0.1;
        let y = height - bottom - h;
        let _ = write!(
            svg,
            "<g><title>{label}: {value}</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text></g>",
            slot * 0.8,
            x + slot * 0.4,
            height - 6.0,
            label = escape(label),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars, for long labels (genres).
pub fn hbars(data: &[(String, u64)], empty_message: &str) -> String {
    if data.is_empty() {
        return empty(empty_message);
    }
    let (width, row, label_width) = (360.0, 18.0, 110.0);
    let height = row * data.len() as f64 + 4.0;
    let max = data.iter().map(|d| d.1).max().unwrap_or(1).max(1) as f64;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (i, (label, value)) in data.iter().enumerate() {
        let y = i as f64 * row + 2.0;
        let w = (width - label_width - 50.0) * *value as f64 / max;
        let _ = write!(
            svg,
            "<g><title>{label}: {value}</title><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>\
             <rect x=\"{label_width}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{value}</text></g>",
            label_width - 4.0,
            y + row * 0.7,
            row * 0.75,
            label_width + w + 4.0,
            y + row * 0.7,
            label = escape(label),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A line over time (labels in order), first and last labelled.
pub fn line(data: &[(String, u64)], empty_message: &str) -> String {
    if data.len() < 2 {
        return if data.len() == 1 {
            bars(data, empty_message)
        } else {
            empty(empty_message)
        };
    }
    let (width, height, bottom) = (360.0, 180.0, 20.0);
    let max = data.iter().map(|d| d.1).max().unwrap_or(1).max(1) as f64;
    let step = (width - 20.0) / (data.len() - 1) as f64;
    let points: Vec<String> = data
        .iter()
        .enumerate()
        .map(|(i, (_, v))| {
            format!(
                "{:.1},{:.1}",
                10.0 + i as f64 * step,
                height - bottom - (height - bottom - 12.0) * *v as f64 / max
            )
        })
        .collect();
    let (first, last) = (&data[0].0, &data[data.len() - 1].0);
    format!(
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title>{} points, peak {max}</title><polyline points=\"{}\"/>\
         <text x=\"10\" y=\"{:.1}\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text></svg>",
        data.len(),
        points.join(" "),
        height - 6.0,
        escape(first),
        width - 10.0,
        height - 6.0,
        escape(last),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_escape_labels_and_scale_to_the_maximum() {
        let data = vec![("<b>".to_string(), 10), ("5.0".to_string(), 5)];
        let svg = bars(&data, "none");
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(hbars(&data, "none").contains("&lt;b&gt;"));
        assert!(line(&data, "none").contains("<polyline"));
        assert!(bars(&[], "no ratings yet").contains("no ratings yet"));
    }
}
