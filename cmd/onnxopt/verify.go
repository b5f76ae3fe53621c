package main

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"onnxopt/internal/numfmt"
	"onnxopt/runtime"
	"onnxopt/verify"
)

func runVerify(c *cli, args []string) error {
	fs := c.flags("verify")
	seed := fs.Uint64("seed", 1, "seed of the random inputs (the default input)")
	valueRange := fs.String("range", "0,1", "random inputs are uniform in LO,HI")
	dims := fs.StringArray("dim", nil, "a dynamic dimension of the random inputs as NAME=VALUE (default 1)")
	inputs := fs.StringArray("input", nil, "an input as NAME=FILE (.pb TensorProto or .npy); FILE alone for a model with one input")
	testData := fs.String("test-data", "", "inputs from a test_data_set_N folder, or a folder of them; with one model, also the expected outputs")
	calibration := fs.StringArray("calibration", nil, "a batch of samples along axis 0 as NAME=FILE or FILE, checked sample by sample")
	batchSize := fs.Int("batch-size", 0, "with --calibration, run at most this many samples at once (0: the whole batch)")
	atol := fs.Float64("atol", verify.DefaultATol, "absolute tolerance of every element (inf: no elementwise check)")
	rtol := fs.Float64("rtol", verify.DefaultRTol, "relative tolerance of every element")
	minCosine := fs.Float64("min-cosine", 0, "least cosine similarity of each output (0: no check)")
	minTop1 := fs.Float64("min-top1", 0, "least top-1 agreement of [N, C] outputs, as a fraction (0: no check)")
	backendName := fs.String("backend", "ours", "where the candidate runs: ours, ort (ONNX Runtime) or both")
	perLayer := fs.Bool("per-layer", false, "also compare the intermediate values both models compute")
	nameMap := fs.String("name-map", "", `JSON {"old": "new"} pairing renamed values, or an "onnxopt optimize --json" report`)
	asJSON := fs.Bool("json", false, "print the full JSON report instead of text")
	reportFile := fs.String("report", "", reportUsage+"; compares layers as --per-layer does when there are two models")
	if err := parse(fs, args, 1, -1); err != nil {
		return err
	}
	if fs.NArg() > 2 {
		return usagef("want REFERENCE and CANDIDATE, or one MODEL; got %d arguments", fs.NArg())
	}
	backend, err := verify.ParseBackend(*backendName)
	if err != nil {
		return usagef("--backend: %v", err)
	}
	sources := 0
	for _, given := range []bool{len(*inputs) > 0, *testData != "", len(*calibration) > 0} {
		if given {
			sources++
		}
	}
	switch {
	case sources > 1:
		return usagef("give inputs one way: --input, --test-data or --calibration")
	case sources > 0 && (fs.Changed("seed") || fs.Changed("range") || fs.Changed("dim")):
		return usagef("--seed, --range and --dim shape random inputs; they do not apply to inputs from files")
	case fs.NArg() == 1 && *testData == "":
		return usagef("one model is checked against expected outputs: give --test-data DIR, or a second model to compare with")
	case *atol < 0 || *rtol < 0 || math.IsNaN(*atol) || math.IsNaN(*rtol):
		return usagef("--atol and --rtol must be 0 or more")
	case *minTop1 > 1 || *minCosine > 1:
		return usagef("--min-cosine and --min-top1 are at most 1")
	case *batchSize < 0:
		return usagef("--batch-size must not be negative")
	}
	opt := verify.Options{
		Tolerance: verify.Tolerance{ATol: *atol, RTol: *rtol, MinCosine: *minCosine, MinTop1: *minTop1},
		Backend:   backend,
		PerLayer:  *perLayer || *reportFile != "" && fs.NArg() == 2 && backend != verify.ORT,
		BatchSize: *batchSize,
	}
	if *nameMap != "" {
		if opt.NameMap, err = verify.ReadNameMap(*nameMap); err != nil {
			return err
		}
	}
	ref, err := verify.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	var cases []verify.Case
	switch {
	case *testData != "":
		cases, err = verify.ReadTestData(*testData, ref.Graph.Graph)
	case len(*inputs) > 0:
		var feeds map[string]*runtime.Tensor
		if feeds, err = readModelFeeds(ref, *inputs); err == nil {
			cases = []verify.Case{{Name: strings.Join(*inputs, " "), Inputs: feeds}}
		}
	case len(*calibration) > 0:
		var feeds map[string]*runtime.Tensor
		if feeds, err = readModelFeeds(ref, *calibration); err == nil {
			var batch verify.Case
			batch, err = verify.Batch(filesOf(*calibration), feeds)
			cases = []verify.Case{batch}
		}
	default:
		cases, err = randomCase(ref, *seed, *valueRange, *dims)
	}
	if err != nil {
		return err
	}

	bar := c.newProgress(0, "verify")
	opt.Progress = bar.Step
	var r *verify.Report
	var cand *verify.Model
	if fs.NArg() == 1 {
		r, err = verify.Expected(ref, cases, opt)
	} else if cand, err = verify.Load(fs.Arg(1)); err == nil {
		r, err = verify.Models(ref, cand, cases, opt)
	}
	bar.Finish()
	if err != nil {
		return err
	}
	if *reportFile != "" {
		if err := writeVerifyReport(*reportFile, commandLine("verify", args), ref, cand, cases, r); err != nil {
			return err
		}
	}
	if *asJSON {
		if err := c.printJSON(r); err != nil {
			return err
		}
	} else {
		printVerify(c, r)
	}
	if !r.Pass {
		return fmt.Errorf("%w: %s", errCheckFailed, failure(r))
	}
	return nil
}

