package numfmt

import (
	"math"
	"testing"
)

func TestThousands(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{
		{0, "0"}, {7, "7"}, {999, "999"}, {1000, "1,000"}, {-1000, "-1,000"}, {-999, "-999"},
		{1234567, "1,234,567"}, {-12345678, "-12,345,678"},
		{math.MinInt64, "-9,223,372,036,854,775,808"},
	} {
		if got := Thousands(c.n); got != c.want {
			t.Errorf("Thousands(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

func TestByteSize(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {999, "999 B"}, {1000, "1.0 KB"}, {43500, "43.5 KB"},
		{1_250_000, "1.25 MB"}, {3_120_000_000, "3.12 GB"},
	} {
		if got := ByteSize(c.n); got != c.want {
			t.Errorf("ByteSize(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

func TestMetrics(t *testing.T) {
	for _, c := range []struct {
		name string
		f    func(float64) string
		x    float64
		want string
	}{
		{"Metric", Metric, 0.000123456, "0.000123"},
		{"Metric", Metric, 12345, "1.23e+04"},
		{"Metric", Metric, math.Inf(1), "inf"},
		{"Metric", Metric, math.NaN(), "nan"},
		{"Cosine", Cosine, 0.5, "0.500000"},
		{"Cosine", Cosine, 1, "1.000000"},
		{"Cosine", Cosine, 1 - 2.5e-6, "1−2.5e-06"},
		{"Cosine", Cosine, math.NaN(), "nan"},
		{"SQNR", SQNR, 41.26, "41.3"},
		{"SQNR", SQNR, math.Inf(1), "inf"},
		{"SQNR", SQNR, math.Inf(-1), "-inf"},
	} {
		if got := c.f(c.x); got != c.want {
			t.Errorf("%s(%g) = %q, want %q", c.name, c.x, got, c.want)
		}
	}
}
