package nab

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Detections holds a detector's output: per corpus file key (e.g.
// "realKnownCause/nyc_taxi.csv"), one anomaly score per data row, in file
// order. A row is a detection when its score is at least the threshold.
// Scores are usually in [0, 1], as NAB expects, but any finite value works.
type Detections map[string][]float64

// NewDetections returns zero scores for every row of every file of c, for a
// detector to fill in: d[key][i] is the score of row i of file key, whose
// timestamp is c.File(key).Times[i].
func (c *Corpus) NewDetections() Detections {
	d := make(Detections, len(c.Files))
	for _, f := range c.Files {
		d[f.Key] = make([]float64, len(f.Times))
	}
	return d
}

// Result is a detector's NAB result under one profile and one threshold,
// over a whole corpus.
type Result struct {
	// Profile is the scoring profile's name.
	Profile string `json:"profile"`
	// Threshold is the anomaly score from which a row counts as a
	// detection. When no detection was best, Optimize reports NAB's 1.1
	// (or a value just above the highest score, when scores reach 1.1).
	Threshold float64 `json:"threshold"`
	// Score is the normalised NAB score, 100·(Raw − Null)/(Perfect − Null):
	// 100 is perfect, 0 is a detector that never fires.
	Score float64 `json:"score"`
	// Raw is the sum of every window's and every false positive's
	// contribution (NAB's S_D).
	Raw float64 `json:"raw"`
	// Null is the raw score of a detector that never fires, −A_FN per
	// window with a scored row; Perfect is A_TP per window.
	Null    float64 `json:"null"`
	Perfect float64 `json:"perfect"`
	Counts
	// Files are the per-file results, sorted by key.
	Files []FileResult `json:"files"`
}

// FileResult is one file's part of a Result.
type FileResult struct {
	Key string  `json:"file"`
	Raw float64 `json:"raw"`
	// Score is the file's raw score normalised with its own null and
	// perfect scores; nil for a file without windows, where it is
	// undefined. NAB publishes no per-file normalised scores.
	Score *float64 `json:"score,omitempty"`
	Counts
}

// Counts are the detection counts behind a result. Precision, recall and
// F1 are computed over windows, with NAB's own unit of credit:
//
//   - a window is a true positive (Detected) when at least one detection
//     falls in it, and a false negative (Missed) otherwise, however many
//     rows it spans or detections it holds, because NAB credits only a
//     window's earliest detection;
//   - every detection outside all windows is a false positive, one per
//     row, because NAB charges every such row;
//   - rows in the probationary period count for nothing.
//
// So Precision = Detected/(Detected+FalsePositives), Recall =
// Detected/Windows and F1 their harmonic mean, each 0 when undefined (no
// detections, no windows). A detector that fires on many consecutive rows
// outside a window is charged for each, as NAB's score charges it.
type Counts struct {
	// Windows is the number of labelled windows.
	Windows  int `json:"windows"`
	Detected int `json:"detected"`
	Missed   int `json:"missed"`
	// FalsePositives is the number of detections outside every window.
	FalsePositives int `json:"false_positives"`
	// Detections is the number of scored rows at or above the threshold.
	Detections int     `json:"detections"`
	Precision  float64 `json:"precision"`
	Recall     float64 `json:"recall"`
	F1         float64 `json:"f1"`
	// Rows are NAB's row counts (its *_scores.csv TP, TN, FP, FN columns):
	// scored rows inside windows (TP detected, FN not) and outside (FP
	// detected, TN not).
	Rows RowCounts `json:"rows"`
}

// RowCounts are NAB's per-row confusion counts over the scored rows.
type RowCounts struct {
	TP int `json:"tp"`
	TN int `json:"tn"`
	FP int `json:"fp"`
	FN int `json:"fn"`
}

func (c *Counts) add(o Counts) {
	c.Windows += o.Windows
	c.Detected += o.Detected
	c.Missed += o.Missed
	c.FalsePositives += o.FalsePositives
	c.Detections += o.Detections
	c.Rows.TP += o.Rows.TP
	c.Rows.TN += o.Rows.TN
	c.Rows.FP += o.Rows.FP
	c.Rows.FN += o.Rows.FN
}

