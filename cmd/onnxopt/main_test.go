package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/onnx"
)

const digitsCNN = "../../testdata/models/digits_cnn/model.onnx"

// onnxopt runs one command line and returns its status and output.
func onnxopt(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func readProto(t *testing.T, path string) *onnx.ModelProto {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestInspectJSON(t *testing.T) {
	code, out, errOut := onnxopt("inspect", "--json", digitsCNN)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r inspectReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	// The truth, read straight from the protobuf.
	m := readProto(t, digitsCNN)
	var params, bytes int64
	for _, init := range m.Graph.Initializer {
		n := int64(1)
		for _, d := range init.Dims {
			n *= d
		}
		params += n
		bytes += 4 * n // every initializer of this model is float32
	}
	ops := map[string]int{}
	for _, n := range m.Graph.Node {
		ops[n.GetOpType()]++
	}
	if r.Parameters.Count != params || r.Parameters.Bytes != bytes || r.Parameters.NonZero != params {
		t.Errorf("parameters %+v, want count %d bytes %d all non-zero", r.Parameters, params, bytes)
	}
	if r.Nodes != len(m.Graph.Node) || len(r.Ops) != len(ops) {
		t.Errorf("%d nodes in %d kinds, want %d in %d", r.Nodes, len(r.Ops), len(m.Graph.Node), len(ops))
	}
	for _, o := range r.Ops {
		if ops[o.Op] != o.Count {
			t.Errorf("op %s counted %d, want %d", o.Op, o.Count, ops[o.Op])
		}
	}
	if r.IRVersion != m.GetIrVersion() || len(r.Opsets) != 1 || r.Opsets[0].Version != 13 || r.Producer != "pytorch" {
		t.Errorf("header %d %v %q", r.IRVersion, r.Opsets, r.Producer)
	}
	if len(r.Inputs) != 1 || r.Inputs[0].Name != "input" || r.Inputs[0].DType != "float" {
		t.Fatalf("inputs %+v", r.Inputs)
	}
	if got := shapeText(r.Inputs[0].Shape); got != "[batch,1,8,8]" {
		t.Errorf("input shape %s", got)
	}
	if len(r.Largest) != len(m.Graph.Initializer) || r.Largest[0].Bytes < r.Largest[len(r.Largest)-1].Bytes {
		t.Errorf("largest initializers %+v", r.Largest)
	}
	if len(r.External) != 0 {
		t.Errorf("external data %+v in an inline model", r.External)
	}
}

func TestInspectText(t *testing.T) {
	code, out, _ := onnxopt("inspect", digitsCNN)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"ir version", "pytorch 1.13.0", "ai.onnx 13", "input", "[batch,1,8,8]", "Conv", "parameters", "23,946", "external data  none"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestConvertRoundTrip converts the model inline and with external data and
// checks both load back equal to the original.
func TestConvertRoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := readProto(t, digitsCNN)

	inline := filepath.Join(dir, "inline.onnx")
	if code, _, errOut := onnxopt("convert", digitsCNN, "-o", inline); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if got := readProto(t, inline); !proto.Equal(got, want) {
		t.Errorf("inline conversion changed the model")
	}

	ext := filepath.Join(dir, "ext.onnx")
	if code, _, errOut := onnxopt("convert", digitsCNN, "-o", ext, "--external-data", "--external-data-threshold", "100"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	stub := readProto(t, ext)
	var external int
	for _, init := range stub.Graph.Initializer {
		if init.GetDataLocation() == onnx.TensorProto_EXTERNAL {
			external++
		}
	}
	if external == 0 {
		t.Fatalf("no tensor went to external data")
	}
	code, out, errOut := onnxopt("inspect", "--json", ext)
	if code != 0 {
		t.Fatalf("inspect exit %d: %s", code, errOut)
	}
	var r inspectReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.External) != 1 || r.External[0].File != "ext.onnx.data" || r.External[0].Tensors != external {
		t.Errorf("inspect external data %+v, want %d tensors in ext.onnx.data", r.External, external)
	}
	got, err := onnx.ReadModel(ext)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("external-data conversion does not load back equal")
	}
}

func TestBadUsage(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.onnx")
	if err := os.WriteFile(garbage, []byte("this is not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.onnx")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, ""},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"inspect"}, 2, "want 1 argument"},
		{[]string{"inspect", "--nope", digitsCNN}, 2, "unknown flag"},
		{[]string{"inspect", filepath.Join(dir, "missing.onnx")}, 2, "no such file"},
		{[]string{"inspect", garbage}, 2, garbage},
		{[]string{"convert", digitsCNN}, 2, "-o OUT is required"},
		{[]string{"convert", garbage, "-o", out}, 2, garbage},
		{[]string{"convert", digitsCNN, "-o", out, "--external-data-threshold", "-1"}, 2, "must not be negative"},
	} {
		code, _, errOut := onnxopt(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("onnxopt %v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, errOut, tc.code, tc.want)
		}
		if code != 0 && strings.Count(strings.TrimSpace(errOut), "\n") > 1 {
			t.Errorf("onnxopt %v: error takes more than two lines: %q", tc.args, errOut)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed convert left %s behind", out)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("failed commands left files: %v", entries)
	}
}
