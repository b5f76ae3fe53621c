package report

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"onnxopt/internal/numfmt"
	"onnxopt/passes"
	"onnxopt/verify"
)

// The ids of the page's sections, which its navigation links to.
const (
	SectionSummary    = "summary"
	SectionPasses     = "passes"
	SectionWeights    = "weights"
	SectionSparsity   = "sparsity"
	SectionLayerError = "layer-error"
	SectionVerify     = "verify"
)

// Sections lists the ids of every section a report has, in page order.
// Each is present even when it has nothing to show, and then says why.
func Sections() []string {
	return []string{SectionSummary, SectionPasses, SectionWeights, SectionSparsity, SectionLayerError, SectionVerify}
}

// page is what the template shows: every figure already written out.
type page struct {
	Title      string
	Models     []*measured
	Two        bool // two models, so a change column and two legends
	Colors     map[string]string
	Verdict    *verdict
	Summary    []summaryRow
	Inputs     string
	Passes     []passRow
	PassTotal  *passRow
	PassNotes  []string
	Histograms []histogramPanel
	HistNote   string
	Sparsity   *chart
	SparseNote string
	Layers     *layersView
	LayersNote string
	Verify     *verifyView
	LayerNotes []string
	BeforeRole string
	AfterRole  string
	HasPasses  bool
}

type verdict struct {
	Pass bool
	Text string
}

type summaryRow struct {
	Metric string
	Values []string
	Change string
}

type passRow struct {
	Name, Time, Changes, Nodes, Params, NonZero, Bytes, FLOPs, MaxError string
}

type histogramPanel struct {
	Key, Op, Shape, Stored, Params, Zeros, NonFinite, Changed string
	Chart                                                     *chart
}

type layersView struct {
	Comparison string
	Chart      chart
	Capped     string
	First      string
	Rows       []layerRow
	Unpaired   int
}

type layerRow struct {
	Class, Value, Candidate, Op, Node, MaxAbs, MeanAbs, Cosine, SQNR, Result string
}

type verifyView struct {
	Reference, Candidate, Backend, Cases, Tolerance string
	Pass                                            bool
	Comparisons                                     []comparisonView
}

type comparisonView struct {
	Title   string
	Pass    bool
	Outputs []outputRow
	Samples []string
}

type outputRow struct {
	Class, Name, MaxAbs, MeanAbs, MaxRel, Cosine, SQNR, Top1, Result string
}

func (r *Report) page() (*page, error) {
	p := &page{
		Title:  r.title,
		Models: r.models,
		Two:    len(r.models) == 2,
		Colors: map[string]string{
			"before": colorBefore, "after": colorAfter, "inside": colorInside,
			"outside": colorOutside, "identical": colorIdentical,
		},
		Inputs:     r.inputs,
		LayerNotes: r.notes,
	}
	if p.Two {
		p.BeforeRole, p.AfterRole = r.models[0].Role, r.models[1].Role
	} else {
		p.AfterRole = r.models[0].Role
	}
	r.summary(p)
	r.passTable(p)
	if err := r.weights(p); err != nil {
		return nil, err
	}
	if err := r.layerErrors(p); err != nil {
		return nil, err
	}
	r.verification(p)
	return p, nil
}

