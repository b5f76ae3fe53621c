package passes

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"onnxopt/graph"
	"onnxopt/runtime"
)

// A Pass is one transformation of a model. A fresh value is made for each
// run (see Info.New); its fields are its options, which Flags binds to a
// flag set.
type Pass interface {
	// Flags binds the pass's options to fs. A pass without options
	// binds nothing.
	Flags(fs *pflag.FlagSet)
	// Run transforms m. It returns what it changed, for the report.
	Run(m *graph.Model, env *Env) (Result, error)
}

// Info describes a pass in the table.
type Info struct {
	Name string
	// Doc is a title line of at most about 60 characters, then a blank
	// line, then details.
	Doc string
	// Needs lists what the pass requires of its environment.
	Needs Needs
	// Lossy marks a pass that changes the model's numbers on purpose
	// (pruning, quantization): the numeric check reports its error but
	// does not fail on it.
	Lossy bool
	New   func() Pass
}

// Title is the first line of the pass's doc.
func (i Info) Title() string {
	title, _, _ := strings.Cut(i.Doc, "\n")
	return title
}

// Needs is a set of requirements a pass has of its environment.
type Needs uint

const (
	NeedsRuntime     Needs = 1 << iota // runs the model (constant folding, calibration)
	NeedsCalibration                   // needs calibration inputs (Env.Calibration)
)

// A Result says what one pass changed.
type Result struct {
	Changes int      // rewrites made: nodes removed, folded, fused, weights zeroed...
	Notes   []string // lines for the report, e.g. why a layer was left alone
}

// Env is what passes get besides the model.
type Env struct {
	// Calibration holds input batches (by graph input name) for passes
	// that need activations or gradients; nil when none was given.
	Calibration []map[string]*runtime.Tensor
	// Renamed maps a value name a pass removed to the name of the value
	// that now carries the same numbers, so that per-layer comparison
	// can pair values across the rewrite.
	Renamed map[string]string
	// Warnf reports something the user should know that is not an error.
	Warnf func(format string, args ...any)
}

// rename records that value old is now carried by value new, and points
// earlier renames to old at new too, so that every entry names a value
// that exists.
func (e *Env) rename(old, new string) {
	if e.Renamed == nil {
		e.Renamed = map[string]string{}
	}
	for k, v := range e.Renamed {
		if v == old {
			e.Renamed[k] = new
		}
	}
	e.Renamed[old] = new
}

func (e *Env) warnf(format string, args ...any) {
	if e.Warnf != nil {
		e.Warnf(format, args...)
	}
}

// Lookup returns the pass called name.
func Lookup(name string) (Info, bool) {
	for _, p := range Table() {
		if p.Name == name {
			return p, true
		}
	}
	return Info{}, false
}

// Parse turns a comma-separated list of pass names into the passes' infos.
func Parse(list string) ([]Info, error) {
	var infos []Info
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		p, ok := Lookup(name)
		if !ok {
			return nil, fmt.Errorf("unknown pass %q (see \"onnxopt passes\")", name)
		}
		infos = append(infos, p)
	}
	if len(infos) == 0 {
		return nil, errors.New("no passes named")
	}
	return infos, nil
}

// Default returns the default cleanup pipeline.
func Default() []Info {
	var infos []Info
	for _, name := range defaultPipeline() {
		p, _ := Lookup(name)
		infos = append(infos, p)
	}
	return infos
}

// Counts are what the report compares before and after a pass.
type Counts struct {
	Nodes   int   `json:"nodes"`
	Params  int64 `json:"params"`
	NonZero int64 `json:"nonzero"`
	Bytes   int64 `json:"bytes"`
	FLOPs   int64 `json:"flops"` // per sample, see graph.Graph.FLOPs
}

func countsOf(m *graph.Model) Counts {
	s := m.Stats()
	return Counts{Nodes: s.Nodes, Params: s.Params, NonZero: s.NonZero, Bytes: s.Bytes, FLOPs: m.Graph.FLOPs()}
}

// A PassReport is what one pass did.
type PassReport struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration_ns"`
	Before   Counts        `json:"before"`
	After    Counts        `json:"after"`
	Changes  int           `json:"changes"`
	Notes    []string      `json:"notes,omitempty"`
	// MaxAbsError is the largest difference between the outputs before
	// and after the pass on the check inputs, when the check ran.
	MaxAbsError *float64 `json:"max_abs_error,omitempty"`
}

// Options configure a run of passes.
type Options struct {
	// Check runs the model before and after each pass on CheckInputs
	// and compares the outputs: a pass that is not lossy fails when an
	// output differs by more than ATol + RTol·|before|.
	Check       bool
	CheckInputs map[string]*runtime.Tensor
	ATol, RTol  float64
}

// A Step is a pass with its options set, ready to run.
type Step struct {
	Info Info
	Pass Pass
}

