package main

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/passes"
	"onnxopt/verify"
)

// quantizeReport is the JSON form of "onnxopt quantize".
type quantizeReport struct {
	Model       string           `json:"model"`
	Output      string           `json:"output"`
	Mode        string           `json:"mode"`
	Before      passes.Counts    `json:"before"`
	After       passes.Counts    `json:"after"`
	Calibration *calibrationJSON `json:"calibration,omitempty"`
	Quantized   []layerJSON      `json:"quantized"`
	Float       []layerJSON      `json:"float"`
	Notes       []string         `json:"notes,omitempty"`
	// Verify compares the quantized model's outputs with the float
	// model's, with no tolerance: quantization changes them on purpose.
	Verify *verify.Report `json:"verify,omitempty"`
	// Renamed maps the weights replaced by DequantizeLinear outputs to
	// those outputs.
	Renamed map[string]string `json:"renamed,omitempty"`
}

type calibrationJSON struct {
	Files   string `json:"files"`
	Samples int    `json:"samples"`
	Batches int    `json:"batches"`
}

// layerJSON is one layer of the quantized model.
type layerJSON struct {
	Node string `json:"node"`
	Op   string `json:"op"`
	// Weight is "per-channel", "per-tensor", "int4 blocks of N" or empty
	// (no quantized weight).
	Weight string `json:"weight,omitempty"`
	// Activations are the inputs read through QuantizeLinear and
	// DequantizeLinear.
	Activations []string `json:"activations,omitempty"`
}

// weightedOps are the layers listed as kept in float when they read no
// quantized input.
var weightedOps = []string{"Conv", "ConvTranspose", "Gemm", "MatMul", "Gather"}

