package report

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"onnxopt/graph"
	"onnxopt/internal/atomicfile"
	"onnxopt/internal/numfmt"
	"onnxopt/passes"
	"onnxopt/runtime"
	"onnxopt/verify"
)

// DefaultRuns is how many timed runs of each model give its latency when
// Input.Runs is 0.
const DefaultRuns = 5

// MaxHistograms caps the weight histograms: a model with more layers
// shows those with the most parameters.
const MaxHistograms = 24

// MaxChartRows caps the rows of the sparsity and per-layer error charts;
// the per-layer table below the chart lists every layer.
const MaxChartRows = 80

// A Model is one of the models a report shows.
type Model struct {
	// Role heads the model's column: "before", "after", "reference",
	// "candidate".
	Role string
	// Name identifies the model, usually its path.
	Name  string
	Graph *graph.Model
}

// Input is what a command hands to Build.
type Input struct {
	// Title heads the report, e.g. "onnxopt optimize model.onnx".
	Title string
	// Before is the model the command read (verify's reference) and
	// After the one it made (verify's candidate). One of them may be
	// nil when there is a single model, as when verify checks a model
	// against expected outputs.
	Before, After *Model
	// Passes are the passes that made After from Before, if any ran.
	Passes []passes.PassReport
	// Verify compares the two models' numbers, with per-layer results
	// when it ran with verify.Options.PerLayer; nil when nothing was
	// compared.
	Verify *verify.Report
	// Inputs feed the runs that time each model in onnxopt's runtime,
	// and InputsName describes them; with no inputs, latency is not
	// measured.
	Inputs     map[string]*runtime.Tensor
	InputsName string
	// Runs is how many timed runs of each model give its median
	// latency; 0 means DefaultRuns.
	Runs int
}

// A Report holds what Build measured, ready to be written.
type Report struct {
	title      string
	models     []*measured // Before then After, those given
	passes     []passes.PassReport
	verify     *verify.Report
	inputs     string
	pairs      []*layerPair // every layer of either model
	histograms []*layerPair // those that get a histogram
	notes      []string     // layers left out, and why
}

// measured is what Build found out about one model.
type measured struct {
	*Model
	stats   graph.Stats
	flops   int64
	latency latency
	layers  []*layer
}

// latency is the time of a run of a model on the report's inputs.
type latency struct {
	runs                     int
	median, fastest, slowest time.Duration
	err                      error // why the model could not be timed
}

// Build measures the models: their parameters, non-zeros, bytes and
// FLOPs, the weights of each layer, and their latency in onnxopt's
// runtime on in.Inputs. The models take turns, run by run, so that a
// machine that slows down mid-way slows both alike. A model that cannot
// run gets no latency and the report says why; Build fails only on bad
// input.
func Build(in Input) (*Report, error) {
	r := &Report{title: in.Title, passes: in.Passes, verify: in.Verify, inputs: in.InputsName}
	for _, m := range []*Model{in.Before, in.After} {
		if m == nil {
			continue
		}
		if m.Graph == nil {
			return nil, fmt.Errorf("report: model %q (%s) has no graph", m.Name, m.Role)
		}
		r.models = append(r.models, &measured{Model: m, stats: m.Graph.Stats(), flops: m.Graph.Graph.FLOPs(), layers: layersOf(m.Graph)})
	}
	if len(r.models) == 0 {
		return nil, errors.New("report: no model to report on")
	}
	if in.Inputs != nil {
		runs := in.Runs
		if runs <= 0 {
			runs = DefaultRuns
		}
		timeModels(r.models, in.Inputs, runs)
	}

	var before, after []*layer
	if in.Before != nil {
		before = r.models[0].layers
	}
	if in.After != nil {
		after = r.models[len(r.models)-1].layers
	}
	pairs := pairLayers(before, after)
	shown := map[*layer]bool{}
	for _, p := range largest(pairs, MaxHistograms) {
		for _, l := range []*layer{p.before, p.after} {
			if l != nil {
				shown[l] = true
			}
		}
	}
	// Only the layers that get a histogram keep their values, so that
	// a large model's weights are not all held twice.
	failed := map[*layer]bool{}
	for _, m := range r.models {
		for _, l := range m.layers {
			if err := l.load(m.Graph, shown[l]); err != nil {
				failed[l] = true
				r.notes = append(r.notes, fmt.Sprintf("%s: node %q (%s): weights not shown: %v", m.Role, l.node.Name, l.op, err))
			}
		}
	}
	for _, p := range pairs {
		if failed[p.before] {
			p.before = nil
		}
		if failed[p.after] {
			p.after = nil
		}
		if p.before == nil && p.after == nil {
			continue
		}
		r.pairs = append(r.pairs, p)
		if shown[p.before] || shown[p.after] {
			r.histograms = append(r.histograms, p)
		}
	}
	return r, nil
}