func (r *Report) summary(p *page) {
	row := func(metric string, value func(m *measured) (string, float64)) {
		s := summaryRow{Metric: metric}
		var xs []float64
		for _, m := range r.models {
			text, x := value(m)
			s.Values = append(s.Values, text)
			xs = append(xs, x)
		}
		if len(xs) == 2 && !math.IsNaN(xs[0]) && !math.IsNaN(xs[1]) {
			s.Change = change(xs[0], xs[1])
		}
		p.Summary = append(p.Summary, s)
	}
	row("nodes", func(m *measured) (string, float64) {
		return numfmt.Thousands(int64(m.stats.Nodes)), float64(m.stats.Nodes)
	})
	row("parameters", func(m *measured) (string, float64) { return numfmt.Thousands(m.stats.Params), float64(m.stats.Params) })
	row("non-zero parameters", func(m *measured) (string, float64) {
		if m.stats.NonZero < 0 {
			return "unknown (external data not loaded)", math.NaN()
		}
		text := numfmt.Thousands(m.stats.NonZero)
		if m.stats.Params > 0 {
			text += " (" + percent(float64(m.stats.NonZero)/float64(m.stats.Params)) + ")"
		}
		return text, float64(m.stats.NonZero)
	})
	row("parameter bytes", func(m *measured) (string, float64) {
		return scaled(float64(m.stats.Bytes), "B") + " (" + numfmt.Thousands(m.stats.Bytes) + ")", float64(m.stats.Bytes)
	})
	row("FLOPs per sample", func(m *measured) (string, float64) { return scaled(float64(m.flops), "FLOPs"), float64(m.flops) })
	if p.Inputs != "" || r.models[0].latency.runs > 0 || r.models[0].latency.err != nil {
		row("latency in onnxopt's runtime", func(m *measured) (string, float64) {
			l := m.latency
			switch {
			case l.err != nil:
				return "not measured: " + l.err.Error(), math.NaN()
			case l.runs == 0:
				return "not measured", math.NaN()
			}
			return fmt.Sprintf("%s (median of %d; %s–%s)", milliseconds(l.median), l.runs, milliseconds(l.fastest), milliseconds(l.slowest)),
				float64(l.median)
		})
	}
	if v := r.verify; v != nil {
		p.Verdict = &verdict{Pass: v.Pass, Text: verdictText(v)}
	}
}

// verdictText says in one line whether the numbers held, by how much,
// and where they first departed.
func verdictText(v *verify.Report) string {
	worst := math.Inf(1)
	var first string
	for _, c := range v.Comparisons {
		for _, o := range c.Outputs {
			if o.Metrics.Mismatch == "" {
				worst = min(worst, o.Metrics.SQNR)
			}
		}
		if l := c.Layers; l != nil && l.FirstOutside >= 0 && first == "" {
			first = l.Values[l.FirstOutside].Value
		}
	}
	text := "Numeric check passed"
	if !v.Pass {
		text = "Numeric check FAILED"
	}
	text += " (atol " + numfmt.Metric(v.Tolerance.ATol) + ", rtol " + numfmt.Metric(v.Tolerance.RTol) + "): "
	if math.IsInf(worst, 1) {
		text += "the outputs are identical"
	} else {
		text += "lowest output SQNR " + sqnr(worst)
	}
	if first != "" {
		text += "; the first layer outside the tolerance is " + first
	}
	return text + "."
}

func (r *Report) passTable(p *page) {
	if len(r.passes) == 0 {
		return
	}
	p.HasPasses = true
	row := func(name, dur, changes string, a, b passes.Counts, maxErr string) passRow {
		return passRow{
			Name: name, Time: dur, Changes: changes,
			Nodes: delta(int64(a.Nodes), int64(b.Nodes)), Params: delta(a.Params, b.Params), NonZero: delta(a.NonZero, b.NonZero),
			Bytes: delta(a.Bytes, b.Bytes), FLOPs: delta(a.FLOPs, b.FLOPs), MaxError: maxErr,
		}
	}
	var total time.Duration
	for _, pr := range r.passes {
		maxErr := "–"
		if pr.MaxAbsError != nil {
			maxErr = numfmt.Metric(*pr.MaxAbsError)
		}
		total += pr.Duration
		p.Passes = append(p.Passes, row(pr.Name, milliseconds(pr.Duration), strconv.Itoa(pr.Changes), pr.Before, pr.After, maxErr))
		for _, n := range pr.Notes {
			p.PassNotes = append(p.PassNotes, pr.Name+": "+n)
		}
	}
	first, last := r.passes[0], r.passes[len(r.passes)-1]
	t := row("total", milliseconds(total), "", first.Before, last.After, "")
	p.PassTotal = &t
}

