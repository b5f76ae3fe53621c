package runtime

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"onnxopt/internal/suite"
)

// elementwiseCases are the lowercase op names that conformance node cases
// of the elementwise operators start with (test_<name>, then "_", a digit
// or nothing).
var elementwiseCases = []string{
	"add", "sub", "mul", "div", "mod", "pow", "bitshift", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
	"sum", "mean", "min", "max",
	"abs", "neg", "sign", "relu", "sqrt", "exp", "log", "reciprocal", "floor", "ceil", "round", "erf",
	"sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh",
	"sigmoid", "tanh", "softplus", "softsign", "mish", "hardswish", "leakyrelu", "elu", "selu", "celu",
	"thresholdedrelu", "hardsigmoid", "shrink", "gelu", "prelu", "clip",
	"equal", "less", "less_equal", "greater", "greater_equal", "and", "or", "xor", "not", "where", "isnan", "isinf",
	"cast", "castlike", "identity", "dropout", "training_dropout",
}

// elementwiseKnown are the node cases of those operators that are expected
// not to pass, with the reason.
var elementwiseKnown = map[string]string{
	"test_identity_opt":      "optional values: the runtime computes tensors only",
	"test_identity_sequence": "sequence values: the runtime computes tensors only",
	// Dropout in training mode with a positive ratio is random: the
	// expected outputs come from numpy's generator, and the kernel
	// refuses rather than approximates.
	"test_training_dropout":              "random dropout (training_mode with ratio > 0)",
	"test_training_dropout_default":      "random dropout (training_mode with ratio > 0)",
	"test_training_dropout_default_mask": "random dropout (training_mode with ratio > 0)",
	"test_training_dropout_mask":         "random dropout (training_mode with ratio > 0)",
	// ONNX 1.12's suite stores these bfloat16 inputs and outputs as uint16
	// TensorProtos, which RunCase reads as uint16.
	"test_cast_BFLOAT16_to_FLOAT":              "bfloat16 data stored as uint16",
	"test_cast_FLOAT_to_BFLOAT16":              "bfloat16 data stored as uint16",
	"test_castlike_BFLOAT16_to_FLOAT":          "bfloat16 data stored as uint16",
	"test_castlike_BFLOAT16_to_FLOAT_expanded": "bfloat16 data stored as uint16",
	"test_castlike_FLOAT_to_BFLOAT16":          "bfloat16 data stored as uint16",
	"test_castlike_FLOAT_to_BFLOAT16_expanded": "bfloat16 data stored as uint16",
}

// matchesOp reports whether a case name is test_<op> followed by nothing,
// "_" or a digit.
func matchesOp(name, op string) bool {
	rest, ok := strings.CutPrefix(name, "test_"+op)
	return ok && (rest == "" || rest[0] == '_' || rest[0] >= '0' && rest[0] <= '9')
}

// runNodeCases runs the conformance node cases of the given ops through
// RunCase (rtol 1e-3, atol 1e-7 elementwise) and fails on any that does
// not pass and is not listed in known, and on any listed case that passes
// or does not exist.
func runNodeCases(t *testing.T, ops []string, known map[string]string) {
	var dirs []string
	for _, dir := range suite.Cases(t, "node") {
		name := filepath.Base(dir)
		if slices.ContainsFunc(ops, func(op string) bool { return matchesOp(name, op) }) {
			dirs = append(dirs, dir)
		}
	}
	seen := map[string]bool{}
	passed := 0
	for _, dir := range dirs {
		name := filepath.Base(dir)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			res := RunCase(dir)
			reason, isKnown := known[name]
			switch {
			case res.Status == StatusPass && isKnown:
				t.Errorf("passes but is listed as expected to fail (%s)", reason)
			case res.Status == StatusPass:
				passed++
			case isKnown:
				t.Logf("expected failure (%s): %s: %s", reason, res.Status, res.Err)
			default:
				t.Errorf("%s (ops %s): %s", res.Status, strings.Join(res.Ops, " "), res.Err)
			}
		})
	}
	for name := range known {
		if !seen[name] {
			t.Errorf("listed case %s is not in the suite", name)
		}
	}
	t.Logf("%d of %d node cases pass", passed, len(dirs))
}

func TestElementwiseConformance(t *testing.T) {
	runNodeCases(t, elementwiseCases, elementwiseKnown)
}
