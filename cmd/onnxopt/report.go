package main

import (
	"fmt"
	"strings"

	"onnxopt/graph"
	"onnxopt/passes"
	"onnxopt/report"
	"onnxopt/runtime"
	"onnxopt/verify"
)

// reportUsage is the help of the --report flag of every command that has
// one.
const reportUsage = "write an HTML report (summary, passes, weight histograms, sparsity, per-layer error, verification) to `FILE.html`"

// A rewrite is what a command that read a model and wrote a changed one
// (optimize, prune, quantize) puts in its --report.
type rewrite struct {
	// title heads the report: the command line.
	title string
	// input and output are the paths read and written, before and
	// after the models in them.
	input, output string
	before, after *graph.Model
	passes        []passes.PassReport
	// renamed pairs the values passes removed with those that carry
	// their numbers now (passes.Env.Renamed).
	renamed map[string]string
	// cases are the inputs both models run on to be compared layer by
	// layer, the first also to be timed; when there are none, random
	// inputs uniform in [0, 1) made with seed.
	cases     []verify.Case
	seed      uint64
	batchSize int // verify.Options.BatchSize
	// tolerance judges the comparison: a lossy command passes the one
	// its --verify uses, or an infinite ATol and RTol, which leave the
	// SQNR to tell the error.
	tolerance verify.Tolerance
}

// writeRewriteReport compares the model a command read with the one it
// wrote, layer by layer, times both, and writes the HTML report to file.
func writeRewriteReport(file string, rw rewrite) error {
	cases := rw.cases
	if len(cases) == 0 {
		inputs, err := runtime.RandomInputs(rw.before.Graph, rw.seed, 0, 1, nil)
		if err != nil {
			return fmt.Errorf("--report: random inputs for %s: %w", rw.input, err)
		}
		cases = []verify.Case{{Name: fmt.Sprintf("random inputs in [0, 1), seed %d", rw.seed), Inputs: inputs}}
	}
	ref := &verify.Model{Name: rw.input, Graph: rw.before}
	cand := &verify.Model{Name: rw.output, Graph: rw.after}
	opt := verify.Options{Tolerance: rw.tolerance, PerLayer: true, NameMap: rw.renamed, BatchSize: rw.batchSize}
	vr, err := verify.Models(ref, cand, cases, opt)
	if err != nil {
		return fmt.Errorf("--report: comparing %s with %s: %w", rw.input, rw.output, err)
	}
	r, err := report.Build(report.Input{
		Title:      rw.title,
		Before:     &report.Model{Role: "before", Name: rw.input, Graph: rw.before},
		After:      &report.Model{Role: "after", Name: rw.output, Graph: rw.after},
		Passes:     rw.passes,
		Verify:     vr,
		Inputs:     cases[0].Inputs,
		InputsName: cases[0].Name,
	})
	if err != nil {
		return err
	}
	return r.WriteFile(file)
}

// writeVerifyReport writes the HTML report of "onnxopt verify": cand is
// nil when one model was checked against expected outputs. The models are
// timed on the first case's inputs.
func writeVerifyReport(file, title string, ref, cand *verify.Model, cases []verify.Case, vr *verify.Report) error {
	in := report.Input{Title: title, Verify: vr, Inputs: cases[0].Inputs, InputsName: cases[0].Name}
	if cand == nil {
		in.After = &report.Model{Role: "model", Name: ref.Name, Graph: ref.Graph}
	} else {
		in.Before = &report.Model{Role: "reference", Name: ref.Name, Graph: ref.Graph}
		in.After = &report.Model{Role: "candidate", Name: cand.Name, Graph: cand.Graph}
	}
	r, err := report.Build(in)
	if err != nil {
		return err
	}
	return r.WriteFile(file)
}

// commandLine is the title of a command's report.
func commandLine(command string, args []string) string {
	return "onnxopt " + command + " " + strings.Join(args, " ")
}