func (r *Report) weights(p *page) error {
	if len(r.pairs) == 0 {
		p.HistNote = "No layer has constant weights (Conv, ConvTranspose, Gemm, MatMul, Gather, QLinearConv, QLinearMatMul, or their QDQ forms)."
		p.SparseNote = p.HistNote
		return nil
	}
	if len(r.histograms) < len(r.pairs) {
		p.HistNote = fmt.Sprintf("The %d largest of %d layers, in graph order.", len(r.histograms), len(r.pairs))
	}
	for _, lp := range r.histograms {
		h := histogramPanel{Key: lp.key}
		var zeros, nonFinite []string
		for _, l := range []*layer{lp.before, lp.after} {
			if l == nil {
				continue
			}
			h.Op, h.Shape, h.Params = l.op, shapeText(l.shape), numfmt.Thousands(int64(l.params))
			stored := l.stored
			if l.dequantized {
				stored += ", dequantized"
			}
			if h.Stored == "" {
				h.Stored = stored
			} else if h.Stored != stored {
				h.Stored += " → " + stored
			}
			zeros = append(zeros, fmt.Sprintf("%s (%s)", numfmt.Thousands(int64(l.zeros)), percent(l.sparsity())))
			nonFinite = append(nonFinite, numfmt.Thousands(int64(l.nonFinite)))
		}
		h.Zeros = strings.Join(zeros, " → ")
		if n, largest, ok := lp.changed(); ok {
			h.Changed = "unchanged"
			if n > 0 {
				h.Changed = fmt.Sprintf("%s changed, by up to %s", numfmt.Thousands(int64(n)), numfmt.Metric(largest))
			}
		}
		if nonFinite[0] != "0" || nonFinite[len(nonFinite)-1] != "0" {
			h.NonFinite = strings.Join(nonFinite, " → ")
		}
		c, drawn, err := histogramChart(lp)
		if err != nil {
			return fmt.Errorf("histogram of %q: %w", lp.key, err)
		}
		if drawn {
			h.Chart = &c
		}
		p.Histograms = append(p.Histograms, h)
	}
	bars := largest(r.pairs, MaxChartRows)
	if len(bars) < len(r.pairs) {
		p.SparseNote = fmt.Sprintf("The %d largest of %d layers, in graph order.", len(bars), len(r.pairs))
	}
	if !slices.ContainsFunc(r.pairs, func(lp *layerPair) bool {
		return lp.before != nil && lp.before.zeros > 0 || lp.after != nil && lp.after.zeros > 0
	}) {
		p.SparseNote = fmt.Sprintf("No weight of the %d layers is zero.", len(r.pairs))
		return nil
	}
	c, err := sparsityChart(bars)
	if err != nil {
		return fmt.Errorf("sparsity chart: %w", err)
	}
	p.Sparsity = &c
	return nil
}

func shapeText(shape []int) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = strconv.Itoa(d)
	}
	return "[" + strings.Join(parts, "×") + "]"
}

func (r *Report) layerErrors(p *page) error {
	v := r.verify
	if v == nil {
		p.LayersNote = "No numeric comparison ran."
		return nil
	}
	var cmp *verify.Comparison
	for i := range v.Comparisons {
		if v.Comparisons[i].Layers != nil {
			cmp = &v.Comparisons[i]
			break
		}
	}
	switch {
	case cmp == nil:
		p.LayersNote = "The comparison ran without per-layer results: they need two models compared in onnxopt's runtime (verify --per-layer)."
		return nil
	case len(cmp.Layers.Values) == 0:
		p.LayersNote = "The models share no intermediate value names, so no layer could be paired (--name-map pairs renamed ones)."
		return nil
	}
	l := cmp.Layers
	view := &layersView{Comparison: cmp.Reference + " vs " + cmp.Candidate, Unpaired: len(l.Unpaired)}
	shown := l.Values
	if len(shown) > MaxChartRows {
		shown = shown[:MaxChartRows]
		view.Capped = fmt.Sprintf("The chart shows the first %d of %d values; the table lists them all.", MaxChartRows, len(l.Values))
	}
	c, err := sqnrChart(shown)
	if err != nil {
		return fmt.Errorf("per-layer chart: %w", err)
	}
	view.Chart = c
	if l.FirstOutside >= 0 {
		f := l.Values[l.FirstOutside]
		view.First = fmt.Sprintf("%s (node %s, %s)", f.Value, f.Node, f.Op)
	}
	for i, lv := range l.Values {
		m := lv.Metrics
		row := layerRow{Value: lv.Value, Candidate: lv.Candidate, Op: lv.Op, Node: lv.Node, Result: passText(lv.Pass)}
		switch {
		case m.Mismatch != "":
			row.MaxAbs = m.Mismatch
		default:
			row.MaxAbs, row.MeanAbs, row.Cosine, row.SQNR = numfmt.Metric(m.MaxAbs), numfmt.Metric(m.MeanAbs), numfmt.Cosine(m.Cosine), sqnr(m.SQNR)
		}
		switch {
		case !lv.Pass:
			row.Class = "outside"
		case m.Identical():
			row.Class = "identical"
		}
		if i == l.FirstOutside {
			row.Class += " first"
		}
		view.Rows = append(view.Rows, row)
	}
	p.Layers = view
	return nil
}

