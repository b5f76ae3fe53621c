package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/passes"
	"onnxopt/runtime"
	"onnxopt/verify"
)

// optimizeReport is the JSON form of "onnxopt optimize".
type optimizeReport struct {
	Model  string              `json:"model"`
	Output string              `json:"output"`
	Before passes.Counts       `json:"before"`
	After  passes.Counts       `json:"after"`
	Passes []passes.PassReport `json:"passes"`
	// Renamed maps values the passes removed to the values that now
	// carry their numbers.
	Renamed map[string]string `json:"renamed,omitempty"`
}

func runOptimize(c *cli, args []string) error {
	fs := c.flags("optimize")
	out := fs.StringP("output", "o", "", "where to write the optimized model (required)")
	fs.String("passes", "", "comma-separated passes to run (default: the cleanup pipeline; see \"onnxopt passes\")")
	check := fs.Bool("verify", false, "compare outputs before and after every pass on seeded random inputs")
	atol := fs.Float64("atol", 1e-5, "absolute tolerance of --verify")
	rtol := fs.Float64("rtol", 1e-4, "relative tolerance of --verify")
	seed := fs.Uint64("seed", 1, "seed of the inputs of --verify and --report")
	asJSON := fs.Bool("json", false, "print a JSON report instead of text")
	external := fs.Bool("external-data", false, "write tensors to a data file beside the model")
	reportFile := fs.String("report", "", reportUsage)

	// Pass options are flags too: bind those of the passes named, found
	// before parsing.
	infos := passes.Default()
	if names := flagValue(args, "passes"); names != "" {
		var err error
		if infos, err = passes.Parse(names); err != nil {
			return usagef("%v", err)
		}
	}
	steps, shared := passes.Bind(infos, fs)
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	if err := shared.Apply(); err != nil {
		return usagef("%v", err)
	}
	if *out == "" {
		return usagef("-o OUT is required")
	}
	path := fs.Arg(0)
	m, err := c.loadModel(path)
	if err != nil {
		return err
	}
	var original *graph.Model // the model as read, for --report
	if *reportFile != "" {
		if original, err = graph.Load(path); err != nil {
			return err
		}
	}
	opt := passes.Options{Check: *check, ATol: *atol, RTol: *rtol}
	if *check {
		if opt.CheckInputs, err = runtime.RandomInputs(m.Graph, *seed, 0, 1, nil); err != nil {
			return fmt.Errorf("%s: --verify: %w", path, err)
		}
	}
	env := &passes.Env{Warnf: func(format string, args ...any) {
		fmt.Fprintf(c.stderr, "onnxopt optimize: warning: "+format+"\n", args...)
	}}
	before := passesCounts(m)
	reports, err := passes.Run(m, steps, env, opt)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := c.writeModel(*out, m.ToProto(), onnx.WriteOptions{ExternalData: *external}); err != nil {
		return err
	}
	r := optimizeReport{Model: path, Output: *out, Before: before, After: passesCounts(m), Passes: reports, Renamed: env.Renamed}
	if *reportFile != "" {
		rw := rewrite{title: commandLine("optimize", args), input: path, output: *out, before: original, after: m, passes: reports,
			renamed: env.Renamed, seed: *seed, tolerance: verify.Tolerance{ATol: *atol, RTol: *rtol}}
		if err := writeRewriteReport(*reportFile, rw); err != nil {
			return err
		}
	}
	if *asJSON {
		return c.printJSON(r)
	}
	printPassTable(c, r.Before, r.After, reports)
	fmt.Fprintf(c.stdout, "wrote %s\n", *out)
	return nil
}

// passesCounts are the counts the pass table shows for a whole model.
func passesCounts(m *graph.Model) passes.Counts {
	s := m.Stats()
	return passes.Counts{Nodes: s.Nodes, Params: s.Params, NonZero: s.NonZero, Bytes: s.Bytes, FLOPs: m.Graph.FLOPs()}
}

// flagValue finds --name=V or --name V in args before they are parsed.
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func printPassTable(c *cli, before, after passes.Counts, reports []passes.PassReport) {
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "pass\ttime\tchanges\tnodes\tparams\tnon-zero\tbytes\tFLOPs\tmax error\t")
	row := func(name, dur, changes string, a, b passes.Counts, maxErr string) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, dur, changes,
			delta(int64(a.Nodes), int64(b.Nodes)), delta(a.Params, b.Params), delta(a.NonZero, b.NonZero),
			delta(a.Bytes, b.Bytes), delta(a.FLOPs, b.FLOPs), maxErr)
	}
	for _, r := range reports {
		maxErr := "-"
		if r.MaxAbsError != nil {
			maxErr = fmt.Sprintf("%.3g", *r.MaxAbsError)
		}
		row(r.Name, fmt.Sprintf("%.1fms", float64(r.Duration.Microseconds())/1e3), fmt.Sprint(r.Changes), r.Before, r.After, maxErr)
	}
	row("total", "", "", before, after, "")
	w.Flush()
	for _, r := range reports {
		for _, n := range r.Notes {
			fmt.Fprintf(c.stdout, "%s: %s\n", r.Name, n)
		}
	}
}

// delta prints "after" when nothing changed, else "before→after".
func delta(before, after int64) string {
	if before == after {
		return thousands(after)
	}
	return thousands(before) + "→" + thousands(after)
}

func runPasses(c *cli, args []string) error {
	fs := c.flags("passes")
	if err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	def := map[string]bool{}
	for _, p := range passes.Default() {
		def[p.Name] = true
	}
	for _, p := range passes.Table() {
		mark := ""
		if def[p.Name] {
			mark = " (default)"
		}
		fmt.Fprintf(c.stdout, "%s%s\n    %s\n", p.Name, mark, p.Title())
		own := pflag.NewFlagSet(p.Name, pflag.ContinueOnError)
		p.New().Flags(own)
		if usage := own.FlagUsages(); usage != "" {
			fmt.Fprint(c.stdout, indent(usage, "  "))
		}
	}
	return nil
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n") + "\n"
}
