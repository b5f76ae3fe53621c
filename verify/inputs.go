package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"onnxopt/graph"
	"onnxopt/onnx"
	"onnxopt/runtime"
)

// A Case is one set of inputs that the models run on.
type Case struct {
	// Name identifies the case in the report: a data set's folder, a
	// file, "random (seed 1)".
	Name string
	// Inputs holds a tensor for each graph input, by name.
	Inputs map[string]*runtime.Tensor
	// Want holds the expected value of each graph output, by name, for
	// Expected; Models ignores it.
	Want map[string]*runtime.Tensor
	// Samples, when above 0, says that axis 0 of every input, expected
	// output and output holds this many independent samples: the report
	// then gives each output's worst sample and counts those outside the
	// tolerance.
	Samples int
}

// Batch makes a case whose inputs hold independent samples along axis 0,
// such as a calibration batch. Every input must have the same, non-zero
// length along axis 0.
func Batch(name string, inputs map[string]*runtime.Tensor) (Case, error) {
	samples := -1
	for _, in := range sortedKeys(inputs) {
		t := inputs[in]
		if t.Kind != runtime.KindTensor || t.Rank() == 0 {
			return Case{}, fmt.Errorf("%s: input %q is the %s, not a batch along axis 0", name, in, t)
		}
		if samples >= 0 && t.Shape[0] != samples {
			return Case{}, fmt.Errorf("%s: input %q holds %d samples along axis 0, another input %d", name, in, t.Shape[0], samples)
		}
		samples = t.Shape[0]
	}
	if samples <= 0 {
		return Case{}, fmt.Errorf("%s: the batch holds no samples", name)
	}
	return Case{Name: name, Inputs: inputs, Samples: samples}, nil
}

// ReadTestData reads inputs and expected outputs in the layout of the ONNX
// test suite: dir is either one data set, a folder holding input_K.pb and
// output_K.pb, or a folder holding data sets named test_data_set_N. File
// K holds the K-th graph input that has no initializer, or the K-th graph
// output, of g. A data set may lack output files; Expected needs them.
func ReadTestData(dir string, g *graph.Graph) ([]Case, error) {
	var sets []string
	if _, err := os.Stat(filepath.Join(dir, "input_0.pb")); err == nil {
		sets = []string{dir}
	} else {
		var err error
		if sets, err = runtime.DataSets(dir); err != nil {
			return nil, err
		}
		if len(sets) == 0 {
			return nil, fmt.Errorf("%s: neither input_0.pb nor test_data_set_N folders", dir)
		}
	}
	var inputs []string
	var inTypes []*onnx.TypeProto
	for _, v := range g.Inputs {
		if v.Init == nil {
			inputs = append(inputs, v.Name)
			inTypes = append(inTypes, v.Type)
		}
	}
	outTypes := make([]*onnx.TypeProto, len(g.Outputs))
	for k, v := range g.Outputs {
		outTypes[k] = v.Type
	}
	var cases []Case
	for _, set := range sets {
		ins, outs, err := runtime.ReadDataSet(set, inTypes, outTypes)
		if err != nil {
			return nil, err
		}
		if len(ins) != len(inputs) {
			return nil, fmt.Errorf("%s: %d input files for the %d inputs %s", set, len(ins), len(inputs), strings.Join(inputs, ", "))
		}
		c := Case{Name: filepath.Base(set), Inputs: map[string]*runtime.Tensor{}}
		for k, t := range ins {
			c.Inputs[inputs[k]] = t
		}
		if len(outs) > 0 {
			if len(outs) != len(g.Outputs) {
				return nil, fmt.Errorf("%s: %d output files for %d graph outputs", set, len(outs), len(g.Outputs))
			}
			c.Want = map[string]*runtime.Tensor{}
			for k, t := range outs {
				c.Want[g.Outputs[k].Name] = t
			}
		}
		cases = append(cases, c)
	}
	return cases, nil
}

// ReadNameMap reads a JSON file that pairs value names of a reference
// model with the names that carry the same numbers in a candidate: either
// an object of strings {"old": "new", ...}, or the JSON report of
// "onnxopt optimize --json", whose "renamed" field is such an object.
func ReadNameMap(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object: %w", path, err)
	}
	_, hasPasses := fields["passes"]
	renamed, hasRenamed := fields["renamed"]
	if hasPasses || hasRenamed && bytes.HasPrefix(bytes.TrimSpace(renamed), []byte("{")) {
		// An optimize report; it leaves "renamed" out when nothing was.
		b = renamed
		if !hasRenamed {
			return map[string]string{}, nil
		}
	}
	names := map[string]string{}
	if err := json.Unmarshal(b, &names); err != nil {
		return nil, fmt.Errorf("%s: want a JSON object of names {\"old\": \"new\"} or an optimize report: %w", path, err)
	}
	return names, nil
}

// resolve follows renames from a reference value's name to the
// candidate's, stopping on a cycle.
func resolve(names map[string]string, name string) string {
	for range len(names) {
		next, ok := names[name]
		if !ok || next == name {
			break
		}
		name = next
	}
	return name
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
