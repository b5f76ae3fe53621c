package main

import (
	"fmt"

	"onnxopt/graph"
	"onnxopt/passes"
	"onnxopt/runtime"
	"onnxopt/verify"
)

// calibration is what --calibration gave a command.
type calibration struct {
	batches []map[string]*runtime.Tensor // for the passes
	info    *calibrationJSON             // for the report; nil without --calibration
}

// readCalibration reads the --calibration files of prune and quantize, and
// makes the cases --verify and --report compare the models on: the
// calibration samples when there are some and compare is set, else seeded
// random inputs when random is set (--verify alone), else none (--report
// alone makes its own).
func readCalibration(m *graph.Model, path string, files []string, batchSize int, seed uint64, compare, random bool) (calibration, []verify.Case, error) {
	var cal calibration
	if len(files) == 0 {
		if !random {
			return cal, nil, nil
		}
		feeds, err := runtime.RandomInputs(m.Graph, seed, 0, 1, nil)
		if err != nil {
			return cal, nil, fmt.Errorf("%s: --verify: %w", path, err)
		}
		return cal, []verify.Case{{Name: fmt.Sprintf("random inputs in [0, 1), seed %d", seed), Inputs: feeds}}, nil
	}
	plan, err := runtime.Compile(m.Graph)
	if err != nil {
		return cal, nil, fmt.Errorf("%s: %w", path, err)
	}
	feeds, err := readFeeds(plan, files)
	if err != nil {
		return cal, nil, err
	}
	if cal.batches, err = passes.CalibrationBatches(m.Graph, feeds, batchSize); err != nil {
		return cal, nil, fmt.Errorf("--calibration: %w", err)
	}
	cal.info = &calibrationJSON{Files: filesOf(files), Batches: len(cal.batches)}
	for _, b := range cal.batches {
		for _, t := range b {
			cal.info.Samples += t.Shape[0]
			break
		}
	}
	if !compare {
		return cal, nil, nil
	}
	batch, err := verify.Batch(cal.info.Files, feeds)
	if err != nil {
		return cal, nil, fmt.Errorf("--calibration: %w", err)
	}
	return cal, []verify.Case{batch}, nil
}
