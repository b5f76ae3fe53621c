package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"onnxopt/runtime"
)

// runReport is the JSON form of "onnxopt run".
type runReport struct {
	Model   string       `json:"model"`
	Seconds float64      `json:"seconds"`
	Outputs []outputJSON `json:"outputs"`
}

type outputJSON struct {
	Name  string   `json:"name"`
	DType string   `json:"dtype"`
	Shape []int    `json:"shape"`
	Min   *float64 `json:"min,omitempty"`
	Max   *float64 `json:"max,omitempty"`
	Mean  *float64 `json:"mean,omitempty"`
	Files []string `json:"files,omitempty"`
}

func runRun(c *cli, args []string) error {
	fs := c.flags("run")
	inputs := fs.StringArray("input", nil, "an input as NAME=FILE (.pb TensorProto or .npy); FILE alone for a model with one input")
	outDir := fs.String("output-dir", "", "write output_K.pb for each output K into this folder")
	npyToo := fs.Bool("npy", false, "with --output-dir, also write output_K.npy")
	asJSON := fs.Bool("json", false, "print a JSON report instead of text")
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	if *npyToo && *outDir == "" {
		return usagef("--npy needs --output-dir")
	}
	path := fs.Arg(0)
	m, err := c.loadModel(path)
	if err != nil {
		return err
	}
	plan, err := runtime.Compile(m.Graph)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	feeds, err := readFeeds(plan, *inputs)
	if err != nil {
		return err
	}
	start := time.Now()
	outs, err := plan.Run(feeds)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	r := runReport{Model: path, Seconds: time.Since(start).Seconds()}
	if *outDir != "" {
		if err := os.MkdirAll(*outDir, 0o755); err != nil {
			return err
		}
	}
	for k, v := range m.Graph.Outputs {
		t := outs[v.Name]
		o := summarize(v.Name, t)
		if *outDir != "" {
			exts := []string{".pb"}
			if *npyToo {
				exts = append(exts, ".npy")
			}
			for _, ext := range exts {
				file := filepath.Join(*outDir, fmt.Sprintf("output_%d%s", k, ext))
				if err := runtime.WriteTensorFile(file, v.Name, t); err != nil {
					return err
				}
				o.Files = append(o.Files, file)
			}
		}
		r.Outputs = append(r.Outputs, o)
	}
	if *asJSON {
		return c.printJSON(r)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	for _, o := range r.Outputs {
		stats := ""
		if o.Min != nil {
			stats = fmt.Sprintf("min %.6g  max %.6g  mean %.6g", *o.Min, *o.Max, *o.Mean)
		}
		fmt.Fprintf(w, "%s\t%s\t%v\t%s\t%s\n", o.Name, o.DType, o.Shape, stats, strings.Join(o.Files, " "))
	}
	w.Flush()
	fmt.Fprintf(c.stdout, "ran in %.3f ms\n", r.Seconds*1e3)
	return nil
}

// readFeeds reads the --input flags and checks that every input the model
// needs is given.
func readFeeds(plan *runtime.Plan, specs []string) (map[string]*runtime.Tensor, error) {
	needed := map[string]bool{}
	var names []string
	for _, v := range plan.Inputs() {
		if v.Init == nil {
			needed[v.Name] = true
			names = append(names, v.Name)
		}
	}
	feeds := map[string]*runtime.Tensor{}
	for _, spec := range specs {
		name, file, ok := strings.Cut(spec, "=")
		if !ok {
			if len(names) != 1 {
				return nil, usagef("--input %s: name the input (NAME=FILE); the model has inputs %s", spec, strings.Join(names, ", "))
			}
			name, file = names[0], spec
		}
		if !needed[name] && !hasInput(plan, name) {
			return nil, usagef("--input %s: the model has no input %q (it has %s)", spec, name, strings.Join(names, ", "))
		}
		t, err := runtime.ReadTensorFile(file)
		if err != nil {
			return nil, err
		}
		feeds[name] = t
	}
	for _, name := range names {
		if feeds[name] == nil {
			return nil, usagef("input %q is not given (--input %s=FILE)", name, name)
		}
	}
	return feeds, nil
}

func hasInput(plan *runtime.Plan, name string) bool {
	for _, v := range plan.Inputs() {
		if v.Name == name {
			return true
		}
	}
	return false
}

// summarize describes an output: its type and shape and, for numbers, its
// range and mean.
func summarize(name string, t *runtime.Tensor) outputJSON {
	o := outputJSON{Name: name, DType: dtypeName(t.DType), Shape: t.Shape}
	vals, ok := asFloat64s(t)
	if !ok || len(vals) == 0 {
		return o
	}
	lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
	for _, v := range vals {
		lo, hi, sum = math.Min(lo, v), math.Max(hi, v), sum+v
	}
	mean := sum / float64(len(vals))
	o.Min, o.Max, o.Mean = finite(lo), finite(hi), finite(mean)
	return o
}

// asFloat64s widens a numeric tensor's elements.
func asFloat64s(t *runtime.Tensor) ([]float64, bool) {
	switch d := t.Data.(type) {
	case []float32:
		return widen(d), true
	case []float64:
		return d, true
	case []int64:
		return widen(d), true
	case []int32:
		return widen(d), true
	case []int8:
		return widen(d), true
	case []uint8:
		return widen(d), true
	}
	return nil, false
}

func widen[T float32 | int64 | int32 | int8 | uint8](xs []T) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}
