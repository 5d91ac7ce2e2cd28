package main

import (
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// eventColors marks each kind of event on the chart.
var eventColors = map[string]color.RGBA{
	// An outage of the endpoint or of Kafka: the event's Worker names which.
	"down": {R: 0x8b, G: 0x00, B: 0x00, A: 0xff},
	"up":   {R: 0x00, G: 0x64, B: 0x00, A: 0xff},

	"kill":    {R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	"stop":    {R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	"cont":    {R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	"rejoin":  {R: 0xe3, G: 0x77, B: 0xc2, A: 0xff},
	"restart": {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	"join":    {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	"term":    {R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	"claimed": {R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
	"cut":     {R: 0x17, G: 0x17, B: 0x17, A: 0xff},
	"restore": {R: 0x17, G: 0xbe, B: 0xcf, A: 0xff},
}

var eventOrder = []string{"kill", "stop", "claimed", "cont", "rejoin", "term", "restart", "join", "cut", "restore", "down", "up"}

// chart draws the endpoint's first deliveries per second against seconds
// since the trigger, with a dashed vertical line at each event, and saves
// it to path (.svg or .png).
func chart(path string, res Result) error {
	if res.Series == nil || len(res.Series.Counts) == 0 {
		return nil
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: %d subscribers, %d workers, %.0f msgs/s", res.Scenario, res.Subscribers, res.Workers, res.MsgsPerS)
	p.X.Label.Text = "seconds since trigger"
	p.Y.Label.Text = "delivered per second (distinct, at the endpoint)"
	p.Add(plotter.NewGrid())

	pts := make(plotter.XYs, 0, len(res.Series.Counts)+2)
	if res.Series.StartS > 0 {
		// From zero at the trigger, so the start-up delay shows.
		pts = append(pts, plotter.XY{X: 0, Y: 0})
	}
	var peak float64
	for i, c := range res.Series.Counts {
		pts = append(pts, plotter.XY{X: res.Series.StartS + float64(i), Y: float64(c)})
		peak = max(peak, float64(c))
	}
	// The last second is a step too: it ends one second after it starts.
	last := len(res.Series.Counts) - 1
	pts = append(pts, plotter.XY{X: res.Series.StartS + float64(last+1), Y: float64(res.Series.Counts[last])})
	top := peak * 1.12 // event lines and labels end here; the legend sits above
	line, err := plotter.NewLine(pts)
	if err != nil {
		return fmt.Errorf("loadtest: chart: %w", err)
	}
	line.StepStyle = plotter.PostStep
	line.Color = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	line.Width = vg.Points(1.2)
	p.Add(line)
	p.Legend.Add("delivered/s", line)
	p.Legend.Top = true

	seen := map[string]bool{}
	var labels plotter.XYLabels
	mark := func(at float64, kind, label string) error {
		v, err := plotter.NewLine(plotter.XYs{{X: at, Y: 0}, {X: at, Y: top}})
		if err != nil {
			return fmt.Errorf("loadtest: chart: %w", err)
		}
		v.Color = eventColors[kind]
		v.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		if kind == "claimed" {
			v.Dashes = []vg.Length{vg.Points(1), vg.Points(2)}
		}
		p.Add(v)
		seen[kind] = true
		labels.XYs = append(labels.XYs, plotter.XY{X: at, Y: top})
		labels.Labels = append(labels.Labels, label)
		return nil
	}
	for _, e := range res.Events {
		if _, ok := eventColors[e.Kind]; !ok {
			continue
		}
		if err := mark(e.AtS, e.Kind, e.Kind+" "+e.Worker); err != nil {
			return err
		}
		if e.FailoverS != nil {
			// Where the survivors had claimed all the victim's work.
			if err := mark(e.AtS+*e.FailoverS, "claimed", fmt.Sprintf("claimed %.1fs", *e.FailoverS)); err != nil {
				return err
			}
		}
	}
	for _, k := range eventOrder {
		if seen[k] {
			p.Legend.Add(k, legendSwatch(k))
		}
	}
	if len(labels.Labels) > 0 {
		l, err := plotter.NewLabels(labels)
		if err != nil {
			return fmt.Errorf("loadtest: chart: %w", err)
		}
		for i := range l.TextStyle {
			l.TextStyle[i].Rotation = 1.5708 // upright along the line
			l.TextStyle[i].XAlign = draw.XRight
			l.TextStyle[i].YAlign = draw.YBottom
			l.TextStyle[i].Font.Size = vg.Points(7)
		}
		p.Add(l)
	}
	p.Y.Min, p.Y.Max = 0, peak*1.35
	p.X.Tick.Marker, p.Y.Tick.Marker = wholeTicks{}, wholeTicks{}
	if err := p.Save(9*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return fmt.Errorf("loadtest: chart %s: %w", path, err)
	}
	return nil
}

// legendSwatch is the legend's sample of an event kind's line.
func legendSwatch(kind string) plot.Thumbnailer {
	l, _ := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 0}}) // two finite points never fail
	l.Color = eventColors[kind]
	l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	if kind == "claimed" {
		l.Dashes = []vg.Length{vg.Points(1), vg.Points(2)}
	}
	return l
}

// wholeTicks labels an axis in whole numbers: neither messages per second
// nor the seconds of a run that lasts minutes have decimals worth showing.
type wholeTicks struct{}

func (wholeTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', 0, 64)
		}
	}
	return ts
}

// drawCharts saves res's chart as SVG and PNG in dir and records the SVG's
// name in res.
func drawCharts(dir string, res *Result) error {
	if res.Series == nil {
		return nil
	}
	for _, ext := range []string{".svg", ".png"} {
		if err := chart(filepath.Join(dir, res.Scenario+ext), *res); err != nil {
			return err
		}
	}
	res.Chart = res.Scenario + ".svg"
	return nil
}

// replot draws the charts of dir/results.json again, with this version's
// drawing: figures do not need a new run to get a better picture.
func replot(dir string) error {
	f, err := os.Open(filepath.Join(dir, "results.json"))
	if err != nil {
		return fmt.Errorf("loadtest: replot: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	for dec.More() {
		var r Result
		if err := dec.Decode(&r); err != nil {
			return fmt.Errorf("loadtest: replot: %w", err)
		}
		if err := drawCharts(dir, &r); err != nil {
			return err
		}
	}
	return nil
}
