package report

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"io"
	"os"
	"strings"
	texttemplate "text/template"
)

//go:embed templates/report.html.tmpl templates/report.md.tmpl
var templateFS embed.FS

var (
	htmlTemplates = htmltemplate.Must(htmltemplate.New("html").ParseFS(templateFS, "templates/report.html.tmpl"))
	mdTemplates   = texttemplate.Must(texttemplate.New("md").Funcs(texttemplate.FuncMap{
		"cell":    mdCell,
		"code":    mdCode,
		"mark":    mdMark,
		"rowmark": mdRowMark,
	}).ParseFS(templateFS, "templates/report.md.tmpl"))
)

// mdCell makes s safe inside a Markdown table cell: pipes escaped, line
// breaks flattened, HTML-significant brackets neutralised.
func mdCell(s string) string {
	r := strings.NewReplacer("|", `\|`, "\r\n", " ", "\n", " ", "\r", " ", "<", "&lt;", ">", "&gt;")
	return r.Replace(s)
}

// mdCode makes s safe inside a code span in a Markdown table cell: GitHub
// unescapes \| there, and entities would show literally.
func mdCode(s string) string {
	r := strings.NewReplacer("|", `\|`, "`", "'", "\r\n", " ", "\n", " ", "\r", " ")
	return r.Replace(s)
}

// mdMark is the coloured symbol for a verdict class in Markdown.
func mdMark(class string) string {
	switch class {
	case "pass":
		return "✅"
	case "fail":
		return "❌"
	}
	return "❔"
}

// mdRowMark marks a compared row as worse or better in Markdown.
func mdRowMark(class string) string {
	switch class {
	case classWorse:
		return "🔴 "
	case classBetter:
		return "🟢 "
	}
	return ""
}

type executor interface {
	ExecuteTemplate(w io.Writer, name string, data any) error
}

// renderTo executes template name into path, replacing the file only when
// rendering succeeded.
func renderTo(path string, t executor, name string, data any) error {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		return fmt.Errorf("render %s: %w", path, err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
