package runtime

import (
	"fmt"
	"strings"
	"unicode"

	"onnxopt/graph"
	"onnxopt/onnx"
)

// String operators.
var stringOps = []opDef{
	{"", "StringNormalizer", 10, compileStringNormalizer},
}

// compileStringNormalizer removes the stopwords from a [C] or [1, C]
// string tensor, then lowercases, uppercases or keeps the rest. A result
// with no strings left is one empty string, of shape [1] or [1, 1].
//
// Case follows Unicode's default mapping, which is the mapping of every
// locale but Turkish and Azeri, whose dotted and dotless i the locale
// attribute selects; the machine's locales play no part. Stopwords
// match exactly or, unless is_case_sensitive, after lowercasing both.
func compileStringNormalizer(n *graph.Node) (kernel, error) {
	action := n.AttrString("case_change_action", "NONE")
	switch action {
	case "NONE", "LOWER", "UPPER":
	default:
		return nil, fmt.Errorf("case_change_action %q is not NONE, LOWER or UPPER", action)
	}
	sensitive := n.AttrInt("is_case_sensitive", 0) != 0
	special := unicode.SpecialCase(nil)
	if lang, _, _ := strings.Cut(strings.ToLower(n.AttrString("locale", "en_US")), "_"); lang == "tr" || lang == "az" {
		special = unicode.TurkishCase
	}
	lower := func(s string) string { return strings.ToLowerSpecial(special, s) }
	upper := func(s string) string { return strings.ToUpperSpecial(special, s) }
	stop := map[string]bool{}
	if a := n.Attr("stopwords"); a != nil {
		for _, w := range a.Proto.GetStrings() {
			if sensitive {
				stop[string(w)] = true
			} else {
				stop[lower(string(w))] = true
			}
		}
	}
	return func(e *env, in []*Tensor) ([]*Tensor, error) {
		x, err := tensorInput(in, 0)
		if err != nil {
			return nil, err
		}
		words, ok := x.Data.([]string)
		if !ok {
			return nil, fmt.Errorf("X must be a string tensor, got %s", x)
		}
		if !(x.Rank() == 1 || x.Rank() == 2 && x.Shape[0] == 1) {
			return nil, fmt.Errorf("X must have shape [C] or [1, C], got %v", x.Shape)
		}
		kept := make([]string, 0, len(words))
		for _, w := range words {
			key := w
			if !sensitive {
				key = lower(w)
			}
			if stop[key] {
				continue
			}
			switch action {
			case "LOWER":
				w = lower(w)
			case "UPPER":
				w = upper(w)
			}
			kept = append(kept, w)
		}
		if len(kept) == 0 {
			kept = append(kept, "")
		}
		shape := []int{len(kept)}
		if x.Rank() == 2 {
			shape = []int{1, len(kept)}
		}
		out, err := e.output(0, onnx.TensorProto_STRING, shape...)
		if err != nil {
			return nil, err
		}
		copy(out.Data.([]string), kept)
		return []*Tensor{out}, nil
	}, nil
}
