// Package table renders small aligned text tables for terminal summaries.
package table

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Table is a header row plus data rows. Columns whose header starts with a
// '>' are right-aligned (the '>' is not printed).
type Table struct {
	header []string
	right  []bool
	rows   [][]string
}

// New returns a table with the given column headers.
func New(header ...string) *Table {
	t := &Table{}
	for _, h := range header {
		right := strings.HasPrefix(h, ">")
		t.header = append(t.header, strings.TrimPrefix(h, ">"))
		t.right = append(t.right, right)
	}
	return t
}

// Row appends a row; values are formatted with fmt.Sprint.
func (t *Table) Row(values ...any) {
	row := make([]string, len(t.header))
	for i := range row {
		if i < len(values) {
			row[i] = fmt.Sprint(values[i])
		}
	}
	t.rows = append(t.rows, row)
}

// Write renders the table to w.
func (t *Table) Write(w io.Writer) error {
	widths := make([]int, len(t.header))
	for i, h := range t.header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range t.rows {
		for i, v := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(v))
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		for i, c := range cells {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			if t.right[i] {
				b.WriteString(pad + c)
			} else if i < len(cells)-1 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(c)
			}
		}
		b.WriteByte('\n')
	}
	line(t.header)
	sep := make([]string, len(t.header))
	for i := range sep {
		sep[i] = strings.Repeat("-", widths[i])
	}
	line(sep)
	for _, r := range t.rows {
		line(r)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
