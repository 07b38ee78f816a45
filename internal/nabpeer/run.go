package nabpeer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/openanomaly/openanomaly/pkg/nab"
)

// Options configure Run.
type Options struct {
	// DataDir is the NAB corpus folder (../shared/data/nab).
	DataDir string
	// Files are the corpus keys to run; all of the corpus when empty. With
	// a subset, the NAB scores are normalised over the subset's windows
	// (nab.Corpus.Subset).
	Files []string
	// OutDir receives the results, per variant (recorded, clamped):
	// OutDir/<variant>/<category>/<file>.csv.
	OutDir string
	// WorkDir holds VictoriaMetrics' data, the rendered rules and the logs;
	// a temporary folder when empty (removed at the end unless Keep).
	WorkDir string
	Keep    bool
	// VMURL is a running VictoriaMetrics started with VMArgs; when empty,
	// Run starts one from VictoriaMetrics (default "victoria-metrics").
	VMURL           string
	VictoriaMetrics string
	// VMAlert is the vmalert binary (default "vmalert").
	VMAlert string
	// Parallel is the number of replays run at once (default 3): a replay
	// mostly waits out -replay.rulesDelay, so a few overlap well.
	Parallel int
	// RulesDelay is vmalert's -replay.rulesDelay (default 3s).
	RulesDelay time.Duration
	// Logf receives progress lines (optional).
	Logf func(format string, args ...any)
}

// Variant is one way of turning the recorded scores into NAB detections,
// with its NAB results under the three profiles.
type Variant struct {
	Name    string
	Results []*nab.Result // standard, reward_low_FP_rate, reward_low_FN_rate
}

// ReplayReport is one vmalert run.
type ReplayReport struct {
	Replay
	Wall    time.Duration
	Samples int // anomaly:score samples recorded for its files
}

// FileReport is one file's part of the run.
type FileReport struct {
	Key  string
	Grid Grid
	Assignment
	// Evaluations is the number of anomaly:score samples recorded for the
	// file; Min and Max are the smallest and largest of them.
	Evaluations int
	Min, Max    float64
}

// Report is what Run did and measured.
type Report struct {
	Files    []FileReport
	Replays  []ReplayReport
	Rows     int
	Variants []Variant

	ImportWall, ReplayWall, ReadWall, ScoreWall, Total time.Duration
	// Detections are the per-row scores as recorded (the "recorded"
	// variant), by file key.
	Detections nab.Detections `json:"-"`
}