// readModelFeeds reads NAME=FILE specs for the inputs of m, as "onnxopt
// run" does.
func readModelFeeds(m *verify.Model, specs []string) (map[string]*runtime.Tensor, error) {
	plan, err := runtime.Compile(m.Graph.Graph)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Name, err)
	}
	return readFeeds(plan, specs)
}

// filesOf names a case by the base names of the files its specs read.
func filesOf(specs []string) string {
	names := make([]string, len(specs))
	for i, spec := range specs {
		_, file, ok := strings.Cut(spec, "=")
		if !ok {
			file = spec
		}
		names[i] = filepath.Base(file)
	}
	return strings.Join(names, " ")
}

func randomCase(m *verify.Model, seed uint64, valueRange string, dimSpecs []string) ([]verify.Case, error) {
	loText, hiText, ok := strings.Cut(valueRange, ",")
	lo, errLo := strconv.ParseFloat(strings.TrimSpace(loText), 64)
	hi, errHi := strconv.ParseFloat(strings.TrimSpace(hiText), 64)
	if !ok || errLo != nil || errHi != nil || !(lo < hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return nil, usagef("--range %s: want LO,HI with finite LO < HI", valueRange)
	}
	dims := map[string]int64{}
	for _, spec := range dimSpecs {
		name, value, ok := strings.Cut(spec, "=")
		n, err := strconv.ParseInt(value, 10, 64)
		if !ok || name == "" || err != nil || n < 1 {
			return nil, usagef("--dim %s: want NAME=VALUE with VALUE at least 1", spec)
		}
		dims[name] = n
	}
	feeds, err := runtime.RandomInputs(m.Graph.Graph, seed, lo, hi, dims)
	if err != nil {
		return nil, fmt.Errorf("%s: random inputs: %w", m.Name, err)
	}
	return []verify.Case{{Name: fmt.Sprintf("random in [%g, %g), seed %d", lo, hi, seed), Inputs: feeds}}, nil
}

// failure says, on one line, what failed first.
func failure(r *verify.Report) string {
	for _, cmp := range r.Comparisons {
		for _, o := range cmp.Outputs {
			if o.Pass {
				continue
			}
			msg := fmt.Sprintf("%s vs %s: output %q is outside the tolerance", cmp.Reference, cmp.Candidate, o.Name)
			switch m := o.Metrics; {
			case m.Mismatch != "":
				msg = fmt.Sprintf("%s vs %s: output %q: %s", cmp.Reference, cmp.Candidate, o.Name, m.Mismatch)
			default:
				msg += fmt.Sprintf(" (max abs error %s, cosine %s, SQNR %s dB", num(m.MaxAbs), cosine(m.Cosine), sqnr(m.SQNR))
				if m.Rows > 0 {
					msg += fmt.Sprintf(", top-1 %.2f%%", 100*m.Top1)
				}
				msg += ")"
			}
			if l := cmp.Layers; l != nil && l.FirstOutside >= 0 {
				first := l.Values[l.FirstOutside]
				msg += fmt.Sprintf("; first layer outside it: %q (node %q, %s)", first.Value, first.Node, first.Op)
			}
			return msg
		}
	}
	return "outside the tolerance"
}

