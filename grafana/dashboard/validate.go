package dashboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// PanelTypes are the panel types Validate accepts: Grafana's core panels
// that exist at SchemaVersion.
var PanelTypes = []string{
	"row", "timeseries", "stat", "gauge", "bargauge", "table", "heatmap",
	"text", "state-timeline", "status-history", "barchart", "histogram",
	"piechart", "logs", "annolist", "dashlist", "news", "nodeGraph",
	"traces", "flamegraph", "trend", "xychart", "candlestick", "canvas",
	"geomap", "alertlist", "datagrid",
}

// variableTypes are Grafana's template variable types.
var variableTypes = []string{"query", "datasource", "custom", "constant", "interval", "textbox", "adhoc"}

// builtinVars are Grafana's global variables a query may use.
var builtinVars = []string{
	"__rate_interval", "__rate_interval_ms", "__interval", "__interval_ms",
	"__range", "__range_s", "__range_ms", "__from", "__to", "__dashboard",
	"__org", "__user", "__name", "timeFilter",
}

// varRef finds $name, ${name} and ${name:format} references.
var varRef = regexp.MustCompile(`\$(?:\{([A-Za-z0-9_]+)(?::[A-Za-z0-9_]+)?\}|([A-Za-z0-9_]+))`)

// varName is what a template variable may be called.
var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// uidPattern is what Grafana accepts as a dashboard uid.
var uidPattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,40}$`)

// Validate checks dashboard JSON (as committed, not the Go model) for what
// Grafana at SchemaVersion needs and what kmt's dashboards promise: the
// declared schema version, a uid and title, unique positive panel ids, known
// panel types, sane grid positions without overlaps, every Prometheus query
// and annotation referencing the datasource through ${datasource}, defined
// template variables only, threshold steps in order, and heatmap queries in
// heatmap format. It returns every problem found, joined.
func Validate(data []byte) error {
	var d rawDashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return fmt.Errorf("dashboard JSON: %w", err)
	}
	v := &validator{}
	v.dashboard(&d)
	return errors.Join(v.errs...)
}

type rawDashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion *int   `json:"schemaVersion"`
	Templating    struct {
		List []rawVariable `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []rawAnnotation `json:"list"`
	} `json:"annotations"`
	Panels []rawPanel `json:"panels"`
}

type rawVariable struct {
	Name       string      `json:"name"`
	Type       string      `json:"type"`
	Query      any         `json:"query"`
	Datasource *Datasource `json:"datasource"`
}

type rawAnnotation struct {
	Name       string      `json:"name"`
	Datasource *Datasource `json:"datasource"`
	Expr       string      `json:"expr"`
	Enable     bool        `json:"enable"`
}

type rawPanel struct {
	ID          *int        `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Collapsed   bool        `json:"collapsed"`
	GridPos     *GridPos    `json:"gridPos"`
	Datasource  *Datasource `json:"datasource"`
	Targets     []rawTarget `json:"targets"`
	Panels      []rawPanel  `json:"panels"`
	FieldConfig *struct {
		Defaults struct {
			Thresholds *rawThresholds `json:"thresholds"`
		} `json:"defaults"`
		Overrides []struct {
			Properties []struct {
				ID    string          `json:"id"`
				Value json.RawMessage `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
}

type rawTarget struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Format     string      `json:"format"`
	Datasource *Datasource `json:"datasource"`
}

type rawThresholds struct {
	Mode  string `json:"mode"`
	Steps []struct {
		Color string   `json:"color"`
		Value *float64 `json:"value"`
	} `json:"steps"`
}

type validator struct {
	errs []error
	vars []string // defined variable names, in order
	ids  map[int]string
	rect []rectangle
}

type rectangle struct {
	title string
	g     GridPos
}

func (v *validator) failf(format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf(format, args...))
}

