package dashboard

import (
	"fmt"
	"strings"
)

// gridWidth is the number of columns of Grafana's layout grid.
const gridWidth = 24

// nonZero is the threshold above which a loss-like value turns red: any
// value that is not exactly zero.
const nonZero = 1e-6

// layout places panels left to right on the grid, starting a new line when
// a panel does not fit, and numbers them in order.
type layout struct {
	x, y, lineH int
	nextID      int
	panels      []Panel
}

// row ends the current line and adds an (expanded) row header.
func (l *layout) row(title string) {
	l.newline()
	collapsed := false
	l.nextID++
	l.panels = append(l.panels, Panel{
		Collapsed: &collapsed,
		Panels:    &[]Panel{},
		GridPos:   GridPos{H: 1, W: gridWidth, X: 0, Y: l.y},
		ID:        l.nextID,
		Title:     title,
		Type:      "row",
	})
	l.y++
}

// add places p with width w and height h.
func (l *layout) add(w, h int, p Panel) {
	if w < 1 || w > gridWidth || h < 1 {
		panic(fmt.Sprintf("dashboard: panel %q: bad size %dx%d", p.Title, w, h))
	}
	if l.x+w > gridWidth {
		l.newline()
	}
	l.nextID++
	p.ID = l.nextID
	p.GridPos = GridPos{H: h, W: w, X: l.x, Y: l.y}
	l.panels = append(l.panels, p)
	l.x += w
	l.lineH = max(l.lineH, h)
}

func (l *layout) newline() {
	if l.x == 0 {
		return
	}
	l.y += l.lineH
	l.x, l.lineH = 0, 0
}

// query is a range query drawn over time. A legend ending in " {{region}}"
// becomes "...{{in_region}}", with in_region (" " + region) added to the
// series that have a region label: "sent kmt-0 source" on Kubernetes,
// "sent kmt-0" with no trailing space on kmt local, which has no region
// label (Grafana renders a missing label as nothing).
func query(expr, legend string) Target {
	if l, ok := strings.CutSuffix(legend, " {{region}}"); ok {
		expr = `label_replace(` + expr + `, "in_region", " $1", "region", "(.+)")`
		legend = l + "{{in_region}}"
	}
	return Target{Datasource: Prometheus, EditorMode: "code", Expr: expr, LegendFormat: legend, Range: true}
}

// instant is an instant query (stat panels and tables).
func instant(expr, legend string) Target {
	return Target{Datasource: Prometheus, EditorMode: "code", Expr: expr, LegendFormat: legend, Instant: true}
}

// table is an instant query returning a table frame.
func table(expr string) Target {
	t := instant(expr, "__auto")
	t.Format = "table"
	return t
}

