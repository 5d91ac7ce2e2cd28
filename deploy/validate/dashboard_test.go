package validate

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// dashboard is the Grafana dashboard model as far as deploy/grafana uses
// it. Decoding rejects unknown fields, so a misspelt key fails here
// rather than being dropped by Grafana. A panel's options and fieldConfig
// belong to its visualization plugin and are kept raw.
type dashboard struct {
	UID           string                    `json:"uid"`
	Title         string                    `json:"title"`
	Description   string                    `json:"description"`
	Tags          []string                  `json:"tags"`
	Timezone      string                    `json:"timezone"`
	Editable      bool                      `json:"editable"`
	GraphTooltip  int                       `json:"graphTooltip"`
	Refresh       string                    `json:"refresh"`
	SchemaVersion int                       `json:"schemaVersion"`
	Version       int                       `json:"version"`
	Time          struct{ From, To string } `json:"time"`
	Annotations   struct {
		List []json.RawMessage `json:"list"`
	} `json:"annotations"`
	Links      []json.RawMessage `json:"links"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Name       string         `json:"name"`
	Label      string         `json:"label"`
	Type       string         `json:"type"`
	Datasource *datasourceRef `json:"datasource,omitempty"`
	// Query is the plugin id for a datasource variable, an object for a
	// query variable.
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition,omitempty"`
	Current    struct {
		Text  string `json:"text"`
		Value string `json:"value"`
	} `json:"current"`
	Hide       int    `json:"hide"`
	Refresh    int    `json:"refresh"`
	IncludeAll bool   `json:"includeAll"`
	AllValue   string `json:"allValue,omitempty"`
	Multi      bool   `json:"multi"`
	Sort       int    `json:"sort,omitempty"`
}

type panel struct {
	ID          int                      `json:"id"`
	Type        string                   `json:"type"`
	Title       string                   `json:"title"`
	Description string                   `json:"description"`
	GridPos     struct{ H, W, X, Y int } `json:"gridPos"`
	Datasource  *datasourceRef           `json:"datasource,omitempty"`
	Targets     []target                 `json:"targets,omitempty"`
	FieldConfig json.RawMessage          `json:"fieldConfig,omitempty"`
	Options     json.RawMessage          `json:"options,omitempty"`
}

