// Package dashboard builds kmt's Grafana dashboards from Go code and checks
// dashboard JSON against the Grafana schema version it declares.
//
// The committed files under grafana/dashboards/ are generated from this
// package (`go generate ./grafana/...`); a test fails when they differ from
// what the code produces, so a panel cannot silently drift from the metric
// names it is built on.
package dashboard

// SchemaVersion is the Grafana dashboard schema version the generated
// dashboards declare (Grafana 10.4 / 11.x) and Validate checks against.
const SchemaVersion = 39

// DatasourceVar is the dashboard variable every Prometheus query references,
// so the dashboard works with whatever Prometheus datasource a Grafana has.
const DatasourceVar = "${datasource}"

// Dashboard is the subset of Grafana's dashboard JSON model kmt uses.
type Dashboard struct {
	Annotations   Annotations `json:"annotations"`
	Description   string      `json:"description,omitempty"`
	Editable      bool        `json:"editable"`
	GraphTooltip  int         `json:"graphTooltip"`
	Links         []Link      `json:"links"`
	Panels        []Panel     `json:"panels"`
	Refresh       string      `json:"refresh"`
	SchemaVersion int         `json:"schemaVersion"`
	Tags          []string    `json:"tags"`
	Templating    Templating  `json:"templating"`
	Time          TimeRange   `json:"time"`
	Timepicker    Timepicker  `json:"timepicker"`
	Timezone      string      `json:"timezone"`
	Title         string      `json:"title"`
	UID           string      `json:"uid"`
	Version       int         `json:"version"`
}

// Link is a dashboard link shown in the top bar.
type Link struct {
	Title       string   `json:"title"`
	Type        string   `json:"type"`
	Icon        string   `json:"icon"`
	Tooltip     string   `json:"tooltip"`
	Tags        []string `json:"tags"`
	AsDropdown  bool     `json:"asDropdown"`
	TargetBlank bool     `json:"targetBlank"`
	IncludeVars bool     `json:"includeVars"`
	KeepTime    bool     `json:"keepTime"`
}

// Annotations holds the dashboard's annotation queries.
type Annotations struct {
	List []Annotation `json:"list"`
}

// Annotation is one annotation query: Grafana's own annotations (by
// dashboard or by tags) or a Prometheus expression.
type Annotation struct {
	BuiltIn    int               `json:"builtIn,omitempty"`
	Datasource Datasource        `json:"datasource"`
	Enable     bool              `json:"enable"`
	Hide       bool              `json:"hide"`
	IconColor  string            `json:"iconColor"`
	Name       string            `json:"name"`
	Type       string            `json:"type,omitempty"`
	Target     *AnnotationTarget `json:"target,omitempty"`
	// Prometheus annotation fields.
	Expr            string `json:"expr,omitempty"`
	Step            string `json:"step,omitempty"`
	TitleFormat     string `json:"titleFormat,omitempty"`
	TextFormat      string `json:"textFormat,omitempty"`
	TagKeys         string `json:"tagKeys,omitempty"`
	UseValueForTime bool   `json:"useValueForTime,omitempty"`
}

// AnnotationTarget selects Grafana-stored annotations.
type AnnotationTarget struct {
	Limit    int      `json:"limit"`
	MatchAny bool     `json:"matchAny"`
	Tags     []string `json:"tags"`
	Type     string   `json:"type"`
}

// Datasource references a datasource by type and uid (here always through
// a dashboard variable, or Grafana's built-in annotation store).
type Datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Prometheus is the datasource reference every kmt query uses.
var Prometheus = Datasource{Type: "prometheus", UID: DatasourceVar}

// grafanaBuiltin is Grafana's own annotation store.
var grafanaBuiltin = Datasource{Type: "grafana", UID: "-- Grafana --"}

// Templating holds the dashboard variables.
type Templating struct {
	List []Variable `json:"list"`
}