// withRefIDs names a panel's targets A, B, C... in order.
func withRefIDs(ts []Target) []Target {
	out := make([]Target, len(ts))
	for i, t := range ts {
		t.RefID = string(rune('A' + i))
		out[i] = t
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// steps builds threshold steps from a base colour and (value, colour) pairs.
func steps(base string, more ...any) Thresholds {
	th := Thresholds{Mode: "absolute", Steps: []Step{{Color: base}}}
	for i := 0; i+1 < len(more); i += 2 {
		th.Steps = append(th.Steps, Step{Color: more[i+1].(string), Value: ptr(toFloat(more[i]))})
	}
	return th
}

func toFloat(v any) float64 {
	switch v := v.(type) {
	case int:
		return float64(v)
	case float64:
		return v
	}
	panic(fmt.Sprintf("dashboard: threshold value %v (%T) is not a number", v, v))
}

// redWhenNonZero is green at exactly zero and red above.
func redWhenNonZero() Thresholds { return steps("green", nonZero, "red") }

// timeseriesOpts tunes a time-series panel.
type timeseriesOpts struct {
	unit       string
	thresholds *Thresholds // nil: no colouring by value
	logScale   bool
	stack      bool
	overrides  []Override
	min        *float64
}

func timeseries(title, desc string, o timeseriesOpts, targets ...Target) Panel {
	custom := map[string]any{
		"axisBorderShow":    false,
		"axisCenteredZero":  false,
		"axisColorMode":     "text",
		"axisLabel":         "",
		"axisPlacement":     "auto",
		"barAlignment":      0,
		"drawStyle":         "line",
		"fillOpacity":       10,
		"gradientMode":      "none",
		"hideFrom":          map[string]any{"legend": false, "tooltip": false, "viz": false},
		"insertNulls":       false,
		"lineInterpolation": "linear",
		"lineWidth":         1,
		"pointSize":         4,
		"scaleDistribution": map[string]any{"type": "linear"},
		"showPoints":        "never",
		"spanNulls":         false,
		"stacking":          map[string]any{"group": "A", "mode": "none"},
		"thresholdsStyle":   map[string]any{"mode": "off"},
	}
	color := map[string]any{"mode": "palette-classic"}
	th := steps("green")
	if o.thresholds != nil {
		th = *o.thresholds
		// Colour each line by its value: green at zero, red when non-zero.
		color = map[string]any{"mode": "thresholds"}
		custom["gradientMode"] = "scheme"
		custom["lineWidth"] = 2
		custom["fillOpacity"] = 0
	}
	if o.logScale {
		custom["scaleDistribution"] = map[string]any{"type": "log", "log": 10}
	}
	if o.stack {
		custom["stacking"] = map[string]any{"group": "A", "mode": "normal"}
	}
	minV := o.min
	if minV == nil && !o.logScale {
		minV = ptr(0.0)
	}
	return Panel{
		Datasource:  &Prometheus,
		Description: desc,
		FieldConfig: &FieldConfig{
			Defaults: FieldDefaults{
				Color: color, Custom: custom, Mappings: []any{}, Min: minV,
				Thresholds: th, Unit: o.unit,
			},
			Overrides: nonNil(o.overrides),
		},
		Options: map[string]any{
			"legend":  map[string]any{"calcs": []string{"lastNotNull", "max"}, "displayMode": "table", "placement": "bottom", "showLegend": true},
			"tooltip": map[string]any{"mode": "multi", "sort": "desc"},
		},
		Targets: withRefIDs(targets),
		Title:   title,
		Type:    "timeseries",
	}
}

func nonNil(o []Override) []Override {
	if o == nil {
		return []Override{}
	}
	return o
}

// stat is a single-value panel coloured by thresholds.
func stat(title, desc, unit string, decimals *int, th Thresholds, targets ...Target) Panel {
	return Panel{
		Datasource:  &Prometheus,
		Description: desc,
		FieldConfig: &FieldConfig{
			Defaults: FieldDefaults{
				Color: map[string]any{"mode": "thresholds"}, Decimals: decimals,
				Mappings: []any{}, Thresholds: th, Unit: unit,
			},
			Overrides: []Override{},
		},
		Options: map[string]any{
			"colorMode":              "background",
			"graphMode":              "none",
			"justifyMode":            "auto",
			"orientation":            "auto",
			"reduceOptions":          map[string]any{"calcs": []string{"lastNotNull"}, "fields": "", "values": false},
			"showPercentChange":      false,
			"percentChangeColorMode": "standard",
			"textMode":               "auto",
			"wideLayout":             true,
		},
		Targets: withRefIDs(targets),
		Title:   title,
		Type:    "stat",
	}
}

// heatmap draws a Prometheus histogram's buckets over time.
func heatmap(title, desc, unit string, t Target) Panel {
	t.Format = "heatmap"
	return Panel{
		Datasource:  &Prometheus,
		Description: desc,
		FieldConfig: &FieldConfig{
			Defaults: FieldDefaults{
				Custom: map[string]any{
					"hideFrom":          map[string]any{"legend": false, "tooltip": false, "viz": false},
					"scaleDistribution": map[string]any{"type": "linear"},
				},
				Mappings: []any{}, Thresholds: steps("green"),
			},
			Overrides: []Override{},
		},
		Options: map[string]any{
			"calculate":    false,
			"cellGap":      1,
			"color":        map[string]any{"exponent": 0.5, "fill": "dark-orange", "mode": "scheme", "reverse": false, "scale": "exponential", "scheme": "Oranges", "steps": 64},
			"exemplars":    map[string]any{"color": "rgba(255,0,255,0.7)"},
			"filterValues": map[string]any{"le": 1e-9},
			"legend":       map[string]any{"show": true},
			"rowsFrame":    map[string]any{"layout": "auto"},
			"showValue":    "auto",
			"tooltip":      map[string]any{"mode": "single", "showColorScale": false, "yHistogram": false},
			"yAxis":        map[string]any{"axisPlacement": "left", "reverse": false, "unit": unit},
		},
		Targets: withRefIDs([]Target{t}),
		Title:   title,
		Type:    "heatmap",
	}
}

// totalsTable is a table of instant queries joined on their labels; the
// columns named in red are coloured red when non-zero.
func totalsTable(title, desc string, columns []string, red map[string]bool, targets ...Target) Panel {
	ts := withRefIDs(targets)
	rename := map[string]any{}
	for i, t := range ts {
		rename["Value #"+t.RefID] = columns[i]
	}
	var overrides []Override
	for _, c := range columns {
		if !red[c] {
			continue
		}
		overrides = append(overrides, Override{
			Matcher: Matcher{ID: "byName", Options: c},
			Properties: []Property{
				{ID: "thresholds", Value: redWhenNonZero()},
				{ID: "custom.cellOptions", Value: map[string]any{"type": "color-background", "mode": "basic"}},
			},
		})
	}
	return Panel{
		Datasource:  &Prometheus,
		Description: desc,
		FieldConfig: &FieldConfig{
			Defaults: FieldDefaults{
				Color:      map[string]any{"mode": "thresholds"},
				Custom:     map[string]any{"align": "auto", "cellOptions": map[string]any{"type": "auto"}, "inspect": false},
				Decimals:   ptr(0),
				Mappings:   []any{},
				Thresholds: steps("green"),
				Unit:       "short",
			},
			Overrides: nonNil(overrides),
		},
		Options: map[string]any{
			"cellHeight": "sm",
			"frameIndex": 0,
			"footer":     map[string]any{"countRows": false, "fields": "", "reducer": []string{"sum"}, "show": true},
			"showHeader": true,
			"sortBy":     []any{map[string]any{"desc": true, "displayName": columns[0]}},
		},
		Targets: ts,
		Title:   title,
		Transformations: []Transformation{
			{ID: "merge", Options: map[string]any{}},
			{ID: "organize", Options: map[string]any{
				"excludeByName": map[string]any{"Time": true},
				"renameByName":  rename,
			}},
		},
		Type: "table",
	}
}

// queryVar is a multi-value Prometheus label_values variable with "All".
func queryVar(name, label, desc, query string) Variable {
	return Variable{
		AllValue:    ".*",
		Current:     map[string]any{"selected": true, "text": []string{"All"}, "value": []string{"$__all"}},
		Datasource:  &Prometheus,
		Definition:  query,
		Description: desc,
		IncludeAll:  true,
		Label:       label,
		Multi:       true,
		Name:        name,
		Options:     []any{},
		Query:       VariableQuery{Query: query, RefID: "PrometheusVariableQueryEditor-VariableQuery"},
		Refresh:     2, // on time range change
		Sort:        1,
		Type:        "query",
	}
}
