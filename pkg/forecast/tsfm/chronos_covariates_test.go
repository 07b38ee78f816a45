package tsfm

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/openanomaly/openanomaly/pkg/forecast/torch"
)

// Beyond the file's horizon, a known-future covariate's fed-back values are
// overwritten with its known ones, its future moves on by the block, and
// every (task, path) is a task of its own. The fake graph forecasts each row
// of a task as the newest point of the task's last row (the covariate), for
// every level and step, so the target's forecast shows what the covariate
// row's context ended with.
func TestChronos2CovariatesBeyondTheHorizon(t *testing.T) {
	md := chronosMeta("chronos-2", c2Q, 4, 2)
	md.Inputs = torch.CovariateInputs
	var calls [][]torch.Task
	fw := func(_ context.Context, tasks []torch.Task) ([][]float32, error) {
		calls = append(calls, tasks)
		var out [][]float32
		for _, tk := range tasks {
			last := tk.Rows[len(tk.Rows)-1]
			for range tk.Rows {
				o := make([]float32, len(c2Q)*md.Horizon)
				for i := range o {
					o[i] = last[len(last)-1]
				}
				out = append(out, o)
			}
		}
		return out, nil
	}
	nan := float32(math.NaN())
	task := torch.Task{
		Rows:    [][]float32{{1, 1, 1, 1}, {0, 0, 0, 0}},
		Future:  [][]float32{{nan, nan, nan, nan, nan}, {5, 6, 7, nan, 9}},
		Targets: 1,
	}
	got, err := Chronos2{}.ForecastTasks(context.Background(), md, fw, []torch.Task{task}, 5)
	if err != nil {
		t.Fatal(err)
	}
	// Block 1: 0 (the covariate's context). Block 2: the covariate's
	// context ends with its known 5 6. Block 3: 7, then the fed-back
	// forecast of step 4 (6: its future is NaN there).
	if g := fmt.Sprint(got[0][10]); g != "[0 0 6 6 6]" {
		t.Errorf("target median %s, want [0 0 6 6 6]", g)
	}
	if len(calls) != 3 || len(calls[1]) != 9 {
		t.Fatalf("%d forwards, the second of %d tasks; want 3, 9 (one per path)", len(calls), len(calls[1]))
	}
	if g := fmt.Sprint(calls[0][0].Future[1], calls[1][4].Future[1], calls[2][8].Future[1]); g != "[5 6] [7 NaN] [9 NaN]" {
		t.Errorf("futures per round %s, want [5 6] [7 NaN] [9 NaN]", g)
	}
	if g := fmt.Sprint(calls[2][3].Rows[1]); g != "[5 6 7 6]" {
		t.Errorf("covariate context in round 3 %s, want [5 6 7 6]", g)
	}
}