// Variable is a dashboard template variable.
type Variable struct {
	AllValue    string         `json:"allValue,omitempty"`
	Current     map[string]any `json:"current"`
	Datasource  *Datasource    `json:"datasource,omitempty"`
	Definition  string         `json:"definition,omitempty"`
	Description string         `json:"description,omitempty"`
	Hide        int            `json:"hide"`
	IncludeAll  bool           `json:"includeAll"`
	Label       string         `json:"label"`
	Multi       bool           `json:"multi"`
	Name        string         `json:"name"`
	Options     []any          `json:"options"`
	Query       any            `json:"query"`
	Refresh     int            `json:"refresh"`
	Regex       string         `json:"regex"`
	Sort        int            `json:"sort,omitempty"`
	Type        string         `json:"type"`
}

// VariableQuery is the object form of a Prometheus variable query.
type VariableQuery struct {
	Query string `json:"query"`
	RefID string `json:"refId"`
}

// TimeRange is the dashboard's default time range.
type TimeRange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Timepicker configures the refresh choices.
type Timepicker struct {
	RefreshIntervals []string `json:"refresh_intervals"`
}

// GridPos places a panel on Grafana's 24-column grid.
type GridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

// Panel is one dashboard panel (or a row).
type Panel struct {
	Collapsed   *bool          `json:"collapsed,omitempty"`
	Datasource  *Datasource    `json:"datasource,omitempty"`
	Description string         `json:"description,omitempty"`
	FieldConfig *FieldConfig   `json:"fieldConfig,omitempty"`
	GridPos     GridPos        `json:"gridPos"`
	ID          int            `json:"id"`
	Options     map[string]any `json:"options,omitempty"`
	// Panels are a row's nested panels (collapsed rows); a row always
	// carries the list, empty when expanded, as Grafana's schema requires.
	Panels          *[]Panel         `json:"panels,omitempty"`
	Targets         []Target         `json:"targets,omitempty"`
	Title           string           `json:"title"`
	Transformations []Transformation `json:"transformations,omitempty"`
	Type            string           `json:"type"`
}

// Target is one Prometheus query of a panel.
type Target struct {
	Datasource   Datasource `json:"datasource"`
	EditorMode   string     `json:"editorMode"`
	Expr         string     `json:"expr"`
	Format       string     `json:"format,omitempty"`
	Instant      bool       `json:"instant"`
	LegendFormat string     `json:"legendFormat"`
	Range        bool       `json:"range"`
	RefID        string     `json:"refId"`
}

// FieldConfig holds the field defaults and overrides of a panel.
type FieldConfig struct {
	Defaults  FieldDefaults `json:"defaults"`
	Overrides []Override    `json:"overrides"`
}

// FieldDefaults are the display defaults of every field of a panel.
type FieldDefaults struct {
	Color      map[string]any `json:"color,omitempty"`
	Custom     map[string]any `json:"custom,omitempty"`
	Decimals   *int           `json:"decimals,omitempty"`
	Mappings   []any          `json:"mappings"`
	Min        *float64       `json:"min,omitempty"`
	NoValue    string         `json:"noValue,omitempty"`
	Thresholds Thresholds     `json:"thresholds"`
	Unit       string         `json:"unit,omitempty"`
}

// Thresholds colour values: the first step has a nil value (the base).
type Thresholds struct {
	Mode  string `json:"mode"`
	Steps []Step `json:"steps"`
}

// Step is one threshold step.
type Step struct {
	Color string   `json:"color"`
	Value *float64 `json:"value"`
}

// Override changes field properties for the fields a matcher selects.
type Override struct {
	Matcher    Matcher    `json:"matcher"`
	Properties []Property `json:"properties"`
}

// Matcher selects fields by name or regex.
type Matcher struct {
	ID      string `json:"id"`
	Options string `json:"options"`
}

// Property is one overridden field property.
type Property struct {
	ID    string `json:"id"`
	Value any    `json:"value"`
}

// Transformation is a panel data transformation.
type Transformation struct {
	ID      string         `json:"id"`
	Options map[string]any `json:"options"`
}