func (r *Report) verification(p *page) {
	v := r.verify
	if v == nil {
		return
	}
	var cases []string
	for _, c := range v.Cases {
		cases = append(cases, c.String())
	}
	tol := "atol " + numfmt.Metric(v.Tolerance.ATol) + ", rtol " + numfmt.Metric(v.Tolerance.RTol)
	if v.Tolerance.MinCosine > 0 {
		tol += ", min cosine " + numfmt.Metric(v.Tolerance.MinCosine)
	}
	if v.Tolerance.MinTop1 > 0 {
		tol += ", min top-1 " + numfmt.Metric(v.Tolerance.MinTop1)
	}
	view := &verifyView{Reference: v.Reference, Candidate: v.Candidate, Backend: string(v.Backend), Cases: strings.Join(cases, ", "), Tolerance: tol, Pass: v.Pass}
	for _, c := range v.Comparisons {
		cv := comparisonView{Title: c.Reference + " vs " + c.Candidate, Pass: c.Pass}
		for _, o := range c.Outputs {
			m := o.Metrics
			row := outputRow{Name: o.Name, Result: passText(o.Pass)}
			if !o.Pass {
				row.Class = "outside"
			}
			if o.Candidate != "" {
				row.Name += " → " + o.Candidate
			}
			if m.Mismatch != "" {
				row.MaxAbs = m.Mismatch
			} else {
				row.MaxAbs, row.MeanAbs, row.MaxRel, row.Cosine, row.SQNR = numfmt.Metric(m.MaxAbs), numfmt.Metric(m.MeanAbs), numfmt.Metric(m.MaxRel), numfmt.Cosine(m.Cosine), sqnr(m.SQNR)
				row.Top1 = "–"
				if m.Rows > 0 {
					row.Top1 = percent(m.Top1)
				}
			}
			cv.Outputs = append(cv.Outputs, row)
			if w := o.Worst; w != nil {
				cv.Samples = append(cv.Samples, fmt.Sprintf("%s: %d of %d samples outside the tolerance; the worst is sample %d of %s: max abs %s, cosine %s, SQNR %s.",
					o.Name, o.SamplesOutside, o.Samples, w.Index, w.Case, numfmt.Metric(w.Metrics.MaxAbs), numfmt.Cosine(w.Metrics.Cosine), sqnr(w.Metrics.SQNR)))
			}
		}
		view.Comparisons = append(view.Comparisons, cv)
	}
	p.Verify = view
}

func passText(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAIL"
}

