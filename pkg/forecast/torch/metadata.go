package torch

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Contract is the model file contract this package reads (DESIGN.md §5).
const Contract = "tsfm/v1"

// MetadataFile is the name of the extra file, inside the TorchScript archive,
// that holds the contract's metadata JSON. Python writes it with
// torch.jit.save(m, path, _extra_files={"tsfm.json": json.dumps(meta)}).
const MetadataFile = "tsfm.json"

// reexport ends every contract error: what a user does about it.
const reexport = "re-export the model with the tool under libtorch/ (see libtorch/README.md)"

// Metadata describes a tsfm/v1 model file: what the graph takes and returns.
type Metadata struct {
	// Contract is "tsfm/v1".
	Contract string `json:"contract"`
	// Family and Name say which model this is, e.g. "chronos-bolt" and
	// "chronos-bolt-small".
	Family string `json:"family"`
	Name   string `json:"name"`
	// ContextLength is L, the length of every input row.
	ContextLength int `json:"context_length"`
	// Horizon is H, the native horizon of one forward.
	Horizon int `json:"horizon"`
	// Quantiles are the Q native levels of output 0, ascending, in (0, 1).
	Quantiles []float64 `json:"quantiles"`
	// Inputs names the graph's inputs in order: ["context"] (float32
	// [B, L]), or CovariateInputs for a file that takes covariates.
	Inputs []string `json:"inputs"`
	// Outputs names the graph's outputs in order: "quantiles" (float32
	// [B, Q, H]) and optionally "mean" (float32 [B, H]).
	Outputs []string `json:"outputs"`
	// NaNPolicy is "missing": NaN in the context marks a missing point or
	// left padding, and the graph handles it.
	NaNPolicy string `json:"nan_policy"`
	// TorchVersion is the torch version that exported the file.
	TorchVersion string `json:"torch_version"`
	// Device is the device the file was exported on.
	Device string `json:"device"`
}

// CovariateInputs are the inputs of a file that takes covariates
// (libtorch/export.py --covariates, Chronos-2): context float32 [B, L];
// group_ids int64 [B], rows with equal ids form one task (its target rows,
// then its covariate rows); future_covariates float32 [B, H], the known
// future values of known-future covariate rows and NaN for every other row.
// Output 0 is [B, Q, H] for every row; the targets' rows are the forecasts.
var CovariateInputs = []string{"context", "group_ids", "future_covariates"}

// TakesCovariates says the file has CovariateInputs.
func (md Metadata) TakesCovariates() bool { return slices.Equal(md.Inputs, CovariateInputs) }

// parseMetadata decodes and checks the metadata JSON read from the file at
// path against this package and the running libtorch version. Every problem
// is reported at once.
func parseMetadata(raw, path, runtimeVersion string) (Metadata, error) {
	var md Metadata
	if strings.TrimSpace(raw) == "" {
		return md, fmt.Errorf("model file %s has no %s metadata (extra file %q in the archive): %s", path, Contract, MetadataFile, reexport)
	}
	if err := json.Unmarshal([]byte(raw), &md); err != nil {
		return md, fmt.Errorf("model file %s: metadata %q is not valid JSON: %v: %s", path, MetadataFile, err, reexport)
	}
	if md.Contract != Contract {
		return md, fmt.Errorf("model file %s: contract %q, this build reads %q: %s", path, md.Contract, Contract, reexport)
	}
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if md.ContextLength < 1 {
		bad("context_length %d must be at least 1", md.ContextLength)
	}
	if md.Horizon < 1 {
		bad("horizon %d must be at least 1", md.Horizon)
	}
	if len(md.Quantiles) == 0 {
		bad("quantiles must not be empty")
	}
	for i, q := range md.Quantiles {
		if !(q > 0 && q < 1) {
			bad("quantiles[%d] = %g is not in (0, 1)", i, q)
		} else if i > 0 && q <= md.Quantiles[i-1] {
			bad("quantiles must be strictly ascending, %g follows %g", q, md.Quantiles[i-1])
		}
	}
	if !slices.Equal(md.Inputs, []string{"context"}) && !md.TakesCovariates() {
		bad(`inputs %q: this build supports ["context"] or %q`, md.Inputs, CovariateInputs)
	}
	if !slices.Equal(md.Outputs, []string{"quantiles"}) && !slices.Equal(md.Outputs, []string{"quantiles", "mean"}) {
		bad(`outputs %q: want ["quantiles"] or ["quantiles", "mean"]`, md.Outputs)
	}
	if md.NaNPolicy != "missing" {
		bad(`nan_policy %q: want "missing" (NaN marks missing points and padding, handled inside the graph)`, md.NaNPolicy)
	}
	if md.TorchVersion == "" {
		bad("torch_version must be set")
	} else if newer(md.TorchVersion, runtimeVersion) {
		bad("exported with torch %s, newer than this binary's libtorch %s (it may use operators libtorch lacks)", md.TorchVersion, runtimeVersion)
	}
	if len(errs) > 0 {
		return md, fmt.Errorf("model file %s: metadata: %s: %s", path, strings.Join(errs, "; "), reexport)
	}
	return md, nil
}

// newer reports whether version a's major.minor is above b's. Versions that
// do not parse compare as not newer: the probe forward is the real check.
func newer(a, b string) bool {
	am, an, err1 := majorMinor(a)
	bm, bn, err2 := majorMinor(b)
	if err1 != nil || err2 != nil {
		return false
	}
	return am > bm || am == bm && an > bn
}

func majorMinor(v string) (int, int, error) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, errors.New("no minor version")
	}
	maj, err := strconv.Atoi(parts[0])
	if err != nil {
		return 0, 0, err
	}
	digits := parts[1]
	if i := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		digits = digits[:i] // "11+cpu"
	}
	minor, err := strconv.Atoi(digits)
	if err != nil {
		return 0, 0, err
	}
	return maj, minor, nil
}
