package runtime

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"onnxopt/internal/suite"
)

// A nodeCase is one conformance case of the node folder that an op family's
// tests must pass, or, with unsupported set, one it must report as
// unsupported for the stated reason.
type nodeCase struct {
	name        string
	unsupported string
}

// checkNodeCases runs the node cases with RunCase (rtol 1e-3, atol 1e-7)
// and checks that the table lists every case whose name starts with one of
// prefixes, so that a case added to the suite is not silently left out.
func checkNodeCases(t *testing.T, prefixes []string, cases []nodeCase) {
	t.Helper()
	root := suite.Dir(t)
	var listed []string
	for _, c := range cases {
		listed = append(listed, c.name)
	}
	for _, p := range prefixes {
		matches, err := filepath.Glob(filepath.Join(root, "node", p+"*", "model.onnx"))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range matches {
			if name := filepath.Base(filepath.Dir(m)); !slices.Contains(listed, name) {
				t.Errorf("suite case %s is not in the table", name)
			}
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := RunCase(filepath.Join(root, "node", c.name))
			if c.unsupported != "" {
				if res.Status != StatusUnsupported {
					t.Fatalf("status %s (%s), want unsupported: %s", res.Status, res.Err, c.unsupported)
				}
				return
			}
			if res.Status != StatusPass {
				t.Fatalf("%s (ops %s): %s", res.Status, strings.Join(res.Ops, " "), res.Err)
			}
		})
	}
}

func TestQuantNodeCases(t *testing.T) {
	checkNodeCases(t, []string{
		"test_quantizelinear", "test_dequantizelinear", "test_dynamicquantizelinear",
		"test_qlinearconv", "test_qlinearmatmul", "test_matmulinteger", "test_convinteger",
	}, []nodeCase{
		{name: "test_quantizelinear"},
		{name: "test_quantizelinear_axis"},
		{name: "test_dequantizelinear"},
		{name: "test_dequantizelinear_axis"},
		{name: "test_dynamicquantizelinear"},
		{name: "test_dynamicquantizelinear_expanded"},
		{name: "test_dynamicquantizelinear_max_adjusted"},
		{name: "test_dynamicquantizelinear_max_adjusted_expanded"},
		{name: "test_dynamicquantizelinear_min_adjusted"},
		{name: "test_dynamicquantizelinear_min_adjusted_expanded"},
		{name: "test_qlinearconv"},
		{name: "test_qlinearmatmul_2D"},
		{name: "test_qlinearmatmul_3D"},
		{name: "test_matmulinteger"},
		{name: "test_convinteger_with_padding"},
		{name: "test_convinteger_without_padding"},
	})
}
