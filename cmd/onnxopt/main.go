// Command onnxopt inspects, cleans, prunes and quantizes ONNX models, and
// checks that the result computes what the original did.
//
// Usage:
//
//	onnxopt COMMAND [flags] ARGS
//
// Run "onnxopt help" for the commands. Exit status: 0 for success, 1 for a
// check that failed, 2 for bad usage or bad input.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// A command is one subcommand: its name, a one-line summary, its usage
// line, and the function that runs it.
type command struct {
	name    string
	summary string
	usage   string
	run     func(c *cli, args []string) error
}

// commands lists every subcommand, in the order help shows them.
var commands = []command{
	{name: "inspect", summary: "print a model's structure, operators and parameters", usage: "inspect MODEL [--json]", run: runInspect},
	{name: "convert", summary: "re-serialize a model through the IR, optionally with external data", usage: "convert MODEL -o OUT [--external-data] [--external-data-threshold BYTES]", run: runConvert},
	{name: "optimize", summary: "run cleanup passes (or those named) and write the result", usage: "optimize MODEL -o OUT [--passes a,b,...] [--verify] [--json]", run: runOptimize},
	{name: "quantize", summary: "quantize weights, or weights and activations from calibration data, to int8 (QDQ)", usage: "quantize MODEL -o OUT [--mode weight|static] [--calibration FILE] [--method minmax|percentile|entropy] [--per-channel] [--symmetric] [--exclude NODE|OP,...] [--verify] [--report FILE.html] [--json]", run: runQuantize},
	{name: "prune", summary: "zero weights by magnitude, at random, N:M or by gradient saliency, optionally refitting the rest", usage: "prune MODEL -o OUT --method random|magnitude|nm|gradient --sparsity S [--global] [--calibration FILE] [--reconstruct] [--seed N] [--verify] [--report FILE.html] [--json]", run: runPrune},
	{name: "passes", summary: "list every pass with its doc line and options", usage: "passes", run: runPasses},
	{name: "run", summary: "run a model in onnxopt's runtime on inputs from files", usage: "run MODEL --input NAME=FILE ... [--output-dir DIR] [--npy] [--json]", run: runRun},
	{name: "verify", summary: "check a candidate's outputs and layers against a reference model or expected outputs", usage: "verify REFERENCE CANDIDATE | MODEL --test-data DIR [--input NAME=FILE|--test-data DIR|--calibration FILE] [--backend ours|ort|both] [--per-layer] [--json]", run: runVerify},
	{name: "conformance", summary: "run ONNX conformance cases (model.onnx + test_data_set_N) and report coverage", usage: "conformance DIR... [--json] [-v]", run: runConformance},
}

// cli carries the streams a command writes to.
type cli struct {
	stdout, stderr io.Writer
	// observeProgress, when not nil, is told every step of progress a
	// command reports, bar or no bar: the tests' window on it.
	observeProgress func(desc string, done, total int64)
}

// errCheckFailed marks a check that ran and failed: exit status 1.
var errCheckFailed = errors.New("check failed")

// usageError marks bad usage: exit status 2, with the command's usage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line writing to stdout and stderr, and
// returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	return (&cli{stdout: stdout, stderr: stderr}).run(args)
}

// run executes one command line and returns the exit status.
func (c *cli) run(args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		c.help()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, cmd := range commands {
		if cmd.name != args[0] {
			continue
		}
		err := cmd.run(c, args[1:])
		var ue *usageError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, pflag.ErrHelp):
			return 0
		case errors.Is(err, errCheckFailed):
			fmt.Fprintf(c.stderr, "onnxopt %s: %v\n", cmd.name, oneLine(err))
			return 1
		case errors.As(err, &ue):
			fmt.Fprintf(c.stderr, "onnxopt %s: %v\nusage: onnxopt %s\n", cmd.name, oneLine(err), cmd.usage)
			return 2
		default:
			fmt.Fprintf(c.stderr, "onnxopt %s: %v\n", cmd.name, oneLine(err))
			return 2
		}
	}
	fmt.Fprintf(c.stderr, "onnxopt: unknown command %q (run \"onnxopt help\")\n", args[0])
	return 2
}

// oneLine folds an error onto one line: joined errors become "; "-separated.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

func (c *cli) help() {
	fmt.Fprintln(c.stdout, "onnxopt makes ONNX models smaller and faster and proves they still compute the same thing.")
	fmt.Fprintln(c.stdout, "\nCommands:")
	for _, cmd := range commands {
		fmt.Fprintf(c.stdout, "  %-12s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprintln(c.stdout, "\nRun \"onnxopt COMMAND --help\" for a command's flags.")
}

// flags makes a flag set for a command; parse errors come back as usage
// errors.
func (c *cli) flags(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.SortFlags = false
	return fs
}

// parse parses args and checks the number of positional arguments.
func parse(fs *pflag.FlagSet, args []string, minArgs, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	if n := fs.NArg(); n < minArgs || (maxArgs >= 0 && n > maxArgs) {
		switch {
		case minArgs == maxArgs:
			return usagef("want %d argument(s), got %d", minArgs, n)
		case n < minArgs:
			return usagef("want at least %d argument(s), got %d", minArgs, n)
		default:
			return usagef("want at most %d argument(s), got %d", maxArgs, n)
		}
	}
	return nil
}

// printJSON writes v to standard output as indented JSON, the form of
// every --json report.
func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
