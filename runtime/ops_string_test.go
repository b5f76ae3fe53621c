package runtime

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"onnxopt/onnx"
)

func TestStringSuiteCases(t *testing.T) {
	checkSuiteCases(t, []string{"simple/test_strnorm", "node/test_strnormalizer"}, []suiteCase{
		{path: "node/test_strnormalizer_export_monday_casesensintive_lower"},
		{path: "node/test_strnormalizer_export_monday_casesensintive_nochangecase"},
		{path: "node/test_strnormalizer_export_monday_casesensintive_upper"},
		{path: "node/test_strnormalizer_export_monday_empty_output"},
		{path: "node/test_strnormalizer_export_monday_insensintive_upper_twodim"},
		{path: "node/test_strnormalizer_nostopwords_nochangecase"},
		{path: "simple/test_strnorm_model_monday_casesensintive_lower"},
		{path: "simple/test_strnorm_model_monday_casesensintive_nochangecase"},
		{path: "simple/test_strnorm_model_monday_casesensintive_upper"},
		{path: "simple/test_strnorm_model_monday_empty_output"},
		{path: "simple/test_strnorm_model_monday_insensintive_upper_twodim"},
		{path: "simple/test_strnorm_model_nostopwords_nochangecase"},
	})
}

func strings1(v ...string) []string { return v }

func TestStringNormalizer(t *testing.T) {
	normalizer := func(action string, sensitive int64, locale string, stopwords ...string) *opCall {
		c := newOpCall("StringNormalizer", 10).str("case_change_action", action).int("is_case_sensitive", sensitive)
		if locale != "" {
			c.str("locale", locale)
		}
		if stopwords != nil {
			sw := make([][]byte, len(stopwords))
			for i, w := range stopwords {
				sw[i] = []byte(w)
			}
			c.attrs = append(c.attrs, &onnx.AttributeProto{Name: proto.String("stopwords"), Type: onnx.AttributeProto_STRINGS.Enum(), Strings: sw})
		}
		return c
	}
	words := []string{"Straße", "ÉTÉ", "istanbul", "Izmir", "the"}
	tests := []struct {
		name  string
		call  *opCall
		shape []int
		want  []string
		wantS []int
	}{
		{"unicode lower", normalizer("LOWER", 0, ""), []int{5}, strings1("straße", "été", "istanbul", "izmir", "the"), []int{5}},
		// Go's simple case mapping keeps ß, which has no one-rune capital.
		{"unicode upper", normalizer("UPPER", 0, "en_US"), []int{5}, strings1("STRAßE", "ÉTÉ", "ISTANBUL", "IZMIR", "THE"), []int{5}},
		{"turkish upper", normalizer("UPPER", 0, "tr_TR"), []int{5}, strings1("STRAßE", "ÉTÉ", "İSTANBUL", "IZMİR", "THE"), []int{5}},
		{"turkish lower", normalizer("LOWER", 0, "tr_TR.UTF-8"), []int{5}, strings1("straße", "été", "istanbul", "ızmir", "the"), []int{5}},
		{"stopwords ignoring case", normalizer("NONE", 0, "", "THE", "été"), []int{1, 5}, strings1("Straße", "istanbul", "Izmir"), []int{1, 3}},
		{"stopwords with case", normalizer("NONE", 1, "", "THE", "ÉTÉ"), []int{5}, strings1("Straße", "istanbul", "Izmir", "the"), []int{4}},
		{"everything stopped", normalizer("UPPER", 0, "", words...), []int{1, 5}, strings1(""), []int{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.call.run(mustTensor(t, slices.Clone(words), tt.shape...))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got[0].Shape, tt.wantS) || !slices.Equal(got[0].Data.([]string), tt.want) {
				t.Errorf("got %v %q, want %v %q", got[0].Shape, got[0].Data, tt.wantS, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		name string
		call *opCall
		x    *Tensor
		err  string
	}{
		{"two rows", normalizer("NONE", 0, ""), mustTensor(t, strings1("a", "b"), 2, 1), "[C] or [1, C]"},
		{"scalar", normalizer("NONE", 0, ""), mustTensor(t, strings1("a")), "[C] or [1, C]"},
		{"numbers", normalizer("NONE", 0, ""), f32s(t, 1), "string tensor"},
		{"bad action", normalizer("TITLE", 0, ""), mustTensor(t, strings1("a"), 1), "case_change_action"},
	} {
		if _, err := tt.call.run(tt.x); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: error %v, want one saying %q", tt.name, err, tt.err)
		}
	}
}