func (v *validator) dashboard(d *rawDashboard) {
	switch {
	case d.SchemaVersion == nil:
		v.failf("schemaVersion: missing")
	case *d.SchemaVersion != SchemaVersion:
		v.failf("schemaVersion: %d, want %d", *d.SchemaVersion, SchemaVersion)
	}
	if !uidPattern.MatchString(d.UID) {
		v.failf("uid: %q is not 1-40 characters of [a-zA-Z0-9_-]", d.UID)
	}
	if d.Title == "" {
		v.failf("title: empty")
	}
	v.variables(d.Templating.List)
	for i, a := range d.Annotations.List {
		v.annotation(i, a)
	}
	v.ids = map[int]string{}
	for _, p := range d.Panels {
		v.panel(p, false)
	}
}

func (v *validator) variables(list []rawVariable) {
	hasDatasource := false
	for i, vr := range list {
		where := fmt.Sprintf("templating.list[%d] (%s)", i, vr.Name)
		if !varName.MatchString(vr.Name) {
			v.failf("%s: bad variable name", where)
		}
		if slices.Contains(v.vars, vr.Name) {
			v.failf("%s: duplicate variable name", where)
		}
		if !slices.Contains(variableTypes, vr.Type) {
			v.failf("%s: unknown variable type %q", where, vr.Type)
		}
		switch vr.Type {
		case "datasource":
			if vr.Name == "datasource" && vr.Query == "prometheus" {
				hasDatasource = true
			}
		case "query":
			if vr.Datasource == nil || *vr.Datasource != Prometheus {
				v.failf("%s: datasource must be %+v, got %+v", where, Prometheus, vr.Datasource)
			}
			q := variableQueryText(vr.Query)
			if q == "" {
				v.failf("%s: empty query", where)
			}
			// A variable may only use variables defined before it.
			v.refs(where, q)
		}
		v.vars = append(v.vars, vr.Name)
	}
	if !hasDatasource {
		v.failf("templating: no datasource variable named \"datasource\" of type prometheus")
	}
}

// variableQueryText returns a query variable's query in either form Grafana
// stores it: a string or an object with a "query" field.
func variableQueryText(q any) string {
	switch q := q.(type) {
	case string:
		return q
	case map[string]any:
		s, _ := q["query"].(string)
		return s
	}
	return ""
}

func (v *validator) annotation(i int, a rawAnnotation) {
	where := fmt.Sprintf("annotations.list[%d] (%s)", i, a.Name)
	switch {
	case a.Datasource == nil:
		v.failf("%s: no datasource", where)
	case *a.Datasource == grafanaBuiltin:
	case *a.Datasource == Prometheus:
		if a.Expr == "" {
			v.failf("%s: Prometheus annotation without expr", where)
		}
		v.refs(where, a.Expr)
	default:
		v.failf("%s: datasource %+v is neither Grafana's annotations nor %s", where, *a.Datasource, DatasourceVar)
	}
}