type target struct {
	RefID        string         `json:"refId"`
	Datasource   *datasourceRef `json:"datasource"`
	Expr         string         `json:"expr"`
	LegendFormat string         `json:"legendFormat"`
	Range        bool           `json:"range"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(deployPath("grafana", "herald.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("deploy/grafana/herald.json: %v", err)
	}
	if dec.More() {
		t.Fatal("deploy/grafana/herald.json: data after the dashboard")
	}
	return d
}

// defaultDatasource is the uid the datasource variable starts on.
func (d dashboard) defaultDatasource(t *testing.T) string {
	t.Helper()
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && v.Name == "datasource" {
			return v.Current.Value
		}
	}
	t.Fatal("dashboard has no datasource variable")
	return ""
}

// grafanaMacros stand in for what Grafana substitutes before a query
// reaches Prometheus, so that the query can be parsed as PromQL.
var grafanaMacros = strings.NewReplacer(
	"$__rate_interval", "1m",
	"$__interval", "15s",
	"$__range", "1h",
	`"$instance"`, `".*"`,
)

// selector is one series selector of a dashboard query.
type selector struct {
	panel, expr string
	metric      string
	matchers    []*labels.Matcher // without the metric name
}

// selectors parses every query of the dashboard as PromQL and returns the
// series selectors in it.
func (d dashboard) selectors(t *testing.T) []selector {
	t.Helper()
	p := parser.NewParser(parser.Options{})
	var out []selector
	// A query variable's label_values(metric, label) names a metric too.
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: definition %q is not label_values(metric, label)", v.Name, v.Definition)
			continue
		}
		out = append(out, selector{panel: "variable $" + v.Name, expr: v.Definition, metric: m[1]})
	}
	for _, pn := range d.Panels {
		for _, tg := range pn.Targets {
			expr, err := p.ParseExpr(grafanaMacros.Replace(tg.Expr))
			if err != nil {
				t.Errorf("panel %q query %s: %v", pn.Title, tg.RefID, err)
				continue
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				vs, ok := n.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				s := selector{panel: pn.Title, expr: tg.Expr, metric: vs.Name}
				for _, m := range vs.LabelMatchers {
					if m.Name != labels.MetricName {
						s.matchers = append(s.matchers, m)
					}
				}
				out = append(out, s)
				return nil
			})
		}
	}
	return out
}

// TestDashboard checks the dashboard's structure: it decodes strictly,
// panels have unique ids and fit the 24-column grid, every query parses
// as PromQL and goes to the datasource variable, and it covers what the
// issue asks a fleet dashboard to show. That the series exist is checked
// against a live worker in TestLiveWorker.
func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard has no uid or title")
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	ids := map[int]bool{}
	for _, pn := range d.Panels {
		if ids[pn.ID] {
			t.Errorf("panel id %d used twice", pn.ID)
		}
		ids[pn.ID] = true
		g := pn.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q at %+v does not fit the 24-column grid", pn.Title, g)
		}
		if pn.Type != "text" && len(pn.Targets) == 0 {
			t.Errorf("panel %q has no query", pn.Title)
		}
		refs := map[string]bool{}
		for _, tg := range pn.Targets {
			if refs[tg.RefID] {
				t.Errorf("panel %q: refId %s used twice", pn.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q query %s does not use the datasource variable", pn.Title, tg.RefID)
			}
			for _, used := range variableRef.FindAllStringSubmatch(tg.Expr, -1) {
				if !strings.HasPrefix(used[1], "__") && !vars[used[1]] {
					t.Errorf("panel %q uses $%s, which the dashboard does not define", pn.Title, used[1])
				}
			}
		}
	}
	sels := d.selectors(t)
	metrics := map[string]bool{}
	for _, s := range sels {
		metrics[s.metric] = true
	}
	// The list, each by the series that shows it.
	for what, metric := range map[string]string{
		"deliveries per second by outcome": "herald_deliveries_total",
		"progress (scan rate)":             "herald_records_scanned_total",
		"units per worker":                 "herald_units_running",
		"failover events":                  "herald_coordinator_failovers_total",
		"hand-back events":                 "herald_coordinator_handoffs_total",
		"lease deadline slack":             "herald_coordinator_lease_deadline_slack_seconds",
		"send latency":                     "herald_send_seconds_bucket",
	} {
		if !metrics[metric] {
			t.Errorf("dashboard does not show %s (%s)", what, metric)
		}
	}
}

var (
	variableRef = regexp.MustCompile(`\$\{?(\w+)`)
	labelValues = regexp.MustCompile(`^label_values\((\w+),\s*\w+\)$`)
)

// checkSelectorsExported checks each selector against a worker's scraped
// metric families: the metric must be exported (a histogram's _bucket,
// _sum and _count included) and each equality matcher on a label the
// worker sets must match a series it exports.
func checkSelectorsExported(t *testing.T, sels []selector, fams scrape) {
	t.Helper()
	// Labels Prometheus adds when it scrapes, not the worker.
	targetLabels := []string{"instance", "job", "pod", "namespace"}
	for _, s := range sels {
		series, ok := fams.series(s.metric)
		if !ok {
			t.Errorf("panel %q: %s is not exported by herald worker (query %s)", s.panel, s.metric, s.expr)
			continue
		}
		for _, m := range s.matchers {
			if slices.Contains(targetLabels, m.Name) {
				continue
			}
			found := false
			for _, lbls := range series {
				if v, has := lbls[m.Name]; has && m.Matches(v) {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("panel %q: no %s series has %s", s.panel, s.metric, m)
			}
		}
	}
	if len(sels) == 0 {
		t.Error("the dashboard selects no series")
	}
	t.Logf("%d selectors over %d metrics checked against the live worker", len(sels), len(uniqueMetrics(sels)))
}

func uniqueMetrics(sels []selector) map[string]bool {
	m := map[string]bool{}
	for _, s := range sels {
		m[s.metric] = true
	}
	return m
}
