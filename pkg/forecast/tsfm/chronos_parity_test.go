//go:build libtorch

package tsfm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openanomaly/openanomaly/internal/shareddata"
	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/forecast/torch"
)

// chronosParityTolerance bounds |Go - official pipeline| per series,
// quantile and step, relative to the series' scale (the largest |value| of
// the pipeline's forecasts for it, at least 1). Both sides run the same
// libtorch on the same float32 inputs with the whole batch in one forward
// (batch_size 256 here, batch_size 256 in the pipeline), so the first block
// is the same arithmetic; the feedback blocks add the adapters' float32
// reductions (torch.quantile, weighted_quantile), which mirror the
// pipelines' operation by operation. Observed: see the test log (0 or a few
// float32 ulps of the scale).
const chronosParityTolerance = 1e-5

type parityFile struct {
	TorchVersion string `json:"torch_version"`
	Context      int    `json:"context"`
	Series       []struct {
		Name    string     `json:"name"`
		History []*float64 `json:"history"`
	} `json:"series"`
	Models []struct {
		ModelID   string    `json:"model_id"`
		File      string    `json:"file"`
		Family    string    `json:"family"`
		Horizon   int       `json:"horizon"`
		Quantiles []float64 `json:"quantiles"`
		Cases     []struct {
			Horizon   int           `json:"horizon"`
			Quantiles [][][]float64 `json:"quantiles"`
		} `json:"cases"`
	} `json:"models"`
	Covariates struct {
		File            string     `json:"file"`
		Tasks           [][]string `json:"tasks"`
		Horizon         int        `json:"horizon"`
		MaxDifference   float64    `json:"max_difference"`
		CovariateEffect float64    `json:"covariate_effect"`
		Quantiles       []float64  `json:"quantiles"`
		Inputs          []struct {
			Target      []*float64 `json:"target"`
			Past        []*float64 `json:"past"`
			KnownPast   []*float64 `json:"known_past"`
			KnownFuture []*float64 `json:"known_future"`
		} `json:"inputs"`
		Cases []struct {
			Horizon   int           `json:"horizon"`
			Quantiles [][][]float64 `json:"quantiles"`
		} `json:"cases"`
	} `json:"covariates"`
}