func (v *validator) panel(p rawPanel, nested bool) {
	where := fmt.Sprintf("panel %q", p.Title)
	switch {
	case p.ID == nil:
		v.failf("%s: no id", where)
	case *p.ID <= 0:
		v.failf("%s: id %d is not positive", where, *p.ID)
	default:
		where = fmt.Sprintf("panel %q (id %d)", p.Title, *p.ID)
		if other, dup := v.ids[*p.ID]; dup {
			v.failf("%s: id already used by panel %q", where, other)
		}
		v.ids[*p.ID] = p.Title
	}
	if !slices.Contains(PanelTypes, p.Type) {
		v.failf("%s: unknown panel type %q", where, p.Type)
	}
	if p.Title == "" {
		v.failf("%s: empty title", where)
	}
	v.gridPos(where, p, nested)
	if p.Type == "row" {
		if !p.Collapsed && len(p.Panels) > 0 {
			v.failf("%s: an expanded row must not nest panels", where)
		}
		for _, c := range p.Panels {
			v.panel(c, true)
		}
		return
	}
	if p.Type == "text" {
		return
	}
	if p.Datasource == nil || *p.Datasource != Prometheus {
		v.failf("%s: datasource must be %+v, got %+v", where, Prometheus, p.Datasource)
	}
	if len(p.Targets) == 0 {
		v.failf("%s: no queries", where)
	}
	refs := map[string]bool{}
	for _, t := range p.Targets {
		tw := fmt.Sprintf("%s query %s", where, t.RefID)
		if t.RefID == "" || refs[t.RefID] {
			v.failf("%s: empty or duplicate refId", tw)
		}
		refs[t.RefID] = true
		if t.Datasource != nil && *t.Datasource != Prometheus {
			v.failf("%s: datasource must be %+v, got %+v", tw, Prometheus, *t.Datasource)
		}
		if t.Expr == "" {
			v.failf("%s: empty expr", tw)
		}
		if p.Type == "heatmap" && t.Format != "heatmap" {
			v.failf("%s: heatmap query format %q, want \"heatmap\"", tw, t.Format)
		}
		v.refs(tw, t.Expr)
	}
	if p.FieldConfig != nil {
		if th := p.FieldConfig.Defaults.Thresholds; th != nil {
			v.thresholds(where+" thresholds", th)
		}
		for _, o := range p.FieldConfig.Overrides {
			for _, prop := range o.Properties {
				if prop.ID != "thresholds" {
					continue
				}
				var th rawThresholds
				if err := json.Unmarshal(prop.Value, &th); err != nil {
					v.failf("%s override thresholds: %v", where, err)
					continue
				}
				v.thresholds(where+" override thresholds", &th)
			}
		}
	}
}

func (v *validator) gridPos(where string, p rawPanel, nested bool) {
	g := p.GridPos
	if g == nil {
		v.failf("%s: no gridPos", where)
		return
	}
	if g.W < 1 || g.W > gridWidth || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > gridWidth {
		v.failf("%s: gridPos %+v outside the %d-column grid", where, *g, gridWidth)
		return
	}
	if p.Type == "row" && (g.W != gridWidth || g.H != 1 || g.X != 0) {
		v.failf("%s: row gridPos %+v, want full width, height 1", where, *g)
	}
	if nested {
		return // positions inside a collapsed row are its own layout
	}
	for _, r := range v.rect {
		if g.X < r.g.X+r.g.W && r.g.X < g.X+g.W && g.Y < r.g.Y+r.g.H && r.g.Y < g.Y+g.H {
			v.failf("%s: gridPos %+v overlaps panel %q at %+v", where, *g, r.title, r.g)
		}
	}
	v.rect = append(v.rect, rectangle{title: p.Title, g: *g})
}

func (v *validator) thresholds(where string, th *rawThresholds) {
	if th.Mode != "absolute" && th.Mode != "percentage" {
		v.failf("%s: mode %q", where, th.Mode)
	}
	if len(th.Steps) == 0 {
		v.failf("%s: no steps", where)
		return
	}
	if th.Steps[0].Value != nil {
		v.failf("%s: the base step must have a null value", where)
	}
	for i := 1; i < len(th.Steps); i++ {
		s := th.Steps[i]
		switch {
		case s.Value == nil:
			v.failf("%s: step %d has no value", where, i)
		case i > 1 && th.Steps[i-1].Value != nil && *s.Value <= *th.Steps[i-1].Value:
			v.failf("%s: step %d value %v not above the previous", where, i, *s.Value)
		}
		if s.Color == "" {
			v.failf("%s: step %d has no colour", where, i)
		}
	}
}

// refs checks that every $variable text references is defined (earlier in
// the templating list) or one of Grafana's built-ins. $1, $2, ... are
// label_replace group references: Grafana leaves a reference to a variable
// it does not have untouched.
func (v *validator) refs(where, text string) {
	for _, m := range varRef.FindAllStringSubmatch(text, -1) {
		name := m[1] + m[2]
		if strings.Trim(name, "0123456789") == "" {
			continue // $1: a label_replace group, which Grafana leaves alone
		}
		if !slices.Contains(v.vars, name) && !slices.Contains(builtinVars, name) {
			v.failf("%s: references undefined variable $%s", where, name)
		}
	}
}