func runQuantize(c *cli, args []string) error {
	fs := c.flags("quantize")
	out := fs.StringP("output", "o", "", "where to write the quantized model (required)")
	fs.String("mode", "", "weight (int8 weights, float activations), static (activations too, from --calibration) or int4 (MatMul and Gemm weights in int4 blocks); default static with --calibration, else weight. Flags below are those of the mode given")
	calibration := fs.StringArray("calibration", nil, "samples stacked along axis 0 as NAME=FILE or FILE (.pb TensorProto or .npy), for calibration and --verify")
	batchSize := fs.Int("batch-size", 32, "samples run at once during calibration and --verify")
	checkFlag := fs.Bool("verify", false, "compare the outputs with the float model's (error, SQNR, top-1 agreement) on the calibration samples or seeded random inputs")
	seed := fs.Uint64("seed", 1, "seed of --verify's random inputs")
	asJSON := fs.Bool("json", false, "print a JSON report instead of text")
	external := fs.Bool("external-data", false, "write tensors to a data file beside the model")
	reportFile := fs.String("report", "", reportUsage+"; compares layers on the calibration samples or seeded random inputs")

	mode := flagValue(args, "mode")
	if mode == "" {
		mode = "weight"
		if flagValue(args, "calibration") != "" {
			mode = "static"
		}
	}
	if !slices.Contains(quantizeModes, mode) {
		return usagef("--mode %s: want weight, static or int4", mode)
	}
	info, _ := passes.Lookup("quantize-" + mode)
	steps, _ := passes.Bind([]passes.Info{info}, fs)
	if err := parse(fs, args, 1, 1); err != nil {
		return otherModeFlag(err, mode)
	}
	switch {
	case *out == "":
		return usagef("-o OUT is required")
	case mode == "static" && len(*calibration) == 0:
		return usagef("--mode static needs calibration samples: --calibration FILE")
	case *batchSize < 1:
		return usagef("--batch-size must be at least 1")
	}
	path := fs.Arg(0)
	m, err := c.loadModel(path)
	if err != nil {
		return err
	}
	r := quantizeReport{Model: path, Output: *out, Mode: mode, Before: passesCounts(m)}

	env := &passes.Env{Warnf: func(format string, args ...any) {
		fmt.Fprintf(c.stderr, "onnxopt quantize: warning: "+format+"\n", args...)
	}}
	cal, check, err := readCalibration(m, path, *calibration, *batchSize, *seed, *checkFlag || *reportFile != "", *checkFlag)
	if err != nil {
		return err
	}
	env.Calibration, r.Calibration = cal.batches, cal.info
	var reference *graph.Model // the float model, for --verify and --report
	if *checkFlag || *reportFile != "" {
		if reference, err = graph.FromProto(proto.CloneOf(m.ToProto())); err != nil {
			return err
		}
	}

	bar := c.passProgress(steps[0].Pass, "calibrate")
	reports, err := passes.Run(m, steps, env, passes.Options{})
	bar.Finish()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	r.Notes, r.Renamed = reports[0].Notes, env.Renamed
	r.Quantized, r.Float = quantizedLayers(m.Graph)
	// Quantization changes the outputs on purpose: no elementwise
	// tolerance, so that the error and SQNR tell how much.
	tol := verify.Tolerance{ATol: math.Inf(1), RTol: math.Inf(1)}
	if *checkFlag {
		ref := &verify.Model{Name: path + " (float)", Graph: reference}
		cand := &verify.Model{Name: *out, Graph: m}
		opt := verify.Options{Tolerance: tol, BatchSize: *batchSize}
		if r.Verify, err = verify.Models(ref, cand, check, opt); err != nil {
			return fmt.Errorf("--verify: %w", err)
		}
	}
	if err := c.writeModel(*out, m.ToProto(), onnx.WriteOptions{ExternalData: *external}); err != nil {
		return err
	}
	r.After = passesCounts(m)
	if *reportFile != "" {
		rw := rewrite{title: commandLine("quantize", args), input: path, output: *out, before: reference, after: m, passes: reports,
			renamed: env.Renamed, cases: check, seed: *seed, batchSize: *batchSize, tolerance: tol}
		if err := writeRewriteReport(*reportFile, rw); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	printQuantize(c, &r)
	return nil
}

// quantizeModes are the values of --mode, each run by the pass
// "quantize-" + mode.
var quantizeModes = []string{"weight", "static", "int4"}

// otherModeFlag explains a parse error about an unknown flag that another
// mode's pass has.
func otherModeFlag(err error, mode string) error {
	name, ok := strings.CutPrefix(err.Error(), "unknown flag: --")
	if !ok {
		return err
	}
	name, _, _ = strings.Cut(name, "=")
	var modes []string
	for _, other := range quantizeModes {
		info, _ := passes.Lookup("quantize-" + other)
		own := pflag.NewFlagSet(other, pflag.ContinueOnError)
		info.New().Flags(own)
		if other != mode && own.Lookup(name) != nil {
			modes = append(modes, other)
		}
	}
	if len(modes) > 0 {
		return usagef("--%s applies to --mode %s", name, strings.Join(modes, " and "))
	}
	return err
}

// quantizedLayers lists the nodes that read a quantized input (a
// DequantizeLinear's output) and the layers with weights that read none.
func quantizedLayers(g *graph.Graph) (quantized, float []layerJSON) {
	for _, n := range g.Nodes {
		if n.OpType == "QuantizeLinear" || n.OpType == "DequantizeLinear" {
			continue
		}
		l := layerJSON{Node: n.Name, Op: n.OpType}
		for _, v := range n.Inputs {
			if v == nil || v.Producer == nil || v.Producer.OpType != "DequantizeLinear" {
				continue
			}
			dq := v.Producer
			switch x := dq.Inputs[0]; {
			case x.Init != nil && dq.AttrInt("block_size", 0) > 0:
				l.Weight = fmt.Sprintf("%s blocks of %d", strings.ToLower(x.ElemType().String()), dq.AttrInt("block_size", 0))
			case x.Init != nil && dq.Attr("axis") != nil && len(dq.Inputs[1].Init.GetDims()) == 1:
				l.Weight = "per-channel"
			case x.Init != nil:
				l.Weight = "per-tensor"
			case x.Producer != nil && x.Producer.OpType == "QuantizeLinear":
				l.Activations = append(l.Activations, x.Producer.Inputs[0].Name)
			}
		}
		switch {
		case l.Weight != "" || len(l.Activations) > 0:
			quantized = append(quantized, l)
		case slices.Contains(weightedOps, n.OpType):
			float = append(float, l)
		}
	}
	return quantized, float
}

func printQuantize(c *cli, r *quantizeReport) {
	fmt.Fprintf(c.stdout, "model       %s\nmode        %s\n", r.Model, r.Mode)
	if cal := r.Calibration; cal != nil {
		fmt.Fprintf(c.stdout, "calibration %s: %d samples in %d batches\n", cal.Files, cal.Samples, cal.Batches)
	}
	ratio := ""
	if r.After.Bytes > 0 {
		ratio = fmt.Sprintf(" (%.2fx smaller)", float64(r.Before.Bytes)/float64(r.After.Bytes))
	}
	fmt.Fprintf(c.stdout, "parameters  %s → %s bytes%s\n", thousands(r.Before.Bytes), thousands(r.After.Bytes), ratio)
	fmt.Fprintf(c.stdout, "\nquantized (%d)\n", len(r.Quantized))
	for _, l := range r.Quantized {
		var parts []string
		if l.Weight != "" {
			parts = append(parts, "weight "+l.Weight)
		}
		if len(l.Activations) > 0 {
			parts = append(parts, "activations "+strings.Join(l.Activations, ", "))
		}
		fmt.Fprintf(c.stdout, "  %-14s %-28s %s\n", l.Op, l.Node, strings.Join(parts, "; "))
	}
	fmt.Fprintf(c.stdout, "\nkept in float (%d)\n", len(r.Float))
	for _, l := range r.Float {
		fmt.Fprintf(c.stdout, "  %-14s %s\n", l.Op, l.Node)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(c.stdout, "note: %s\n", n)
	}
	if v := r.Verify; v != nil && len(v.Comparisons) > 0 {
		fmt.Fprintf(c.stdout, "\nagainst the float model on %s\n", v.Cases[0].Name)
		for _, o := range v.Comparisons[0].Outputs {
			m := o.Metrics
			if m.Mismatch != "" {
				fmt.Fprintf(c.stdout, "  %s: %s\n", o.Name, m.Mismatch)
				continue
			}
			fmt.Fprintf(c.stdout, "  %s: max abs error %s, SQNR %s dB", o.Name, num(m.MaxAbs), sqnr(m.SQNR))
			if m.Rows > 0 {
				fmt.Fprintf(c.stdout, ", top-1 agreement %.2f%% of %d", 100*m.Top1, m.Rows)
			}
			fmt.Fprintln(c.stdout)
		}
	}
	fmt.Fprintf(c.stdout, "wrote %s\n", r.Output)
}
