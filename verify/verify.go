package verify

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"onnxopt/graph"
	"onnxopt/runtime"
)

// The default tolerance of "onnxopt verify", the same as the per-pass
// check of "onnxopt optimize --verify": tight enough that a 1% change of
// one weight of the digits CNN fails it, loose enough for float32 sums
// taken in another order.
const (
	DefaultATol = 1e-5
	DefaultRTol = 1e-4
)

// A Model is a model to verify.
type Model struct {
	// Name identifies the model in the report, usually its path.
	Name  string
	Graph *graph.Model
	// Path is the model's file, which ONNX Runtime opens so that it finds
	// external data beside it; it must hold the same model as Graph.
	// When empty, ONNX Runtime gets Graph serialized.
	Path string
}

// Load reads and checks the model at path.
func Load(path string) (*Model, error) {
	m, err := graph.Load(path)
	if err != nil {
		return nil, err
	}
	if err := m.Verify(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Model{Name: path, Graph: m, Path: path}, nil
}

// Options configure a verification.
type Options struct {
	// Tolerance decides pass or fail; its zero value demands equality.
	Tolerance Tolerance
	// Backend is where the candidate runs; "" means Ours.
	Backend Backend
	// PerLayer also compares the intermediate values that reference and
	// candidate share, by name or through NameMap. It needs the
	// candidate in onnxopt's runtime (Backend Ours or Both).
	PerLayer bool
	// NameMap pairs reference value names with the candidate's names
	// for the same numbers (passes.Env.Renamed, ReadNameMap). Renames
	// are followed in a chain.
	NameMap map[string]string
	// BatchSize, when above 0, caps the samples of a batched case run
	// at once; 0 runs a whole batch at once.
	BatchSize int
	// Progress, when set, is called after each run with the runs done
	// and the runs in all.
	Progress func(done, total int)
}

// A Report is the result of a verification.
type Report struct {
	Reference string     `json:"reference"`
	Candidate string     `json:"candidate"`
	Backend   Backend    `json:"backend"`
	Tolerance Tolerance  `json:"tolerance"`
	Cases     []CaseInfo `json:"cases"`
	// Comparisons pair runs: the reference or the expected outputs with
	// the candidate in each backend, and with Both the candidate in
	// onnxopt's runtime with the candidate in ONNX Runtime.
	Comparisons []Comparison `json:"comparisons"`
	// Pass is true when every output of every comparison is within the
	// tolerance. Per-layer results do not count: they explain a failure.
	Pass bool `json:"pass"`
}

// CaseInfo describes a case in the report.
type CaseInfo struct {
	Name    string `json:"name"`
	Samples int    `json:"samples,omitempty"`
}

// String is the case's name, with its number of samples when it is a
// batch of them.
func (c CaseInfo) String() string {
	if c.Samples > 0 {
		return fmt.Sprintf("%s (%d samples)", c.Name, c.Samples)
	}
	return c.Name
}

// A Comparison is the result of comparing two runs on every case.
type Comparison struct {
	// Reference and Candidate label the runs: "reference (ours)",
	// "candidate (ort)", "expected".
	Reference string         `json:"reference"`
	Candidate string         `json:"candidate"`
	Outputs   []OutputResult `json:"outputs"`
	Layers    *Layers        `json:"layers,omitempty"`
	Pass      bool           `json:"pass"`
}

// An OutputResult measures one graph output over every case.
type OutputResult struct {
	Name string `json:"name"`
	// Candidate is the candidate's name for the output when it differs.
	Candidate string  `json:"candidate,omitempty"`
	Metrics   Metrics `json:"metrics"`
	// Samples counts the samples of batched cases checked one by one,
	// SamplesOutside those outside the tolerance, and Worst is the one
	// with the lowest SQNR (then the largest error).
	Samples        int     `json:"samples,omitempty"`
	SamplesOutside int     `json:"samples_outside_tolerance,omitempty"`
	Worst          *Sample `json:"worst_sample,omitempty"`
	Pass           bool    `json:"pass"`
}

// A Sample is one sample of a batched case.
type Sample struct {
	Case    string  `json:"case"`
	Index   int     `json:"index"` // along axis 0 of the case's batch
	Metrics Metrics `json:"metrics"`
}

// Layers is the per-layer comparison.
type Layers struct {
	// Values are the reference's intermediate values that the candidate
	// also computes, in the reference's topological order.
	Values []Layer `json:"values"`
	// FirstOutside is the index in Values of the first value outside
	// the tolerance (ATol, RTol, MinCosine), or -1.
	FirstOutside int `json:"first_outside"`
	// Worst indexes up to ten values that differ at all, lowest SQNR
	// first.
	Worst []int `json:"worst_by_sqnr"`
	// Unpaired lists the reference's values that the candidate lacks.
	Unpaired []string `json:"unpaired,omitempty"`
}

// A Layer is one intermediate value compared.
type Layer struct {
	Value string `json:"value"`
	// Candidate is the candidate's name for it when it differs.
	Candidate string  `json:"candidate,omitempty"`
	Node      string  `json:"node"`
	Op        string  `json:"op"`
	Metrics   Metrics `json:"metrics"`
	// Pass is false for values outside the tolerance; values that could
	// not be compared (Metrics.Mismatch) pass.
	Pass bool `json:"pass"`
}

// Models runs ref and cand on every case and compares their outputs, and
// with opt.PerLayer their shared intermediate values. The reference runs
// in onnxopt's runtime, the candidate as opt.Backend says. The error is
// for a verification that could not run; a failed one is Report.Pass
// false.
func Models(ref, cand *Model, cases []Case, opt Options) (*Report, error) {
	backend, err := opt.backend()
	if err != nil {
		return nil, err
	}
	if opt.PerLayer && !backend.usesOurs() {
		return nil, errors.New("per-layer comparison needs the candidate in onnxopt's runtime (backend ours or both): ONNX Runtime returns graph outputs only")
	}
	v := &verification{opt: opt, models: []*Model{ref, cand}}
	defer v.close()
	refOurs, err := v.add(oursTarget("reference (ours)", ref))
	if err != nil {
		return nil, err
	}
	var candOurs, candORT *target
	if backend.usesOurs() {
		if candOurs, err = v.add(oursTarget("candidate (ours)", cand)); err != nil {
			return nil, err
		}
		main, err := v.compare(refOurs, candOurs, opt.NameMap)
		if err != nil {
			return nil, err
		}
		if opt.PerLayer {
			if err := v.pairLayers(main, ref, cand); err != nil {
				return nil, err
			}
		}
	}
	if backend.usesORT() {
		if err := ORTAvailable(); err != nil {
			return nil, err
		}
		if candORT, err = v.add(ortTarget("candidate (ort)", cand)); err != nil {
			return nil, err
		}
		if _, err := v.compare(refOurs, candORT, opt.NameMap); err != nil {
			return nil, err
		}
	}
	if candOurs != nil && candORT != nil {
		if _, err := v.compare(candOurs, candORT, nil); err != nil {
			return nil, err
		}
	}
	return v.run(ref.Name, cand.Name, backend, cases)
}

// Expected runs m on every case and compares its outputs with the cases'
// expected ones (Case.Want), in the backends that opt.Backend names; with
// Both it also compares the two runtimes' outputs. Per-layer comparison
// needs two models and is refused.
func Expected(m *Model, cases []Case, opt Options) (*Report, error) {
	backend, err := opt.backend()
	if err != nil {
		return nil, err
	}
	if opt.PerLayer {
		return nil, errors.New("per-layer comparison needs two models; expected outputs hold graph outputs only")
	}
	for _, c := range cases {
		if c.Want == nil {
			return nil, fmt.Errorf("%s: no expected outputs (output_K.pb)", c.Name)
		}
	}
	v := &verification{opt: opt, models: []*Model{m}}
	defer v.close()
	want := expectedTarget(m)
	v.targets = append(v.targets, want)
	var ours, viaORT *target
	if backend.usesOurs() {
		if ours, err = v.add(oursTarget(m.Name+" (ours)", m)); err != nil {
			return nil, err
		}
		if _, err := v.compare(want, ours, nil); err != nil {
			return nil, err
		}
	}
	if backend.usesORT() {
		if err := ORTAvailable(); err != nil {
			return nil, err
		}
		if viaORT, err = v.add(ortTarget(m.Name+" (ort)", m)); err != nil {
			return nil, err
		}
		if _, err := v.compare(want, viaORT, nil); err != nil {
			return nil, err
		}
	}
	if ours != nil && viaORT != nil {
		if _, err := v.compare(ours, viaORT, nil); err != nil {
			return nil, err
		}
	}
	return v.run("expected outputs", m.Name, backend, cases)
}

func (o Options) backend() (Backend, error) {
	if o.Backend == "" {
		return Ours, nil
	}
	return ParseBackend(string(o.Backend))
}

// A verification runs its targets on every case once and feeds each
// comparison the runs it pairs.
type verification struct {
	opt     Options
	models  []*Model
	targets []*target
	comps   []*comparison
}

// A comparison accumulates the differences between two targets' runs.
type comparison struct {
	ref, cand *target
	outputs   []*outputState
	layers    []*layerState
	unpaired  []string
}

type outputState struct {
	refName, candName string
	acc               accumulator
	samples, outside  int
	worst             *Sample
}

type layerState struct {
	refName, candName string
	node              *graph.Node
	acc               accumulator
}

func (v *verification) add(t *target, err error) (*target, error) {
	if err != nil {
		return nil, err
	}
	v.targets = append(v.targets, t)
	return t, nil
}

func (v *verification) close() {
	for _, t := range v.targets {
		t.close()
	}
}

// compare pairs the outputs of ref and cand, by name through names.
func (v *verification) compare(ref, cand *target, names map[string]string) (*comparison, error) {
	c := &comparison{ref: ref, cand: cand}
	for _, name := range ref.outputs {
		candName := resolve(names, name)
		if !slices.Contains(cand.outputs, candName) {
			return nil, fmt.Errorf("%s has no output %q (it has %s)", cand.label, candName, strings.Join(cand.outputs, ", "))
		}
		c.outputs = append(c.outputs, &outputState{refName: name, candName: candName})
	}
	v.comps = append(v.comps, c)
	return c, nil
}

// pairLayers adds to c the values that nodes of ref's main graph compute
// and cand also holds, in ref's topological order.
func (v *verification) pairLayers(c *comparison, ref, cand *Model) error {
	rg, cg := ref.Graph.Graph, cand.Graph.Graph
	if err := rg.Sort(); err != nil {
		return fmt.Errorf("%s: %w", ref.Name, err)
	}
	for _, n := range rg.Nodes {
		for _, out := range n.Outputs {
			if out == nil || len(out.Uses) == 0 && !rg.IsOutput(out) {
				continue
			}
			candName := resolve(v.opt.NameMap, out.Name)
			cv := cg.Lookup(candName)
			if cv == nil || cv.Producer == nil && cv.Init == nil && !cg.IsInput(cv) {
				c.unpaired = append(c.unpaired, out.Name)
				continue
			}
			c.layers = append(c.layers, &layerState{refName: out.Name, candName: candName, node: n})
			c.ref.fetch = append(c.ref.fetch, out.Name)
			c.cand.fetch = append(c.cand.fetch, candName)
		}
	}
	return nil
}

// run runs every target on every chunk of every case and builds the
// report.
func (v *verification) run(refName, candName string, backend Backend, cases []Case) (*Report, error) {
	type plannedCase struct {
		c    *Case
		size int // samples per run; 0 for an unbatched case
	}
	var planned []plannedCase
	runs := 0
	for i := range cases {
		c := &cases[i]
		size, err := v.chunkSize(c)
		if err != nil {
			return nil, err
		}
		planned = append(planned, plannedCase{c, size})
		if size == 0 {
			runs++
		} else {
			runs += (c.Samples + size - 1) / size
		}
	}
	if len(planned) == 0 {
		return nil, errors.New("no inputs to run the models on")
	}
	done := 0
	for _, p := range planned {
		for lo := 0; ; lo += p.size {
			ch := &chunk{c: p.c, lo: 0, hi: p.c.Samples, inputs: p.c.Inputs}
			if p.size > 0 {
				ch.lo, ch.hi = lo, min(lo+p.size, p.c.Samples)
				ch.inputs = make(map[string]*runtime.Tensor, len(p.c.Inputs))
				for name, t := range p.c.Inputs {
					var err error
					if ch.inputs[name], err = t.Rows(ch.lo, ch.hi); err != nil {
						return nil, fmt.Errorf("%s: input %q: %w", p.c.Name, name, err)
					}
				}
			}
			if err := v.runChunk(ch); err != nil {
				return nil, err
			}
			done++
			if v.opt.Progress != nil {
				v.opt.Progress(done, runs)
			}
			if p.size == 0 || ch.hi == p.c.Samples {
				break
			}
		}
	}
	r := &Report{Reference: refName, Candidate: candName, Backend: backend, Tolerance: v.opt.Tolerance, Pass: true}
	for _, p := range planned {
		r.Cases = append(r.Cases, CaseInfo{Name: p.c.Name, Samples: p.c.Samples})
	}
	for _, c := range v.comps {
		res := c.result(v.opt.Tolerance)
		r.Pass = r.Pass && res.Pass
		r.Comparisons = append(r.Comparisons, res)
	}
	return r, nil
}

// chunkSize returns how many samples of c one run takes: all of them, or
// opt.BatchSize, or 1 when a model fixes its batch at 1. It is 0 for a
// case that is not a batch.
func (v *verification) chunkSize(c *Case) (int, error) {
	if c.Samples <= 0 {
		return 0, nil
	}
	for _, name := range sortedKeys(c.Inputs) {
		if t := c.Inputs[name]; t.Rank() == 0 || t.Shape[0] != c.Samples {
			return 0, fmt.Errorf("%s: input %q is the %s, not %d samples along axis 0", c.Name, name, t, c.Samples)
		}
	}
	size := c.Samples
	if v.opt.BatchSize > 0 {
		size = min(size, v.opt.BatchSize)
	}
	for _, m := range v.models {
		for _, in := range m.Graph.Graph.Inputs {
			if _, given := c.Inputs[in.Name]; !given {
				continue
			}
			shape, ok := in.Shape()
			if !ok || len(shape) == 0 || !shape[0].Known {
				continue
			}
			switch batch := int(shape[0].Value); {
			case batch == 1:
				size = 1
			case batch != c.Samples:
				return 0, fmt.Errorf("%s: input %q of %s has a fixed batch of %d; the case holds %d samples", c.Name, in.Name, m.Name, batch, c.Samples)
			}
		}
	}
	return size, nil
}

// runChunk runs every target on ch once and feeds the comparisons. The
// targets run at once: each owns its plan or session, and they only read
// the inputs.
func (v *verification) runChunk(ch *chunk) error {
	outs := make([]map[string]*runtime.Tensor, len(v.targets))
	errs := make([]error, len(v.targets))
	var wg sync.WaitGroup
	for i, t := range v.targets {
		wg.Go(func() {
			outs[i], errs[i] = t.run(ch, append(slices.Clone(t.outputs), t.fetch...))
		})
	}
	wg.Wait()
	got := make(map[*target]map[string]*runtime.Tensor, len(v.targets))
	for i, t := range v.targets {
		if errs[i] != nil {
			return errs[i]
		}
		got[t] = outs[i]
	}
	for _, c := range v.comps {
		ref, cand := got[c.ref], got[c.cand]
		for _, o := range c.outputs {
			if err := o.add(ref[o.refName], cand[o.candName], ch, v.opt.Tolerance); err != nil {
				return err
			}
		}
		for _, l := range c.layers {
			r, k := ref[l.refName], cand[l.candName]
			if why := incomparable(r, k); why != "" {
				l.acc.mismatch = why
				continue
			}
			addRange(&l.acc, r, k, 0, r.Len(), 0, v.opt.Tolerance)
		}
	}
	return nil
}

// add accumulates one chunk's values of the output, sample by sample
// when the chunk is part of a batch.
func (o *outputState) add(ref, cand *runtime.Tensor, ch *chunk, tol Tolerance) error {
	if why := incomparable(ref, cand); why != "" {
		o.acc.mismatch = why
		return nil
	}
	rowLen := classifierRow(ref)
	if ch.c.Samples <= 0 {
		addRange(&o.acc, ref, cand, 0, ref.Len(), rowLen, tol)
		return nil
	}
	count := ch.hi - ch.lo
	if ref.Rank() == 0 || ref.Shape[0] != count {
		return fmt.Errorf("%s: output %q is the %s, not %d samples along axis 0", ch.c.Name, o.refName, ref, count)
	}
	stride := ref.Len() / count
	for i := range count {
		var s accumulator
		addRange(&s, ref, cand, i*stride, (i+1)*stride, rowLen, tol)
		o.acc.merge(&s)
		m := s.metrics()
		o.samples++
		if !m.within(tol) {
			o.outside++
		}
		if o.worst == nil || worse(m, o.worst.Metrics) {
			o.worst = &Sample{Case: ch.c.Name, Index: ch.lo + i, Metrics: m}
		}
	}
	return nil
}

// worse orders samples: lower SQNR, then larger error.
func worse(a, b Metrics) bool {
	if a.SQNR != b.SQNR {
		return a.SQNR < b.SQNR
	}
	return a.MaxAbs > b.MaxAbs
}

func (c *comparison) result(tol Tolerance) Comparison {
	res := Comparison{Reference: c.ref.label, Candidate: c.cand.label, Pass: true}
	for _, o := range c.outputs {
		out := OutputResult{Name: o.refName, Metrics: o.acc.metrics(), Samples: o.samples, SamplesOutside: o.outside, Worst: o.worst}
		if o.candName != o.refName {
			out.Candidate = o.candName
		}
		out.Pass = out.Metrics.within(tol)
		res.Pass = res.Pass && out.Pass
		res.Outputs = append(res.Outputs, out)
	}
	if c.layers == nil && c.unpaired == nil {
		return res
	}
	ls := &Layers{FirstOutside: -1, Worst: []int{}, Unpaired: c.unpaired}
	layerTol := tol
	layerTol.MinTop1 = 0 // agreement of an intermediate's argmax means nothing
	for i, l := range c.layers {
		layer := Layer{Value: l.refName, Node: l.node.Name, Op: l.node.OpType, Metrics: l.acc.metrics()}
		if l.candName != l.refName {
			layer.Candidate = l.candName
		}
		layer.Pass = layer.Metrics.Mismatch != "" || layer.Metrics.within(layerTol)
		if !layer.Pass && ls.FirstOutside < 0 {
			ls.FirstOutside = i
		}
		if layer.Metrics.Mismatch == "" && !layer.Metrics.Identical() {
			ls.Worst = append(ls.Worst, i)
		}
		ls.Values = append(ls.Values, layer)
	}
	slices.SortStableFunc(ls.Worst, func(a, b int) int {
		switch ma, mb := ls.Values[a].Metrics, ls.Values[b].Metrics; {
		case worse(ma, mb):
			return -1
		case worse(mb, ma):
			return 1
		}
		return 0
	})
	if len(ls.Worst) > 10 {
		ls.Worst = ls.Worst[:10]
	}
	res.Layers = ls
	return res
}