// Steps makes a step with default options for each info.
func Steps(infos []Info) []Step {
	steps := make([]Step, len(infos))
	for i, info := range infos {
		steps[i] = Step{info, info.New()}
	}
	return steps
}

// Run runs the steps over m in order. After each, it sorts the graph,
// runs graph.Verify and, with opt.Check, compares outputs. An error names
// the pass that broke the model.
func Run(m *graph.Model, steps []Step, env *Env, opt Options) ([]PassReport, error) {
	if env == nil {
		env = &Env{}
	}
	var reference map[string]*runtime.Tensor
	if opt.Check {
		var err error
		if reference, err = runModel(m, opt.CheckInputs); err != nil {
			return nil, fmt.Errorf("running the model before any pass: %w", err)
		}
	}
	var reports []PassReport
	for _, step := range steps {
		info, p := step.Info, step.Pass
		if info.Needs&NeedsCalibration != 0 && len(env.Calibration) == 0 {
			return reports, fmt.Errorf("pass %s needs calibration data", info.Name)
		}
		r := PassReport{Name: info.Name, Before: countsOf(m)}
		start := time.Now()
		res, err := p.Run(m, env)
		r.Duration = time.Since(start)
		if err != nil {
			return reports, fmt.Errorf("pass %s: %w", info.Name, err)
		}
		if err := m.Graph.Sort(); err != nil {
			return reports, fmt.Errorf("pass %s left the graph broken: %w", info.Name, err)
		}
		if err := m.Verify(); err != nil {
			return reports, fmt.Errorf("pass %s left the graph broken: %w", info.Name, err)
		}
		r.Changes, r.Notes = res.Changes, res.Notes
		r.After = countsOf(m)
		if opt.Check {
			after, err := runModel(m, opt.CheckInputs)
			if err != nil {
				return reports, fmt.Errorf("pass %s: running the result: %w", info.Name, err)
			}
			maxAbs, err := compareOutputs(reference, after, opt.ATol, opt.RTol)
			r.MaxAbsError = &maxAbs
			if err != nil && !info.Lossy {
				return reports, fmt.Errorf("pass %s changed the model's outputs: %w", info.Name, err)
			}
			reference = after
		}
		reports = append(reports, r)
	}
	return reports, nil
}

// Bind makes a step for each info and binds the passes' options to fs. A
// flag that several passes define is bound once, for the first; Shared's
// Apply copies its parsed value to the others.
func Bind(infos []Info, fs *pflag.FlagSet) ([]Step, *Shared) {
	var steps []Step
	sh := &Shared{into: map[string][]*pflag.FlagSet{}}
	for _, info := range infos {
		p := info.New()
		own := pflag.NewFlagSet(info.Name, pflag.ContinueOnError)
		p.Flags(own)
		own.VisitAll(func(f *pflag.Flag) {
			if fs.Lookup(f.Name) == nil {
				fs.AddFlag(f)
			} else {
				sh.into[f.Name] = append(sh.into[f.Name], own)
			}
		})
		steps = append(steps, Step{info, p})
	}
	sh.from = fs
	return steps, sh
}

// Shared carries flag values to the passes that share a flag name.
type Shared struct {
	from *pflag.FlagSet
	into map[string][]*pflag.FlagSet
}

// Apply copies each shared flag's parsed value to the other passes.
func (s *Shared) Apply() error {
	for name, sets := range s.into {
		f := s.from.Lookup(name)
		if f == nil || !f.Changed {
			continue
		}
		for _, fs := range sets {
			if err := fs.Set(name, f.Value.String()); err != nil {
				return fmt.Errorf("--%s: %w", name, err)
			}
		}
	}
	return nil
}

func runModel(m *graph.Model, inputs map[string]*runtime.Tensor) (map[string]*runtime.Tensor, error) {
	plan, err := runtime.Compile(m.Graph)
	if err != nil {
		return nil, err
	}
	return plan.Run(inputs)
}

// compareOutputs returns the largest absolute difference between two runs'
// outputs, and an error naming the first output outside the tolerance.
func compareOutputs(before, after map[string]*runtime.Tensor, atol, rtol float64) (float64, error) {
	names := make([]string, 0, len(before))
	for name := range before {
		names = append(names, name)
	}
	slices.Sort(names)
	var worst float64
	var bad error
	for _, name := range names {
		b, a := before[name], after[name]
		if a == nil {
			return worst, fmt.Errorf("output %q is gone", name)
		}
		maxAbs, _, ok := runtime.Compare(a, b, rtol, atol)
		worst = max(worst, maxAbs)
		if !ok && bad == nil {
			bad = fmt.Errorf("output %q differs by up to %g (atol %g, rtol %g)", name, maxAbs, atol, rtol)
		}
	}
	return worst, bad
}