// timeModels times runs runs of each model after one untimed run that
// warms caches up and allocates.
func timeModels(models []*measured, inputs map[string]*runtime.Tensor, runs int) {
	plans := make([]*runtime.Plan, len(models))
	times := make([][]time.Duration, len(models))
	for i, m := range models {
		plan, err := runtime.Compile(m.Graph.Graph)
		if err == nil {
			_, err = plan.Run(inputs)
		}
		if err != nil {
			m.latency.err = err
			continue
		}
		plans[i] = plan
	}
	for range runs {
		for i, m := range models {
			if plans[i] == nil || m.latency.err != nil {
				continue
			}
			start := time.Now()
			if _, err := plans[i].Run(inputs); err != nil {
				m.latency.err = err
				continue
			}
			times[i] = append(times[i], time.Since(start))
		}
	}
	for i, m := range models {
		if m.latency.err != nil || len(times[i]) == 0 {
			continue
		}
		t := times[i]
		slices.Sort(t)
		m.latency = latency{runs: len(t), median: median(t), fastest: t[0], slowest: t[len(t)-1]}
	}
}

func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// Write writes the report as one HTML file that needs nothing else: its
// style is inline and its charts are PNG images in data URLs.
func (r *Report) Write(w io.Writer) error {
	p, err := r.page()
	if err != nil {
		return err
	}
	return pageTemplate.Execute(w, p)
}

// WriteFile writes the report to path through a temporary file in the
// same folder, renamed into place once complete (atomicfile.Write).
func (r *Report) WriteFile(path string) error {
	return atomicfile.Write(path, func(w *bufio.Writer) error {
		if err := r.Write(w); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
}

// scaled writes n with an SI prefix and three significant digits.
func scaled(n float64, unit string) string {
	for _, p := range []struct {
		factor float64
		prefix string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if math.Abs(n) >= p.factor {
			return strconv.FormatFloat(n/p.factor, 'g', 3, 64) + " " + p.prefix + unit
		}
	}
	return strconv.FormatFloat(n, 'g', 3, 64) + " " + unit
}

func milliseconds(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'g', 3, 64) + " ms"
}

// change says how far after is from before, in percent.
func change(before, after float64) string {
	switch {
	case before == after:
		return "unchanged"
	case before == 0:
		return ""
	}
	pct := 100 * (after - before) / before
	s := strconv.FormatFloat(pct, 'f', 1, 64)
	if pct > 0 {
		s = "+" + s
	}
	return strings.Replace(s, "-", "−", 1) + "%"
}

// delta writes "after" when nothing changed, else "before → after".
func delta(before, after int64) string {
	if before == after {
		return numfmt.Thousands(after)
	}
	return numfmt.Thousands(before) + " → " + numfmt.Thousands(after)
}

func percent(f float64) string {
	return strconv.FormatFloat(100*f, 'f', 1, 64) + "%"
}

// sqnr writes an SQNR in words where it is infinite.
func sqnr(x float64) string {
	switch {
	case math.IsInf(x, 1):
		return "identical"
	case math.IsInf(x, -1):
		return "no signal"
	}
	return numfmt.SQNR(x) + " dB"
}
