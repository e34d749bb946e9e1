//! The column layout of Go's `text/tabwriter` with spaces and no flags, as the cilium CLI
//! (`minwidth` 0, `padding` 4: [`render`]) and `cilium-dbg` (5 and 3) configure it: a line's cells are separated by tabs, the text after
//! the last tab is not a column. A column is a block of consecutive lines that all have a
//! tab-terminated cell at that position; each of its cells is padded to the block's widest cell
//! plus the padding (so a cell of the last column of a line is padded too, trailing spaces
//! included). Widths count characters, colour escapes included, as Go counts runes: the real
//! CLI's layout depends on that, so it is kept even when the escapes are then left out
//! ([`strip_colours`]).

/// Lays out `text` (lines of tab-separated cells) as the cilium CLI does.
pub fn render(text: &str) -> String {
    render_with(text, 0, 4)
}

/// Lays out `text` with Go's `minwidth` and `padding`.
pub fn render_with(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    format(&lines, 0, lines.len(), (minwidth, padding), &mut widths, &mut out);
    out
}

/// Go's `Writer.format`: the lines in `line0..line1` share the column widths found so far.
fn format(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    (minwidth, padding): (usize, usize),
    widths: &mut Vec<usize>,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        // Does this line have a tab-terminated cell in this column?
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = minwidth;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + padding);
            this += 1;
        }
        widths.push(width);
        format(lines, line0, this, (minwidth, padding), widths, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if let Some(w) = widths.get(j) {
                let n = w.saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', n));
            }
        }
        out.push('\n');
    }
}

/// The text without its ANSI colour escapes (`ESC [ … m`).
pub fn strip_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_blocks_of_lines() {
        // `Cluster Pods:` has one column: it ends the second column's first block.
        let t = "DaemonSet\tcilium\tDesired: 3\nContainers:\tclustermesh-apiserver\t\nCluster Pods:\t0/2 managed by Cilium\nImage versions\tcilium\tq:1\n";
        assert_eq!(
            render(t),
            "DaemonSet         cilium                   Desired: 3\n\
             Containers:       clustermesh-apiserver    \n\
             Cluster Pods:     0/2 managed by Cilium\n\
             Image versions    cilium    q:1\n"
        );
    }

    #[test]
    fn a_line_without_tabs_is_not_a_column() {
        assert_eq!(render("  head\na\tb\nlonger\tc\n\nx\ty\n"), "  head\na         b\nlonger    c\n\nx    y\n");
    }

    #[test]
    fn escapes_count_then_go() {
        // The coloured cell counts 11 characters, as wide as the plain one: both get 4 spaces.
        let t = "\u{1b}[32mab\u{1b}[0m\tx\nabcdefghijk\ty\n";
        assert_eq!(strip_colours(&render(t)), "ab    x\nabcdefghijk    y\n");
    }
}
