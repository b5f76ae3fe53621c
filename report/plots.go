package report

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"onnxopt/verify"
)

// The colors of the charts, as CSS writes them; the page's legends use
// the same.
const (
	colorBefore    = "#b8bcc4" // the model read, or verify's reference
	colorAfter     = "#1f5fbf" // the model written, or verify's candidate
	colorInside    = "#3a8a4f" // a layer within the tolerance
	colorOutside   = "#c8372d" // a layer outside it
	colorIdentical = "#c9e4cf" // a layer whose values did not change
)

// chartDPI renders charts at twice the CSS pixel density, so that they
// stay sharp on high-density screens.
const chartDPI = 192

// histogramBins is the number of bins of a weight histogram: enough to
// show the gap that magnitude pruning leaves around zero.
const histogramBins = 60

// rgb parses a "#rrggbb" color of the palette above.
func rgb(hex string) color.Color {
	v, _ := strconv.ParseUint(hex[1:], 16, 32)
	return color.RGBA{R: uint8(v >> 16), G: uint8(v >> 8), B: uint8(v), A: 0xff}
}

// A chart is a rendered plot: a PNG data URL and the size, in CSS
// pixels, to show it at.
type chart struct {
	URL           template.URL
	Width, Height int
}

// newPlot makes a plot whose text is Liberation Sans, tick labels at
// tickSize points.
func newPlot(tickSize vg.Length) *plot.Plot {
	p := plot.New()
	sans := font.Font{Typeface: "Liberation", Variant: "Sans"}
	p.Title.TextStyle.Font = font.From(sans, tickSize+2)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = font.From(sans, tickSize+1)
		a.Tick.Label.Font = font.From(sans, tickSize)
		a.Tick.Length = vg.Points(4)
	}
	p.Legend.TextStyle.Font = font.From(sans, tickSize)
	return p
}

// render draws p at w×h points into a PNG data URL.
func render(p *plot.Plot, w, h vg.Length) (_ chart, err error) {
	// The plot package panics on data it cannot place; the charts give
	// it finite numbers only, and a panic left would be a bug to report,
	// not a reason to lose the rest of the report.
	defer func() {
		if e := recover(); e != nil {
			err = fmt.Errorf("drawing a chart: %v", e)
		}
	}()
	c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(chartDPI))
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return chart{}, err
	}
	// A point is 1/72 inch and a CSS pixel 1/96.
	return chart{
		URL:    template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())),
		Width:  int(math.Round(w.Points() * 96 / 72)),
		Height: int(math.Round(h.Points() * 96 / 72)),
	}, nil
}

// histogramChart draws the weights of one layer: before's (or the only
// model's) as filled bars, after's as a line over them, in the same bins.
// Exact zeros stay out of the bins, so that the spike of a pruned layer
// does not flatten the rest; the caption counts them.
func histogramChart(p *layerPair) (chart, bool, error) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, l := range []*layer{p.before, p.after} {
		if l == nil {
			continue
		}
		for _, x := range l.values {
			if binned(x) {
				lo, hi = min(lo, float64(x)), max(hi, float64(x))
			}
		}
	}
	if lo > hi {
		return chart{}, false, nil // nothing but zeros
	}
	if lo == hi {
		d := max(math.Abs(lo)/10, 1e-6)
		lo, hi = lo-d, hi+d
	}
	width := (hi - lo) / histogramBins
	bins := func(l *layer) []plotter.HistogramBin {
		bs := make([]plotter.HistogramBin, histogramBins)
		for i := range bs {
			bs[i].Min, bs[i].Max = lo+float64(i)*width, lo+float64(i+1)*width
		}
		bs[len(bs)-1].Max = hi
		for _, x := range l.values {
			if !binned(x) {
				continue
			}
			i := min(int((float64(x)-lo)/width), histogramBins-1)
			bs[i].Weight++
		}
		return bs
	}

	plt := newPlot(8)
	plt.Y.Tick.Marker = countTicks{}
	first := p.before
	if first == nil {
		first = p.after
	}
	plt.Add(&plotter.Histogram{Bins: bins(first), Width: width, FillColor: rgb(colorBefore)})
	if p.before != nil && p.after != nil {
		bs := bins(p.after)
		outline := plotter.XYs{{X: bs[0].Min, Y: 0}}
		for _, b := range bs {
			outline = append(outline, plotter.XY{X: b.Min, Y: b.Weight}, plotter.XY{X: b.Max, Y: b.Weight})
		}
		outline = append(outline, plotter.XY{X: hi, Y: 0})
		line, err := plotter.NewLine(outline)
		if err != nil {
			return chart{}, false, err
		}
		line.LineStyle = draw.LineStyle{Color: rgb(colorAfter), Width: vg.Points(1)}
		plt.Add(line)
	} else if p.after != nil {
		plt.Add(&plotter.Histogram{Bins: bins(p.after), Width: width, FillColor: rgb(colorAfter)})
	}
	c, err := render(plt, 240, 140)
	return c, true, err
}

// binned reports whether a weight has a place in a histogram: it is
// finite and not zero.
func binned(x float32) bool {
	return x != 0 && !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0)
}

// countTicks marks a count axis at round numbers, written short (2k, 1.5M)
// to fit a small chart.
type countTicks struct{}

func (countTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label == "" {
			continue
		}
		switch v := ticks[i].Value; {
		case v >= 1e6:
			ticks[i].Label = strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
		case v >= 1e3:
			ticks[i].Label = strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
		default:
			ticks[i].Label = strconv.FormatFloat(v, 'g', 3, 64)
		}
	}
	return ticks
}

