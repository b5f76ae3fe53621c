package main

import (
	"fmt"
	"math"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/passes"
	"onnxopt/verify"
)

// pruneReport is the JSON form of "onnxopt prune".
type pruneReport struct {
	Model       string           `json:"model"`
	Output      string           `json:"output"`
	Method      string           `json:"method"`
	Calibration *calibrationJSON `json:"calibration,omitempty"`
	// Weights describes every prunable weight after pruning, Before the
	// same weights before.
	Weights []passes.WeightReport `json:"weights"`
	Before  []passes.WeightReport `json:"weights_before"`
	Total   pruneTotal            `json:"total"`
	Zeroed  int                   `json:"zeroed"`
	Notes   []string              `json:"notes,omitempty"`
	// FileBytes are the sizes of the model file before and after: the
	// same but for rounding of the encoding, since pruned weights are
	// stored dense.
	FileBytes [2]int64 `json:"file_bytes"`
	// Verify compares the pruned model's outputs with the original's,
	// with no tolerance unless --min-top1 sets one: pruning changes them
	// on purpose.
	Verify *verify.Report `json:"verify,omitempty"`
}

// pruneTotal sums the prunable weights.
type pruneTotal struct {
	Params        int64 `json:"params"`
	NonZeroBefore int64 `json:"nonzero_before"`
	NonZero       int64 `json:"nonzero"`
	Bytes         int64 `json:"bytes"`
}

func runPrune(c *cli, args []string) error {
	fs := c.flags("prune")
	out := fs.StringP("output", "o", "", "where to write the pruned model (required)")
	fs.String("method", "magnitude", "how weights are chosen: "+strings.Join(pruneMethods(), ", ")+"; flags below are those of the method given")
	calibration := fs.StringArray("calibration", nil, "samples stacked along axis 0 as NAME=FILE or FILE (.pb TensorProto or .npy), for gradients, --reconstruct and --verify")
	batchSize := fs.Int("batch-size", 64, "samples run at once")
	checkFlag := fs.Bool("verify", false, "compare the outputs with the original model's (error, SQNR, top-1 agreement) on the calibration samples or seeded random inputs")
	seed := fs.Uint64("seed", 1, "seed of the random choice (--method random) and of --verify's random inputs")
	backendName := fs.String("backend", "ours", "where --verify runs the pruned model: ours, ort (ONNX Runtime) or both")
	minTop1 := fs.Float64("min-top1", 0, "with --verify, fail when fewer rows than this fraction keep the original's top-1 class")
	asJSON := fs.Bool("json", false, "print a JSON report instead of text")
	external := fs.Bool("external-data", false, "write tensors to a data file beside the model")
	reportFile := fs.String("report", "", reportUsage+"; compares layers on the calibration samples or seeded random inputs")

	method := flagValue(args, "method")
	if method == "" {
		method = "magnitude"
	}
	info, ok := passes.Lookup("prune-" + method)
	if !ok {
		return usagef("--method %s: want one of %s", method, strings.Join(pruneMethods(), ", "))
	}
	steps, shared := passes.Bind([]passes.Info{info}, fs)
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	if err := shared.Apply(); err != nil {
		return usagef("%v", err)
	}
	backend, err := verify.ParseBackend(*backendName)
	switch {
	case err != nil:
		return usagef("--backend: %v", err)
	case *out == "":
		return usagef("-o OUT is required")
	case *batchSize < 1:
		return usagef("--batch-size must be at least 1")
	case info.Needs&passes.NeedsCalibration != 0 && len(*calibration) == 0:
		return usagef("--method %s needs calibration samples: --calibration FILE", method)
	case reconstructs(fs) && len(*calibration) == 0:
		return usagef("--reconstruct needs calibration samples: --calibration FILE")
	case *minTop1 < 0 || *minTop1 > 1:
		return usagef("--min-top1 must be in [0, 1]")
	}
	path := fs.Arg(0)
	m, err := c.loadModel(path)
	if err != nil {
		return err
	}
	r := pruneReport{Model: path, Output: *out, Method: method}
	if r.Before, err = passes.PruneReport(m); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}

	env := &passes.Env{Warnf: func(format string, args ...any) {
		fmt.Fprintf(c.stderr, "onnxopt prune: warning: "+format+"\n", args...)
	}}
	cal, check, err := readCalibration(m, path, *calibration, *batchSize, *seed, *checkFlag || *reportFile != "", *checkFlag)
	if err != nil {
		return err
	}
	env.Calibration, r.Calibration = cal.batches, cal.info
	var reference *graph.Model // the model as read, for --verify and --report
	if *checkFlag || *reportFile != "" {
		if reference, err = graph.FromProto(proto.CloneOf(m.ToProto())); err != nil {
			return err
		}
	}

	bar := c.passProgress(steps[0].Pass, method)
	reports, err := passes.Run(m, steps, env, passes.Options{})
	bar.Finish()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	r.Zeroed, r.Notes = reports[0].Changes, reports[0].Notes
	if r.Weights, err = passes.PruneReport(m); err != nil {
		return err
	}
	r.Total = pruneTotals(r.Before, r.Weights)
	if err := c.writeModel(*out, m.ToProto(), onnx.WriteOptions{ExternalData: *external}); err != nil {
		return err
	}
	r.FileBytes = [2]int64{fileSize(path), fileSize(*out)}
	// Pruning changes the outputs on purpose: no elementwise tolerance,
	// so that the error and SQNR tell how much.
	tol := verify.Tolerance{ATol: math.Inf(1), RTol: math.Inf(1), MinTop1: *minTop1}
	if *reportFile != "" {
		rw := rewrite{title: commandLine("prune", args), input: path, output: *out, before: reference, after: m, passes: reports,
			renamed: env.Renamed, cases: check, seed: *seed, batchSize: *batchSize, tolerance: tol}
		if err := writeRewriteReport(*reportFile, rw); err != nil {
			return err
		}
	}
	if *checkFlag {
		ref := &verify.Model{Name: path, Graph: reference}
		cand := &verify.Model{Name: *out, Graph: m, Path: *out}
		if r.Verify, err = verify.Models(ref, cand, check, verify.Options{Tolerance: tol, Backend: backend, BatchSize: *batchSize}); err != nil {
			return fmt.Errorf("--verify: %w", err)
		}
	}
	if *asJSON {
		if err := c.printJSON(r); err != nil {
			return err
		}
	} else {
		printPrune(c, &r)
	}
	if r.Verify != nil && !r.Verify.Pass {
		return fmt.Errorf("%w: %s", errCheckFailed, failure(r.Verify))
	}
	return nil
}

