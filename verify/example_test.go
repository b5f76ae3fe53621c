package verify_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/passes"
	"onnxopt/runtime"
	"onnxopt/verify"
)

// This example does in Go what "onnxopt prune" and "onnxopt quantize" do:
// load a model, prune 50% of its weights by magnitude (ranked across layers, the rest
// refitted to the original layer outputs), quantize it to int8
// with activations calibrated on sample inputs, save it, and check that it
// still classifies like the original.
func Example() {
	const path = "../testdata/models/digits_cnn/model.onnx"
	m, err := graph.Load(path)
	if err != nil {
		log.Fatal(err)
	}

	// Passes take their options as flags, as on the command line.
	infos, err := passes.Parse("prune-magnitude,quantize-static")
	if err != nil {
		log.Fatal(err)
	}
	fs := pflag.NewFlagSet("example", pflag.ContinueOnError)
	steps, shared := passes.Bind(infos, fs)
	if err := fs.Parse([]string{"--sparsity", "0.5", "--global", "--reconstruct", "--per-channel"}); err != nil {
		log.Fatal(err)
	}
	if err := shared.Apply(); err != nil {
		log.Fatal(err)
	}
	calibration, err := runtime.ReadTensorFile("../testdata/models/digits_cnn/calibration.pb")
	if err != nil {
		log.Fatal(err)
	}
	env := &passes.Env{Calibration: []map[string]*runtime.Tensor{{"input": calibration}}}
	reports, err := passes.Run(m, steps, env, passes.Options{})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range reports {
		fmt.Printf("%s: %d of %d parameters non-zero\n", r.Name, r.After.NonZero, r.After.Params)
	}

	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "digits_cnn.int8.onnx")
	if err := m.Save(out, onnx.WriteOptions{}); err != nil {
		log.Fatal(err)
	}

	// Compare the saved model with the original on the held-out digits,
	// sample by sample: the same class for at least 97% of them.
	ref, err := verify.Load(path)
	if err != nil {
		log.Fatal(err)
	}
	cand, err := verify.Load(out)
	if err != nil {
		log.Fatal(err)
	}
	cases, err := verify.ReadTestData("../testdata/models/digits_cnn/test_data_set_0", ref.Graph.Graph)
	if err != nil {
		log.Fatal(err)
	}
	tol := verify.Tolerance{ATol: 1e9, RTol: 1e9, MinTop1: 0.97}
	report, err := verify.Models(ref, cand, cases, verify.Options{Tolerance: tol})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same class for at least 97% of the digits:", report.Pass)
	// Output:
	// prune-magnitude: 12034 of 23946 parameters non-zero
	// quantize-static: 12157 of 24198 parameters non-zero
	// same class for at least 97% of the digits: true
}