func printVerify(c *cli, r *verify.Report) {
	fmt.Fprintf(c.stdout, "reference  %s\ncandidate  %s\n", r.Reference, r.Candidate)
	var cases []string
	for _, cs := range r.Cases {
		cases = append(cases, cs.String())
	}
	fmt.Fprintf(c.stdout, "inputs     %s\n", strings.Join(cases, ", "))
	tol := fmt.Sprintf("atol %g, rtol %g", r.Tolerance.ATol, r.Tolerance.RTol)
	if r.Tolerance.MinCosine > 0 {
		tol += fmt.Sprintf(", min cosine %g", r.Tolerance.MinCosine)
	}
	if r.Tolerance.MinTop1 > 0 {
		tol += fmt.Sprintf(", min top-1 %g", r.Tolerance.MinTop1)
	}
	fmt.Fprintf(c.stdout, "tolerance  %s\n", tol)

	for _, cmp := range r.Comparisons {
		fmt.Fprintf(c.stdout, "\n%s vs %s\n", cmp.Reference, cmp.Candidate)
		w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "  output\tmax abs\tmean abs\tmax rel\tcosine\tSQNR dB\ttop-1\tresult")
		for _, o := range cmp.Outputs {
			m := o.Metrics
			if m.Mismatch != "" {
				fmt.Fprintf(w, "  %s\t%s\t\t\t\t\t\tFAIL\n", o.Name, m.Mismatch)
				continue
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", o.Name, num(m.MaxAbs), num(m.MeanAbs), num(m.MaxRel),
				cosine(m.Cosine), sqnr(m.SQNR), top1(m), passText(o.Pass))
		}
		w.Flush()
		for _, o := range cmp.Outputs {
			if o.Worst == nil {
				continue
			}
			m := o.Worst.Metrics
			fmt.Fprintf(c.stdout, "  %s: %d of %d samples outside the tolerance; worst is sample %d of %s: max abs %s, cosine %s, SQNR %s dB\n",
				o.Name, o.SamplesOutside, o.Samples, o.Worst.Index, o.Worst.Case, num(m.MaxAbs), cosine(m.Cosine), sqnr(m.SQNR))
		}
		if cmp.Layers != nil {
			printLayers(c, cmp.Layers)
		}
	}
	fmt.Fprintf(c.stdout, "\n%s\n", passText(r.Pass))
}

func printLayers(c *cli, l *verify.Layers) {
	if len(l.Values) == 0 {
		fmt.Fprintf(c.stdout, "\n  per layer: the models share no value names (--name-map pairs renamed ones)\n")
		return
	}
	fmt.Fprintf(c.stdout, "\n  per layer, in topological order (! outside the tolerance):\n")
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "   \tvalue\top\tmax abs\tmean abs\tcosine\tSQNR dB\t")
	for i, v := range l.Values {
		mark, note := "", ""
		if !v.Pass {
			mark = "!"
		}
		if i == l.FirstOutside {
			note = "← first outside the tolerance"
		}
		name := v.Value
		if v.Candidate != "" {
			name += " → " + v.Candidate
		}
		m := v.Metrics
		if m.Mismatch != "" {
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t\t\t\t\n", mark, name, v.Op, m.Mismatch)
			continue
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", mark, name, v.Op, num(m.MaxAbs), num(m.MeanAbs), cosine(m.Cosine), sqnr(m.SQNR), note)
	}
	w.Flush()
	if len(l.Unpaired) > 0 {
		fmt.Fprintf(c.stdout, "  %d reference values have no counterpart in the candidate (--name-map pairs renamed ones)\n", len(l.Unpaired))
	}
	if len(l.Worst) == 0 {
		fmt.Fprintln(c.stdout, "  every layer compared is identical")
		return
	}
	fmt.Fprintf(c.stdout, "\n  worst %d by SQNR:\n", len(l.Worst))
	w = tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	for _, i := range l.Worst {
		v := l.Values[i]
		fmt.Fprintf(w, "    %s\t%s\t%s dB\n", v.Value, v.Op, sqnr(v.Metrics.SQNR))
	}
	w.Flush()
}

// num, cosine and sqnr are numfmt's formats, which the HTML report
// shares.
func num(x float64) string    { return numfmt.Metric(x) }
func cosine(x float64) string { return numfmt.Cosine(x) }
func sqnr(x float64) string   { return numfmt.SQNR(x) }

func top1(m verify.Metrics) string {
	if m.Rows == 0 {
		return "-"
	}
	return strconv.FormatFloat(100*m.Top1, 'f', 2, 64) + "%"
}

func passText(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAIL"
}