func (o *Options) defaults() {
	if o.VictoriaMetrics == "" {
		o.VictoriaMetrics = "victoria-metrics"
	}
	if o.VMAlert == "" {
		o.VMAlert = "vmalert"
	}
	if o.Parallel <= 0 {
		o.Parallel = 3
	}
	if o.RulesDelay <= 0 {
		o.RulesDelay = 3 * time.Second
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Run runs the peer over the corpus (or o.Files) and scores it.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	start := time.Now()
	corpus, err := nab.LoadCorpus(o.DataDir)
	if err != nil {
		return nil, err
	}
	if len(o.Files) > 0 {
		if corpus, err = corpus.Subset(o.Files...); err != nil {
			return nil, err
		}
	}
	vmalert, err := exec.LookPath(o.VMAlert)
	if err != nil {
		return nil, fmt.Errorf("vmalert: %w (Debian's victoria-metrics package has it)", err)
	}
	work := o.WorkDir
	if work == "" {
		if work, err = os.MkdirTemp("", "nabpeer-"); err != nil {
			return nil, err
		}
		if !o.Keep {
			defer os.RemoveAll(work)
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	base := o.VMURL
	if base == "" {
		bin, err := exec.LookPath(o.VictoriaMetrics)
		if err != nil {
			return nil, fmt.Errorf("victoria-metrics: %w", err)
		}
		vm, err := StartVM(ctx, bin, work)
		if err != nil {
			return nil, err
		}
		defer vm.Stop()
		base = vm.URL
	}

	// Results of an earlier run (perhaps of other files) would be read
	// back with these.
	if o.OutDir != "" {
		for _, v := range []string{"recorded", "clamped"} {
			if err := os.RemoveAll(filepath.Join(o.OutDir, v)); err != nil {
				return nil, err
			}
		}
	}

	// 1. Import.
	rep := &Report{Detections: nab.Detections{}}
	t0 := time.Now()
	var series []*Series
	for _, f := range corpus.Files {
		s, err := ReadSeries(o.DataDir, f.Key)
		if err != nil {
			return nil, err
		}
		if len(s.Times) != len(f.Times) {
			return nil, fmt.Errorf("%s: %d rows, the scorer read %d", f.Key, len(s.Times), len(f.Times))
		}
		if _, err := Import(base, s); err != nil {
			return nil, fmt.Errorf("import %s: %w", f.Key, err)
		}
		series = append(series, s)
		rep.Rows += len(s.Times)
	}
	rep.ImportWall = time.Since(t0)
	o.Logf("imported %d files (%d rows) in %v", len(series), rep.Rows, rep.ImportWall.Round(time.Millisecond))

	// 2. Replay.
	t0 = time.Now()
	plan := PlanReplays(series)
	rep.Replays = make([]ReplayReport, len(plan))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, o.Parallel)
	)
	ro := ReplayOptions{VMAlert: vmalert, URL: base, Dir: work, RulesDelay: o.RulesDelay}
	for i, r := range plan {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			mu.Lock()
			failed := firstErr != nil
			mu.Unlock()
			if failed {
				return
			}
			rt := time.Now()
			name := fmt.Sprintf("replay%02d", i)
			err := RunReplay(ctx, ro, r, name)
			mu.Lock()
			defer mu.Unlock()
			rep.Replays[i] = ReplayReport{Replay: r, Wall: time.Since(rt)}
			if err != nil && firstErr == nil {
				firstErr = err
			}
			o.Logf("replay %d/%d: grid %s, %s .. %s, %d files, %d evaluations: %v",
				i+1, len(plan), r.Grid, r.From.Format(time.DateTime), r.To.Format(time.DateTime), len(r.Files), r.Evaluations(), time.Since(rt).Round(time.Millisecond))
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	rep.ReplayWall = time.Since(t0)

	// 3. Read back and assign.
	t0 = time.Now()
	replayOf := map[string]int{}
	for i, r := range plan {
		for _, k := range r.Files {
			replayOf[k] = i
		}
	}
	clamped := nab.Detections{}
	for _, s := range series {
		lo, hi := s.Span()
		match := fmt.Sprintf(`%s{file=%q,nab_grid=%q}`, ScoreMetric, s.Key, s.Grid.Label())
		got, err := Export(base, match, lo.Add(-MergeGap), hi)
		if err != nil {
			return nil, err
		}
		if len(got) != 1 {
			return nil, fmt.Errorf("%s: %d series match %s, want 1", s.Key, len(got), match)
		}
		es := got[0]
		scores, a := AssignScores(s.Times, es.Times, es.Values)
		fr := FileReport{Key: s.Key, Grid: s.Grid, Assignment: a, Evaluations: len(es.Times), Min: math.Inf(1), Max: math.Inf(-1)}
		for i, v := range es.Values {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%s: recorded score %v at %v", s.Key, v, es.Times[i])
			}
			fr.Min, fr.Max = min(fr.Min, v), max(fr.Max, v)
		}
		rep.Files = append(rep.Files, fr)
		rep.Replays[replayOf[s.Key]].Samples += len(es.Times)
		rep.Detections[s.Key] = scores
		cl := make([]float64, len(scores))
		for i, v := range scores {
			cl[i] = min(max(v, 0), 1)
		}
		clamped[s.Key] = cl
		if o.OutDir != "" {
			if err := WriteResults(filepath.Join(o.OutDir, "recorded"), s.Key, s.Times, scores); err != nil {
				return nil, err
			}
			if err := WriteResults(filepath.Join(o.OutDir, "clamped"), s.Key, s.Times, cl); err != nil {
				return nil, err
			}
		}
	}
	rep.ReadWall = time.Since(t0)

	// 4. Score. With an output folder, score what was written, so the
	// CSVs are what the numbers come from.
	t0 = time.Now()
	det := map[string]nab.Detections{"recorded": rep.Detections, "clamped": clamped}
	if o.OutDir != "" {
		for name, dir := range map[string]string{"recorded": filepath.Join(o.OutDir, "recorded"), "clamped": filepath.Join(o.OutDir, "clamped")} {
			d, err := nab.ReadResults(dir, corpus)
			if err != nil {
				return nil, fmt.Errorf("read back %s: %w", dir, err)
			}
			det[name] = d
		}
	}
	for _, name := range []string{"recorded", "clamped"} {
		v := Variant{Name: name}
		for _, p := range []string{nab.Standard, nab.RewardLowFP, nab.RewardLowFN} {
			res, err := corpus.Optimize(det[name], p)
			if err != nil {
				return nil, fmt.Errorf("score %s %s: %w", name, p, err)
			}
			v.Results = append(v.Results, res)
		}
		rep.Variants = append(rep.Variants, v)
	}
	rep.ScoreWall = time.Since(t0)
	rep.Total = time.Since(start)
	return rep, nil
}

// Check returns an error unless every file got scores from its own
// evaluations: some rows with an exact evaluation, none before the first
// evaluation beyond the file's first few rows.
func (r *Report) Check() error {
	var errs []error
	for _, f := range r.Files {
		if f.Evaluations == 0 || f.Exact == 0 {
			errs = append(errs, fmt.Errorf("%s: %d evaluations, %d rows evaluated at their timestamp", f.Key, f.Evaluations, f.Exact))
		}
		if f.Before > 1 {
			errs = append(errs, fmt.Errorf("%s: %d rows before the first evaluation", f.Key, f.Before))
		}
	}
	return errors.Join(errs...)
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	exact, earlier, before := 0, 0, 0
	for _, f := range r.Files {
		exact += f.Exact
		earlier += f.Earlier
		before += f.Before
	}
	fmt.Fprintf(&b, "Files: %d, rows: %d (%d evaluated at their own timestamp, %d took the newest evaluation before it, %d before the first evaluation got 0).\n",
		len(r.Files), r.Rows, exact, earlier, before)
	fmt.Fprintf(&b, "Replays: %d vmalert runs. Time: import %v, replays %v, read back %v, scoring %v, total %v.\n\n",
		len(r.Replays), r.ImportWall.Round(time.Millisecond), r.ReplayWall.Round(time.Second), r.ReadWall.Round(time.Millisecond), r.ScoreWall.Round(time.Millisecond), r.Total.Round(time.Second))

	b.WriteString("| score | profile | NAB score | threshold | windows detected | missed | FP rows | precision | recall | F1 |\n")
	b.WriteString("| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: |\n")
	for _, v := range r.Variants {
		for _, res := range v.Results {
			fmt.Fprintf(&b, "| %s | %s | **%.1f** | %.4g | %d | %d | %d | %.3f | %.3f | %.3f |\n",
				v.Name, res.Profile, res.Score, res.Threshold, res.Detected, res.Missed, res.FalsePositives, res.Precision, res.Recall, res.F1)
		}
	}

	// Where the standard profile's score comes from, per category.
	for _, v := range r.Variants {
		if v.Name != "recorded" || len(v.Results) == 0 {
			continue
		}
		res := v.Results[0]
		fmt.Fprintf(&b, "\nBy category (%s score, %s profile, threshold %.4g; raw = the category's share of the raw score, null = its windows × −A_FN):\n\n", v.Name, res.Profile, res.Threshold)
		b.WriteString("| category | files | windows | detected | FP rows | raw | null |\n| --- | --: | --: | --: | --: | --: | --: |\n")
		type agg struct {
			files, windows, detected, fp int
			raw                          float64
		}
		cats := map[string]*agg{}
		var order []string
		for _, f := range res.Files {
			c := path.Dir(f.Key)
			if cats[c] == nil {
				cats[c] = &agg{}
				order = append(order, c)
			}
			a := cats[c]
			a.files++
			a.windows += f.Windows
			a.detected += f.Detected
			a.fp += f.FalsePositives
			a.raw += f.Raw
		}
		fn := 1.0 // A_FN
		if res.Windows > 0 {
			fn = -res.Null / float64(res.Windows)
		}
		for _, c := range order {
			a := cats[c]
			fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %.2f | %.2f |\n", c, a.files, a.windows, a.detected, a.fp, a.raw, -fn*float64(a.windows))
		}
	}

	b.WriteString("\n| replay | grid | from (UTC) | to (UTC) | evaluations | files | score samples | wall s |\n")
	b.WriteString("| --: | --- | --- | --- | --: | --: | --: | --: |\n")
	for i, rr := range r.Replays {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %d | %d | %d | %.1f |\n", i+1, rr.Grid, rr.From.Format(time.DateTime), rr.To.Format(time.DateTime),
			rr.Evaluations(), len(rr.Files), rr.Samples, rr.Wall.Seconds())
	}

	b.WriteString("\n| file | grid | rows | at own timestamp | from an earlier evaluation (max lag) | before first | score samples | score min | score max |\n")
	b.WriteString("| --- | --- | --: | --: | --: | --: | --: | --: | --: |\n")
	for _, f := range r.Files {
		lag := ""
		if f.Earlier > 0 {
			lag = fmt.Sprintf(" (%v)", f.MaxLag)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d%s | %d | %d | %.3g | %.3g |\n", f.Key, f.Grid, f.Rows, f.Exact, f.Earlier, lag, f.Before, f.Evaluations, f.Min, f.Max)
	}
	return b.String()
}