// sparsityChart draws, for each layer, the fraction of its weights that
// are zero: one bar per model.
func sparsityChart(pairs []*layerPair) (chart, error) {
	bars := &hbars{thickness: 0.38}
	rows := len(pairs)
	labels := make([]plot.Tick, rows)
	for i, p := range pairs {
		y := float64(rows - 1 - i)
		labels[i] = plot.Tick{Value: y, Label: shorten(p.key, 40)}
		sides := []struct {
			l      *layer
			offset float64
			color  string
		}{{p.before, 0.2, colorBefore}, {p.after, -0.2, colorAfter}}
		if p.before == nil || p.after == nil {
			sides[0].offset, sides[1].offset = 0, 0
		}
		for _, s := range sides {
			if s.l == nil {
				continue
			}
			bars.bars = append(bars.bars, hbar{row: y + s.offset, value: 100 * s.l.sparsity(), color: rgb(s.color), label: percent(s.l.sparsity())})
		}
	}
	plt := newPlot(8)
	plt.Add(bars)
	plt.X.Min, plt.X.Max = 0, 112 // room for the labels past a full bar
	plt.X.Tick.Marker = plot.ConstantTicks{{Value: 0, Label: "0%"}, {Value: 25, Label: "25%"}, {Value: 50, Label: "50%"}, {Value: 75, Label: "75%"}, {Value: 100, Label: "100%"}}
	plt.X.Label.Text = "weights that are zero"
	plt.Y.Tick.Marker = plot.ConstantTicks(labels)
	plt.Y.Min, plt.Y.Max = -0.5, float64(rows)-0.5
	plt.Y.Padding, plt.X.Padding = 0, 0
	bars.labelStyle = plt.X.Tick.Label
	rowHeight := 22 // two bars
	if len(bars.bars) == rows {
		rowHeight = 14
	}
	return render(plt, 560, vg.Length(40+rowHeight*rows))
}

// sqnrChart draws the SQNR of every layer the per-layer comparison
// paired, in topological order: values within the tolerance in green,
// those outside it in red, identical ones as pale bars to the top of the
// scale.
func sqnrChart(values []verify.Layer) (chart, error) {
	top := math.Inf(-1)
	bottom := 0.0
	for _, v := range values {
		if s := v.Metrics.SQNR; v.Metrics.Mismatch == "" && !math.IsInf(s, 0) {
			top, bottom = max(top, s), min(bottom, s)
		}
	}
	ceiling := 100.0
	if !math.IsInf(top, -1) {
		ceiling = max(10, top*1.15)
	}
	bars := &hbars{thickness: 0.7}
	rows := len(values)
	labels := make([]plot.Tick, rows)
	for i, v := range values {
		y := float64(rows - 1 - i)
		labels[i] = plot.Tick{Value: y, Label: shorten(v.Value, 36) + " (" + v.Op + ")"}
		b := hbar{row: y}
		switch m := v.Metrics; {
		case m.Mismatch != "":
			b.label = "not compared: " + shorten(m.Mismatch, 40)
		case math.IsInf(m.SQNR, 1):
			b.value, b.color, b.label = ceiling, rgb(colorIdentical), "identical"
		case math.IsInf(m.SQNR, -1):
			b.label = "−∞ dB"
		default:
			b.value, b.label = m.SQNR, strconv.FormatFloat(m.SQNR, 'f', 1, 64)+" dB"
			b.color = rgb(colorInside)
			if !v.Pass {
				b.color = rgb(colorOutside)
			}
		}
		bars.bars = append(bars.bars, b)
	}
	plt := newPlot(8)
	plt.Add(bars)
	plt.X.Min, plt.X.Max = bottom*1.1, ceiling*1.3 // room for the labels
	plt.X.Label.Text = "SQNR (dB): higher is closer to the reference"
	plt.Y.Tick.Marker = plot.ConstantTicks(labels)
	plt.Y.Min, plt.Y.Max = -0.5, float64(rows)-0.5
	plt.Y.Padding, plt.X.Padding = 0, 0
	bars.labelStyle = plt.X.Tick.Label
	return render(plt, 600, vg.Length(40+14*rows))
}

// shorten keeps the end of a long name, which tells layers apart better
// than its start.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}

// hbars is a horizontal bar chart whose bars each have their own color
// and a label past their end.
type hbars struct {
	bars []hbar
	// thickness is a bar's height in units of the y axis, where rows
	// are 1 apart.
	thickness  float64
	labelStyle text.Style
}

type hbar struct {
	row   float64 // the bar's centre on the y axis
	value float64 // its end on the x axis; it starts at 0
	color color.Color
	label string
}

func (h *hbars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	sty := h.labelStyle
	sty.XAlign, sty.YAlign = draw.XLeft, draw.YCenter
	for _, b := range h.bars {
		x0, x1 := trX(0), trX(b.value)
		y0, y1 := trY(b.row-h.thickness/2), trY(b.row+h.thickness/2)
		if b.color != nil && b.value != 0 {
			c.FillPolygon(b.color, c.ClipPolygonXY([]vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}}))
		}
		if b.label != "" {
			c.FillText(sty, vg.Point{X: max(x0, x1) + vg.Points(3), Y: (y0 + y1) / 2}, b.label)
		}
	}
}

func (h *hbars) DataRange() (xmin, xmax, ymin, ymax float64) {
	ymin, ymax = math.Inf(1), math.Inf(-1)
	for _, b := range h.bars {
		xmin, xmax = min(xmin, b.value), max(xmax, b.value)
		ymin, ymax = min(ymin, b.row-0.5), max(ymax, b.row+0.5)
	}
	return xmin, xmax, ymin, ymax
}