var pageTemplate = template.Must(template.New("report").Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Liberation Sans", Arial, sans-serif; color: #1d2330; margin: 0; background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 24px 48px; }
header { background: #1d2330; color: #fff; padding: 14px 24px; }
header h1 { font-size: 20px; margin: 0 0 6px; font-weight: 600; word-break: break-all; }
header .models span { margin-right: 24px; }
header .models b { color: #aab4c8; font-weight: 500; margin-right: 6px; }
nav { margin-top: 8px; }
nav a { color: #cfe0ff; margin-right: 16px; text-decoration: none; }
section { background: #fff; border: 1px solid #dde1e8; border-radius: 6px; padding: 12px 20px 18px; margin-top: 16px; }
h2 { font-size: 17px; margin: 4px 0 10px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eceff3; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #c9ced8; font-weight: 600; }
tbody th { font-weight: 500; }
td.text { text-align: left; white-space: normal; }
.note { color: #5b6475; font-size: 13px; }
.verdict { padding: 8px 12px; border-radius: 4px; font-weight: 600; }
.verdict.pass { background: #e3f3e7; color: #1e5e30; }
.verdict.fail { background: #fbe4e2; color: #8a1f17; }
tr.outside td { color: #8a1f17; }
tr.first td { background: #fbe4e2; font-weight: 600; }
tr.identical td { color: #6c7486; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; vertical-align: -1px; margin: 0 4px 0 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: 12px; }
figure { margin: 0; border: 1px solid #eceff3; border-radius: 4px; padding: 6px; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { font-size: 12px; color: #39404f; }
figcaption b { word-break: break-all; }
.empty { height: 120px; display: flex; align-items: center; justify-content: center; color: #6c7486; background: #f6f7f9; }
details { margin-top: 10px; }
summary { cursor: pointer; color: #1f5fbf; }
</style>
</head>
<body>
<header>
<h1>{{.Title}}</h1>
<div class="models">{{range .Models}}<span><b>{{.Role}}</b>{{.Name}}</span>{{end}}</div>
<nav><a href="#summary">Summary</a><a href="#passes">Passes</a><a href="#weights">Weights</a><a href="#sparsity">Sparsity</a><a href="#layer-error">Per-layer error</a><a href="#verify">Verification</a></nav>
</header>
<main>

<section id="summary">
<h2>Summary</h2>
{{with .Verdict}}<p class="verdict {{if .Pass}}pass{{else}}fail{{end}}">{{.Text}} <a href="#verify">Details</a></p>{{end}}
<table>
<thead><tr><th></th>{{range .Models}}<th>{{.Role}}</th>{{end}}{{if .Two}}<th>change</th>{{end}}</tr></thead>
<tbody>
{{range .Summary}}<tr><th>{{.Metric}}</th>{{range .Values}}<td>{{.}}</td>{{end}}{{if $.Two}}<td>{{.Change}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
<p class="note">FLOPs count a multiply-add as two, with dynamic dimensions taken as 1.{{if .Inputs}} Latency is the time of one run on {{.Inputs}}, the models taking turns run by run after one untimed run each.{{end}}</p>
</section>

<section id="passes">
<h2>Passes</h2>
{{if .HasPasses}}<table>
<thead><tr><th>pass</th><th>time</th><th>changes</th><th>nodes</th><th>parameters</th><th>non-zero</th><th>bytes</th><th>FLOPs</th><th>max abs error</th></tr></thead>
<tbody>
{{range .Passes}}<tr><td>{{.Name}}</td><td>{{.Time}}</td><td>{{.Changes}}</td><td>{{.Nodes}}</td><td>{{.Params}}</td><td>{{.NonZero}}</td><td>{{.Bytes}}</td><td>{{.FLOPs}}</td><td>{{.MaxError}}</td></tr>
{{end}}{{with .PassTotal}}<tr><th>{{.Name}}</th><th>{{.Time}}</th><th></th><th>{{.Nodes}}</th><th>{{.Params}}</th><th>{{.NonZero}}</th><th>{{.Bytes}}</th><th>{{.FLOPs}}</th><th></th></tr>{{end}}
</tbody>
</table>
<p class="note">Max abs error is the largest output difference a pass made on the check inputs (optimize --verify); – when the check did not run.</p>
{{range .PassNotes}}<p class="note">{{.}}</p>{{end}}
{{else}}<p class="note">No passes ran: this report compares models as given.</p>{{end}}
</section>

<section id="weights">
<h2>Weights per layer</h2>
{{if .Histograms}}<p class="note">Histogram of each layer's weights{{if .Two}}:<span class="swatch" style="background: {{index .Colors "before"}}"></span>{{.BeforeRole}} (bars)<span class="swatch" style="background: {{index .Colors "after"}}"></span>{{.AfterRole}} (line){{end}}. Quantized weights are shown dequantized. Exact zeros are left out of the bins, so that a pruned layer's spike at zero does not flatten the rest; each caption counts them. {{.HistNote}}</p>
<div class="grid">
{{range .Histograms}}<figure>{{with .Chart}}<img src="{{.URL}}" width="{{.Width}}" height="{{.Height}}" alt="weight histogram">{{else}}<div class="empty">every weight is zero</div>{{end}}
<figcaption><b>{{.Key}}</b> {{.Op}} {{.Shape}}, {{.Params}} weights, {{.Stored}}<br>zeros {{.Zeros}}{{with .NonFinite}}; non-finite {{.}}{{end}}{{with .Changed}}; {{.}}{{end}}</figcaption></figure>
{{end}}</div>
{{else}}<p class="note">{{.HistNote}}</p>{{end}}
{{range .LayerNotes}}<p class="note">{{.}}</p>{{end}}
</section>

<section id="sparsity">
<h2>Sparsity per layer</h2>
{{with .Sparsity}}<p class="note">The share of each layer's weights that are exactly zero{{if $.Two}}:<span class="swatch" style="background: {{index $.Colors "before"}}"></span>{{$.BeforeRole}}<span class="swatch" style="background: {{index $.Colors "after"}}"></span>{{$.AfterRole}}{{end}}. {{$.SparseNote}}</p>
<img src="{{.URL}}" width="{{.Width}}" height="{{.Height}}" alt="sparsity per layer">
{{else}}<p class="note">{{.SparseNote}}</p>{{end}}
</section>

<section id="layer-error">
<h2>Per-layer error</h2>
{{with .Layers}}<p class="note">SQNR of every intermediate value both models compute ({{.Comparison}}), in topological order:<span class="swatch" style="background: {{index $.Colors "inside"}}"></span>within the tolerance<span class="swatch" style="background: {{index $.Colors "outside"}}"></span>outside it<span class="swatch" style="background: {{index $.Colors "identical"}}"></span>identical. {{.Capped}}</p>
{{if .First}}<p><b>First value outside the tolerance:</b> {{.First}}</p>{{else}}<p>Every value compared is within the tolerance.</p>{{end}}
<img src="{{.Chart.URL}}" width="{{.Chart.Width}}" height="{{.Chart.Height}}" alt="SQNR per layer">
{{if .Unpaired}}<p class="note">{{.Unpaired}} values of the reference have no counterpart in the candidate.</p>{{end}}
<details><summary>Every value ({{len .Rows}})</summary>
<table>
<thead><tr><th>value</th><th>op</th><th>node</th><th>max abs</th><th>mean abs</th><th>cosine</th><th>SQNR</th><th>result</th></tr></thead>
<tbody>
{{range .Rows}}<tr class="{{.Class}}"><td>{{.Value}}{{with .Candidate}} → {{.}}{{end}}</td><td>{{.Op}}</td><td>{{.Node}}</td><td>{{.MaxAbs}}</td><td>{{.MeanAbs}}</td><td>{{.Cosine}}</td><td>{{.SQNR}}</td><td>{{.Result}}</td></tr>
{{end}}</tbody>
</table>
</details>
{{else}}<p class="note">{{.LayersNote}}</p>{{end}}
</section>

<section id="verify">
<h2>Verification</h2>
{{with .Verify}}<table>
<tbody>
<tr><th>reference</th><td class="text">{{.Reference}}</td></tr>
<tr><th>candidate</th><td class="text">{{.Candidate}}</td></tr>
<tr><th>backend</th><td class="text">{{.Backend}}</td></tr>
<tr><th>inputs</th><td class="text">{{.Cases}}</td></tr>
<tr><th>tolerance</th><td class="text">{{.Tolerance}}</td></tr>
<tr><th>result</th><td class="text">{{if .Pass}}ok{{else}}FAIL{{end}}</td></tr>
</tbody>
</table>
{{range .Comparisons}}<h3>{{.Title}}: {{if .Pass}}ok{{else}}FAIL{{end}}</h3>
<table>
<thead><tr><th>output</th><th>max abs</th><th>mean abs</th><th>max rel</th><th>cosine</th><th>SQNR</th><th>top-1</th><th>result</th></tr></thead>
<tbody>
{{range .Outputs}}<tr class="{{.Class}}"><td>{{.Name}}</td><td>{{.MaxAbs}}</td><td>{{.MeanAbs}}</td><td>{{.MaxRel}}</td><td>{{.Cosine}}</td><td>{{.SQNR}}</td><td>{{.Top1}}</td><td>{{.Result}}</td></tr>
{{end}}</tbody>
</table>
{{range .Samples}}<p class="note">{{.}}</p>{{end}}
{{end}}{{else}}<p class="note">No numeric comparison ran.</p>{{end}}
</section>
</main>
</body>
</html>
`