func (c *Counts) rates() {
	c.Precision = ratio(c.Detected, c.Detected+c.FalsePositives)
	c.Recall = ratio(c.Detected, c.Windows)
	if c.Precision+c.Recall > 0 {
		c.F1 = 2 * c.Precision * c.Recall / (c.Precision + c.Recall)
	}
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// ScaledSigmoid is NAB's scoring curve of a relative position y:
// 2/(1+e^{5y}) − 1, and −1 for y > 3. σ(−1) ≈ 0.98661 is the left edge of
// a window, σ(0) = 0 its right edge.
func ScaledSigmoid(y float64) float64 {
	if y > 3 {
		return -1
	}
	return 2/(1+math.Exp(5*y)) - 1
}

// Row classes of a file's sweep.
const (
	rowProbation = -2 // not scored
	rowOutside   = -1 // outside every window: a detection is a false positive
)

// sweep gives every row of f its class (a window index, rowOutside or
// rowProbation) and the contribution a detection on it makes under p:
// A_TP·σ(y)/σ(−1) inside a window, A_FP·σ(y) (or −A_FP with no window
// before it) outside. It walks the rows in order as NAB's sweeper does,
// so a false positive's distance is measured from the last window whose
// end row precedes it.
func (f *File) sweep(p Profile) (class []int, weight []float64) {
	class = make([]int, len(f.Times))
	weight = make([]float64, len(f.Times))
	maxTP := ScaledSigmoid(-1)
	next, prev := 0, -1 // next window to enter; last window left
	for i := range f.Times {
		in := -1
		if next < len(f.Windows) && i >= f.Windows[next].First {
			in = next
			if i == f.Windows[next].Last {
				next++
			}
		}
		switch {
		case in >= 0:
			w := f.Windows[in]
			y := -float64(w.Last-i+1) / float64(w.Width())
			class[i], weight[i] = in, p.TP*ScaledSigmoid(y)/maxTP
		case prev < 0:
			class[i], weight[i] = rowOutside, -p.FP
		default:
			// NAB divides by W−1, which is 0 for a one-row window (NAB
			// fails there); such a window's false positives are taken as
			// far away, costing −A_FP.
			w := f.Windows[prev]
			y := math.Inf(1)
			if w.Width() > 1 {
				y = float64(i-w.Last) / float64(w.Width()-1)
			}
			class[i], weight[i] = rowOutside, p.FP*ScaledSigmoid(y)
		}
		if in >= 0 && i == f.Windows[in].Last {
			prev = in
		}
		if i < f.Probation {
			class[i] = rowProbation
		}
	}
	return class, weight
}

// check returns an error unless d holds finite scores for exactly the files
// of c, each with one score per row.
func (c *Corpus) check(d Detections) error {
	var missing, unknown, errs []string
	for _, f := range c.Files {
		s, ok := d[f.Key]
		if !ok {
			missing = append(missing, f.Key)
			continue
		}
		if len(s) != len(f.Times) {
			errs = append(errs, fmt.Sprintf("%s: %d scores for %d rows", f.Key, len(s), len(f.Times)))
			continue
		}
		for i, v := range s {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				errs = append(errs, fmt.Sprintf("%s: row %d (%s): score %v is not finite",
					f.Key, i+1, f.Times[i].Format(timeLayout), v))
				break
			}
		}
	}
	for k := range d {
		if c.byKey[k] == nil {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	if len(missing) > 0 {
		shown := missing
		more := ""
		if len(shown) > 5 {
			shown, more = shown[:5], fmt.Sprintf(" and %d more", len(missing)-5)
		}
		errs = append(errs, fmt.Sprintf("no scores for %d of %d files: %s%s (to score only the files given, use a subset of the corpus: openanomaly nab score --subset)",
			len(missing), len(c.Files), strings.Join(shown, ", "), more))
	}
	if len(unknown) > 0 {
		errs = append(errs, fmt.Sprintf("scores for files not in the corpus: %s", strings.Join(unknown, ", ")))
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// timeLayout formats timestamps in messages the way NAB's files write them.
const timeLayout = "2006-01-02 15:04:05"

// Score scores d under the named profile with a fixed threshold: a row is a
// detection when its score is ≥ threshold. d must cover every file of c
// (use Subset to score part of the corpus).
func (c *Corpus) Score(d Detections, profile string, threshold float64) (*Result, error) {
	p, err := c.Profile(profile)
	if err != nil {
		return nil, err
	}
	if math.IsNaN(threshold) {
		return nil, errors.New("threshold is NaN")
	}
	if err := c.check(d); err != nil {
		return nil, err
	}
	return c.score(d, p, threshold), nil
}

func (c *Corpus) score(d Detections, p Profile, threshold float64) *Result {
	r := &Result{Profile: p.Name, Threshold: threshold, Files: make([]FileResult, 0, len(c.Files))}
	for _, f := range c.Files {
		fr := scoreFile(f, d[f.Key], p, threshold)
		r.Raw += fr.Raw
		r.Counts.add(fr.Counts)
		r.Null += fr.null
		r.Perfect += fr.perfect
		if fr.Windows > 0 {
			s := normalise(fr.Raw, fr.null, fr.perfect)
			fr.Score = &s
		}
		r.Files = append(r.Files, fr.FileResult)
	}
	r.Counts.rates()
	r.Score = normalise(r.Raw, r.Null, r.Perfect)
	return r
}

func normalise(raw, null, perfect float64) float64 {
	if perfect == null {
		return 0
	}
	return 100 * (raw - null) / (perfect - null)
}

type fileScore struct {
	FileResult
	null, perfect float64
}

func scoreFile(f *File, scores []float64, p Profile, threshold float64) fileScore {
	class, weight := f.sweep(p)
	// best[k] is window k's contribution: −A_FN until a detection lands in
	// it, then the largest detection weight (NAB keeps the maximum, which
	// is the earliest detection's, since the weight grows towards the
	// window's start). scored[k] says whether the window has a scored row:
	// one wholly inside the probationary period is not scored at all.
	best := make([]float64, len(f.Windows))
	scored := make([]bool, len(f.Windows))
	hit := make([]bool, len(f.Windows))
	fs := fileScore{FileResult: FileResult{Key: f.Key}}
	fs.Windows = len(f.Windows)
	var fp float64
	for i, k := range class {
		if k == rowProbation {
			continue
		}
		det := scores[i] >= threshold
		if det {
			fs.Detections++
		}
		if k == rowOutside {
			if det {
				fs.FalsePositives++
				fs.Rows.FP++
				fp += weight[i]
			} else {
				fs.Rows.TN++
			}
			continue
		}
		if !scored[k] {
			scored[k], best[k] = true, -p.FN
		}
		if det {
			fs.Rows.TP++
			hit[k] = true
			best[k] = max(best[k], weight[i])
		} else {
			fs.Rows.FN++
		}
	}
	for k := range f.Windows {
		if scored[k] {
			fs.Raw += best[k]
			fs.null -= p.FN
		}
		if hit[k] {
			fs.Detected++
		}
	}
	fs.Missed = fs.Windows - fs.Detected
	fs.Raw += fp
	fs.perfect = p.TP * float64(len(f.Windows))
	fs.Counts.rates()
	return fs
}

// noDetection returns the threshold reported when detecting nothing scores
// best: NAB's 1.1, or the next float above the highest score when scores
// reach it.
func noDetection(highest float64) float64 {
	if highest < 1.1 {
		return 1.1
	}
	return math.Nextafter(highest, math.Inf(1))
}

// Optimize finds the threshold with the best raw score under the named
// profile over the whole corpus, as NAB's optimiser does, and returns the
// result at that threshold. Every distinct score value is tried (plus
// detecting nothing); the corpus' scored rows are sorted once by score and
// swept from the highest down, so it takes O(n log n) for n rows. Among
// thresholds with equal raw scores the highest wins, as in NAB. d must
// cover every file of c (use Subset to score part of the corpus).
func (c *Corpus) Optimize(d Detections, profile string) (*Result, error) {
	p, err := c.Profile(profile)
	if err != nil {
		return nil, err
	}
	if err := c.check(d); err != nil {
		return nil, err
	}
	type point struct {
		score, weight float64
		window        int // index into parts, or rowOutside
	}
	var (
		points  []point
		parts   []float64 // each window's current contribution
		total   float64
		highest = math.Inf(-1)
	)
	for _, f := range c.Files {
		class, weight := f.sweep(p)
		base := len(parts)
		seen := make([]bool, len(f.Windows))
		for i, k := range class {
			if k == rowProbation {
				continue
			}
			s := d[f.Key][i]
			highest = max(highest, s)
			if k == rowOutside {
				points = append(points, point{s, weight[i], rowOutside})
				continue
			}
			seen[k] = true
			points = append(points, point{s, weight[i], base + k})
		}
		for _, ok := range seen {
			// A window without a scored row has no part, as in NAB.
			part := 0.0
			if ok {
				part = -p.FN
			}
			parts = append(parts, part)
			total += part
		}
	}
	slices.SortStableFunc(points, func(a, b point) int { return cmp.Compare(b.score, a.score) })

	bestRaw, bestThreshold := total, noDetection(highest)
	for i := 0; i < len(points); {
		s := points[i].score
		for ; i < len(points) && points[i].score == s; i++ {
			pt := points[i]
			if pt.window == rowOutside {
				total += pt.weight
				continue
			}
			if pt.weight > parts[pt.window] {
				total += pt.weight - parts[pt.window]
				parts[pt.window] = pt.weight
			}
		}
		// Strictly better only: on a tie the higher threshold, seen first,
		// stays.
		if total > bestRaw {
			bestRaw, bestThreshold = total, s
		}
	}
	return c.score(d, p, bestThreshold), nil
}