// TestChronosParity: Chronos-Bolt (tiny) and Chronos-2 (small) with random
// weights of a fixed seed, exported by libtorch/export.py, forecast real
// NAB and BOOM series through torch.New + Forecast (this package's
// adapters beyond the file's horizon) and through the official pipelines'
// predict_quantiles (libtorch/parity_chronos.py); every series, quantile
// and step must agree.
func TestChronosParity(t *testing.T) {
	py := os.Getenv("OPENANOMALY_TORCH_PYTHON")
	if py == "" {
		t.Skip("OPENANOMALY_TORCH_PYTHON is unset: make test-libtorch sets it to the torch venv's python (with the export tool's packages from make export-deps)")
	}
	if out, err := exec.Command(py, "-c", "import chronos").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import chronos (%v: %s): run make export-deps (libtorch/get-export-deps.sh) to install the export tool's packages into that venv", py, err, out)
	}
	data := shareddata.Dir(t)
	dir := t.TempDir()
	start := time.Now()
	cmd := exec.Command(py, filepath.Join("..", "..", "..", "libtorch", "parity_chronos.py"), "--data", data, dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("parity_chronos.py: %v\n%s", err, out)
	}
	t.Logf("exports and pipeline reference: %.1f s", time.Since(start).Seconds())
	b, err := os.ReadFile(filepath.Join(dir, "parity.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref parityFile
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	hists := make([][]float64, len(ref.Series))
	gaps := 0
	for i, s := range ref.Series {
		hists[i] = make([]float64, len(s.History))
		for j, v := range s.History {
			hists[i][j] = math.NaN()
			if v != nil {
				hists[i][j] = *v
			} else {
				gaps++
			}
		}
	}
	if gaps == 0 || len(hists) < 4 {
		t.Fatalf("want several series with gaps, got %d series, %d NaNs", len(hists), gaps)
	}

	for _, m := range ref.Models {
		model, err := torch.New(config.TorchScriptConfig{Path: filepath.Join(dir, m.File), Device: "cpu", BatchSize: 256, Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		md := model.Metadata()
		if md.Family != m.Family || md.ContextLength != ref.Context || md.Horizon != m.Horizon || len(md.Quantiles) != len(m.Quantiles) {
			t.Fatalf("%s: metadata %+v", m.File, md)
		}
		beyond := false
		for _, c := range m.Cases {
			beyond = beyond || c.Horizon > m.Horizon
			got, err := model.Forecast(context.Background(), forecast.Request{Histories: hists, Step: time.Minute, Horizon: c.Horizon, Quantiles: m.Quantiles})
			if err != nil {
				t.Fatalf("%s horizon %d: %v", m.File, c.Horizon, err)
			}
			worst := 0.0
			for r, f := range got {
				if f.Err != nil {
					t.Fatalf("%s horizon %d, %s: %v", m.File, c.Horizon, ref.Series[r].Name, f.Err)
				}
				want := c.Quantiles[r]
				scale := 1.0
				for _, lv := range want {
					for _, v := range lv {
						scale = math.Max(scale, math.Abs(v))
					}
				}
				bad := 0
				for k := range want {
					if len(f.Values[k]) != c.Horizon || len(want[k]) != c.Horizon {
						t.Fatalf("%s horizon %d: %d steps from Go, %d from Python", m.File, c.Horizon, len(f.Values[k]), len(want[k]))
					}
					for s, w := range want[k] {
						d := math.Abs(f.Values[k][s]-w) / scale
						worst = math.Max(worst, d)
						if !(d <= chronosParityTolerance) && bad < 5 {
							bad++
							t.Errorf("%s horizon %d, %s: q%g step %d = %.9g, pipeline %.9g (%.3g of scale %.4g)",
								m.File, c.Horizon, ref.Series[r].Name, m.Quantiles[k], s+1, f.Values[k][s], w, d, scale)
						}
					}
				}
			}
			t.Log(fmt.Sprintf("%s (%s), file horizon %d, horizon %d: %d series, largest difference %.3g of the series' scale (tolerance %g)",
				m.ModelID, m.Family, m.Horizon, c.Horizon, len(got), worst, chronosParityTolerance))
		}
		if !beyond {
			t.Errorf("%s: no horizon beyond the file's", m.File)
		}
		model.Close()
	}

	// The covariate case: the --covariates Chronos-2 file (inputs context,
	// group_ids, future_covariates). In Python, the graph called directly
	// equals the pipeline with a past-only and a known-future covariate per
	// task; here the sidecar's path (Forecast with Request.Covariates, the
	// batcher's tasks, the Chronos-2 adapter) equals the pipeline, within
	// the file's horizon and beyond it (the unrolling that overwrites the
	// known-future covariate's fed-back values with its known ones).
	cv := ref.Covariates
	if cv.File == "" {
		t.Fatal("parity.json has no covariate case")
	}
	t.Logf("covariates (%d tasks: target, past-only, known-future; horizon %d): exported graph vs Chronos2Pipeline, largest difference %.3g of the target's scale (tolerance %g); the covariates move the targets by up to %.3g",
		len(cv.Tasks), cv.Horizon, cv.MaxDifference, chronosParityTolerance, cv.CovariateEffect)
	if !(cv.MaxDifference <= chronosParityTolerance) {
		t.Errorf("covariates: the exported graph differs from the pipeline by %.3g of the scale", cv.MaxDifference)
	}
	if !(cv.CovariateEffect > 1e-3) {
		t.Errorf("covariates move the forecasts by only %.3g: the case does not exercise them", cv.CovariateEffect)
	}
	model, err := torch.New(config.TorchScriptConfig{Path: filepath.Join(dir, cv.File), Device: "cpu", BatchSize: 256, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	if !forecast.TakesCovariates(model) {
		t.Fatalf("%s: the model does not take covariates (metadata %+v)", cv.File, model.Metadata())
	}
	vals := func(xs []*float64) []float64 {
		out := make([]float64, len(xs))
		for i, v := range xs {
			out[i] = math.NaN()
			if v != nil {
				out[i] = *v
			}
		}
		return out
	}
	if len(cv.Cases) < 2 {
		t.Fatalf("covariates: %d cases, want the file's horizon and beyond", len(cv.Cases))
	}
	for _, c := range cv.Cases {
		req := forecast.Request{Step: time.Minute, Horizon: c.Horizon, Quantiles: cv.Quantiles}
		for _, in := range cv.Inputs {
			req.Histories = append(req.Histories, vals(in.Target))
			known := append(vals(in.KnownPast), vals(in.KnownFuture)[:c.Horizon]...)
			req.Covariates = append(req.Covariates, []forecast.Covariate{
				{Name: "p", Values: vals(in.Past)},
				{Name: "f", KnownFuture: true, Values: known},
			})
		}
		got, err := model.Forecast(context.Background(), req)
		if err != nil {
			t.Fatalf("covariates, horizon %d: %v", c.Horizon, err)
		}
		worst := 0.0
		for r, f := range got {
			if f.Err != nil {
				t.Fatalf("covariates, horizon %d, task %v: %v", c.Horizon, cv.Tasks[r], f.Err)
			}
			want := c.Quantiles[r]
			scale := 1.0
			for _, lv := range want {
				for _, v := range lv {
					scale = math.Max(scale, math.Abs(v))
				}
			}
			bad := 0
			for k := range want {
				if len(f.Values[k]) != c.Horizon || len(want[k]) != c.Horizon {
					t.Fatalf("covariates, horizon %d: %d steps from Go, %d from Python", c.Horizon, len(f.Values[k]), len(want[k]))
				}
				for s, w := range want[k] {
					d := math.Abs(f.Values[k][s]-w) / scale
					worst = math.Max(worst, d)
					if !(d <= chronosParityTolerance) && bad < 5 {
						bad++
						t.Errorf("covariates, horizon %d, task %v: q%g step %d = %.9g, pipeline %.9g (%.3g of scale %.4g)",
							c.Horizon, cv.Tasks[r], cv.Quantiles[k], s+1, f.Values[k][s], w, d, scale)
					}
				}
			}
		}
		t.Logf("covariates through the sidecar (%s, file horizon %d, horizon %d): %d tasks, largest difference %.3g of the target's scale (tolerance %g)",
			cv.File, cv.Horizon, c.Horizon, len(got), worst, chronosParityTolerance)
	}
}

// TestExportRefusesBadArguments: libtorch/export.py exits 2 with a message
// that says what is wrong, and writes nothing.
func TestExportRefusesBadArguments(t *testing.T) {
	py := os.Getenv("OPENANOMALY_TORCH_PYTHON")
	if py == "" {
		t.Skip("OPENANOMALY_TORCH_PYTHON is unset: make test-libtorch sets it to the torch venv's python")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "x.pt")
	for _, c := range []struct {
		args []string
		want []string // one of them
	}{
		{[]string{"--model", "foo/bar"}, []string{"unknown model 'foo/bar'; known models: amazon/chronos-bolt-tiny, amazon/chronos-bolt-mini"}},
		{[]string{"--model", "amazon/chronos-bolt-tiny", "--context", "500"}, []string{"--context 500: amazon/chronos-bolt-tiny takes contexts that are a positive multiple of its patch size 16"}},
		{[]string{"--model", "autogluon/chronos-2-small", "--context", "16384"}, []string{"--context 16384: autogluon/chronos-2-small takes at most 8192 points"}},
		{[]string{"--model", "amazon/chronos-bolt-small", "--horizon", "65"}, []string{"--horizon 65: out of range for amazon/chronos-bolt-small, 1..64 steps per file"}},
		{[]string{"--model", "amazon/chronos-2", "--device", "cuda:99"}, []string{"--device cuda:99: CUDA is not available on this machine", "--device cuda:99: only "}},
	} {
		args := append([]string{filepath.Join("..", "..", "..", "libtorch", "export.py")}, c.args...)
		cmd := exec.Command(py, append(args, "--random-init", "--out", out)...)
		b, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("export.py %v: %v, want exit status 2\n%s", c.args, err, b)
			continue
		}
		ok := false
		for _, w := range c.want {
			ok = ok || strings.Contains(string(b), w)
		}
		if !ok {
			t.Errorf("export.py %v said:\n%s\nwant %q", c.args, b, c.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("export.py %v wrote %s", c.args, out)
		}
	}
}
