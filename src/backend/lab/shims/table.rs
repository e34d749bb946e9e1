//! kubectl's column layout: every column as wide as its widest cell, three spaces apart, no
//! padding after the last one.

pub fn render(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 < row.len() {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns_like_kubectl() {
        let rows = vec![
            vec!["NAME".to_string(), "STATUS".to_string()],
            vec!["kind-control-plane".to_string(), "Ready".to_string()],
        ];
        assert_eq!(super::render(&rows), "NAME                 STATUS\nkind-control-plane   Ready\n");
    }
}
