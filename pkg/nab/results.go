package nab

import (
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ReadResults reads a detector's output for the files of c from dir, one CSV
// per data file, laid out like the corpus: dir/<category>/<file>.csv, or
// dir/<category>/<detector>_<file>.csv as NAB's results folders name them
// (results/<detector>/<category>/<detector>_<file>.csv). Each CSV has a
// header with at least the columns timestamp and anomaly_score, in any
// order (NAB's results files add value, label and S(t) columns), and one
// row per data row, in the data file's order, with the same timestamps.
//
// It returns the detections of the files it found; Score and Optimize
// report any file of the corpus that is missing. A CSV that matches no
// corpus file, two CSVs for one file, and any bad row are errors naming
// the file and line. Files outside the category folders (NAB's
// <detector>_<profile>_scores.csv) are ignored.
func ReadResults(dir string, c *Corpus) (Detections, error) {
	cats, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	byCat := map[string][]*File{}
	for _, f := range c.Files {
		cat := path.Dir(f.Key)
		byCat[cat] = append(byCat[cat], f)
	}
	d := Detections{}
	from := map[string]string{}
	for _, cat := range cats {
		if !cat.IsDir() {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(dir, cat.Name()))
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".csv") {
				continue
			}
			file := filepath.Join(dir, cat.Name(), e.Name())
			f := matchResult(byCat[cat.Name()], e.Name())
			if f == nil {
				return nil, fmt.Errorf("%s: no corpus file %s/%s, nor one whose name it ends with after a detector prefix", file, cat.Name(), e.Name())
			}
			if prev, ok := from[f.Key]; ok {
				return nil, fmt.Errorf("%s and %s are both results for %s", prev, file, f.Key)
			}
			scores, err := readScoresFile(file, f)
			if err != nil {
				return nil, err
			}
			d[f.Key] = scores
			from[f.Key] = file
		}
	}
	return d, nil
}

// matchResult returns the file among files (one category's) whose name is
// name, or else the one with the longest name that name ends with after a
// "<prefix>_".
func matchResult(files []*File, name string) *File {
	var best *File
	for _, f := range files {
		base := path.Base(f.Key)
		if base == name {
			return f
		}
		if strings.HasSuffix(name, "_"+base) && (best == nil || len(base) > len(path.Base(best.Key))) {
			best = f
		}
	}
	return best
}

func readScoresFile(p string, f *File) ([]float64, error) {
	r, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return ReadScores(r, p, f)
}

// ReadScores reads one detector output CSV for the data file f from r
// (name is used in messages): a header with the columns timestamp and
// anomaly_score (others are ignored), then one row per data row of f, in
// its order and with its timestamps (NAB's "YYYY-MM-DD HH:MM:SS" or RFC
// 3339). Errors name the file and line.
func ReadScores(r io.Reader, name string, f *File) ([]float64, error) {
	scores := make([]float64, 0, len(f.Times))
	err := scanCSV(r, name, func(header []string) (func(int, []string) error, error) {
		ti, si := slices.Index(header, "timestamp"), slices.Index(header, "anomaly_score")
		if ti < 0 || si < 0 {
			return nil, fmt.Errorf("header %q lacks timestamp or anomaly_score", strings.Join(header, ","))
		}
		return func(line int, rec []string) error {
			i := len(scores)
			if i >= len(f.Times) {
				return fmt.Errorf("more rows than the %d of %s", len(f.Times), f.Key)
			}
			t, err := parseTime(rec[ti])
			if err != nil {
				return err
			}
			if !t.Equal(f.Times[i]) {
				return fmt.Errorf("timestamp %s, want %s (row %d of %s; rows must follow the data file's order)",
					rec[ti], f.Times[i].Format(timeLayout), i+1, f.Key)
			}
			v, err := strconv.ParseFloat(rec[si], 64)
			if err != nil {
				return fmt.Errorf("anomaly_score %q is not a number", rec[si])
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("anomaly_score %q is not finite", rec[si])
			}
			scores = append(scores, v)
			return nil
		}, nil
	})
	if err != nil {
		return nil, err
	}
	if len(scores) != len(f.Times) {
		return nil, fmt.Errorf("%s: %d rows, %s has %d", name, len(scores), f.Key, len(f.Times))
	}
	return scores, nil
}
