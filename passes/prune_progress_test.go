package passes

import (
	"fmt"
	"slices"
	"testing"

	"github.com/spf13/pflag"
)

// TestPruneGradientProgress runs gradient pruning on three calibration
// batches, with and without reconstruction and for both saliencies: the
// pass reports the stages ProgressStages names, in order, each counting
// one by one from 1 to its total: the batches, then the two layers
// refitted.
func TestPruneGradientProgress(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		stages []string
		totals []int
	}{
		{[]string{"--sparsity", "0.5"}, []string{"saliency"}, []int{3}},
		{[]string{"--sparsity", "0.5", "--saliency", "fisher"}, []string{"saliency"}, []int{3}},
		{[]string{"--sparsity", "0.5", "--reconstruct"}, []string{"saliency", "reconstruct"}, []int{3, 2}},
	} {
		t.Run(fmt.Sprint(tc.args), func(t *testing.T) {
			m := gradientNet(t).m
			samples := calibrationFor(t, m.Graph, 5, 12)[0]
			calib, err := CalibrationBatches(m.Graph, samples, 4)
			if err != nil {
				t.Fatal(err)
			}
			info, _ := Lookup("prune-gradient")
			p := info.New()
			fs := pflag.NewFlagSet("prune-gradient", pflag.ContinueOnError)
			p.Flags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			staged, ok := p.(StagedProgressReporter)
			if !ok {
				t.Fatal("prune-gradient reports no staged progress")
			}
			if got := staged.ProgressStages(); !slices.Equal(got, tc.stages) {
				t.Errorf("stages %q, want %q", got, tc.stages)
			}
			var calls [][2]int
			staged.SetProgress(func(done, total int) { calls = append(calls, [2]int{done, total}) })
			if _, err := p.Run(m, &Env{Calibration: calib}); err != nil {
				t.Fatal(err)
			}
			var want [][2]int
			for _, total := range tc.totals {
				for done := 1; done <= total; done++ {
					want = append(want, [2]int{done, total})
				}
			}
			if !slices.Equal(calls, want) {
				t.Errorf("progress %v, want %v", calls, want)
			}
		})
	}
}

// TestPruneProgressStages: the other pruning passes report reconstruction
// alone, and only when it runs.
func TestPruneProgressStages(t *testing.T) {
	for _, name := range []string{"prune-magnitude", "prune-random", "prune-nm"} {
		info, _ := Lookup(name)
		for _, reconstruct := range []bool{false, true} {
			p := info.New()
			fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
			p.Flags(fs)
			if err := fs.Parse([]string{fmt.Sprintf("--reconstruct=%t", reconstruct)}); err != nil {
				t.Fatal(err)
			}
			staged, ok := p.(StagedProgressReporter)
			if !ok {
				t.Fatalf("%s reports no staged progress", name)
			}
			want := []string(nil)
			if reconstruct {
				want = []string{"reconstruct"}
			}
			if got := staged.ProgressStages(); !slices.Equal(got, want) {
				t.Errorf("%s, --reconstruct=%t: stages %q, want %q", name, reconstruct, got, want)
			}
		}
	}
}