// pruneMethods lists the methods "onnxopt prune" offers: the passes named
// prune-METHOD.
func pruneMethods() []string {
	var methods []string
	for _, p := range passes.Table() {
		if m, ok := strings.CutPrefix(p.Name, "prune-"); ok {
			methods = append(methods, m)
		}
	}
	return methods
}

// reconstructs reports whether the method's --reconstruct is set.
func reconstructs(fs *pflag.FlagSet) bool {
	on, err := fs.GetBool("reconstruct")
	return err == nil && on
}

// pruneTotals sums the weights; before and after list the same weights
// unless pruning changed their shapes (structured pruning).
func pruneTotals(before, after []passes.WeightReport) pruneTotal {
	var t pruneTotal
	for _, w := range before {
		t.NonZeroBefore += w.NonZero
	}
	for _, w := range after {
		t.Params += w.Params
		t.NonZero += w.NonZero
		t.Bytes += w.Bytes
	}
	return t
}

// fileSize is the size of the file at path, -1 when it cannot be read.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return st.Size()
}

func printPrune(c *cli, r *pruneReport) {
	fmt.Fprintf(c.stdout, "model       %s\nmethod      %s\n", r.Model, r.Method)
	if cal := r.Calibration; cal != nil {
		fmt.Fprintf(c.stdout, "calibration %s: %d samples in %d batches\n", cal.Files, cal.Samples, cal.Batches)
	}
	fmt.Fprintln(c.stdout)
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "layer\top\tweight\tshape\tsparsity\tparams\tnon-zero\tbytes\t")
	for _, l := range r.Weights {
		fmt.Fprintf(w, "%s\t%s\t%s\t%v\t%.1f%%\t%s\t%s\t%s\t\n", l.Layer, l.Op, l.Name, l.Shape, 100*l.Sparsity,
			thousands(l.Params), thousands(l.NonZero), thousands(l.Bytes))
	}
	sparsity := 0.0
	if r.Total.Params > 0 {
		sparsity = 1 - float64(r.Total.NonZero)/float64(r.Total.Params)
	}
	fmt.Fprintf(w, "total\t\t\t\t%.1f%%\t%s\t%s\t%s\t\n", 100*sparsity, thousands(r.Total.Params), thousands(r.Total.NonZero), thousands(r.Total.Bytes))
	w.Flush()
	fmt.Fprintf(c.stdout, "\nzeroed %s weights (non-zero %s → %s)\n", thousands(int64(r.Zeroed)), thousands(r.Total.NonZeroBefore), thousands(r.Total.NonZero))
	var before int64
	for _, l := range r.Before {
		before += l.Bytes
	}
	if r.Total.Bytes == before {
		fmt.Fprintf(c.stdout, "pruned weights are stored dense: the file is %s bytes (was %s); the zeros pay off only in a runtime with sparse kernels, or when the file is compressed\n",
			thousands(r.FileBytes[1]), thousands(r.FileBytes[0]))
	} else {
		fmt.Fprintf(c.stdout, "weights %s → %s bytes; file %s → %s bytes\n", thousands(before), thousands(r.Total.Bytes), thousands(r.FileBytes[0]), thousands(r.FileBytes[1]))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(c.stdout, "note: %s\n", n)
	}
	if v := r.Verify; v != nil {
		for _, cmp := range v.Comparisons {
			fmt.Fprintf(c.stdout, "\n%s vs %s on %s\n", cmp.Reference, cmp.Candidate, v.Cases[0].Name)
			for _, o := range cmp.Outputs {
				m := o.Metrics
				if m.Mismatch != "" {
					fmt.Fprintf(c.stdout, "  %s: %s\n", o.Name, m.Mismatch)
					continue
				}
				fmt.Fprintf(c.stdout, "  %s: max abs error %s, cosine %s, SQNR %s dB", o.Name, num(m.MaxAbs), cosine(m.Cosine), sqnr(m.SQNR))
				if m.Rows > 0 {
					fmt.Fprintf(c.stdout, ", top-1 agreement %.2f%% of %d", 100*m.Top1, m.Rows)
				}
				fmt.Fprintf(c.stdout, " %s\n", passText(o.Pass))
			}
		}
	}
	fmt.Fprintf(c.stdout, "wrote %s\n", r.Output)
}
