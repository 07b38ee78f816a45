package report

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"strconv"
)

// WriteJSON writes r as indented JSON (NaN as null). Arrays of numbers or
// strings stay on one line: indenting every sample onto its own line would
// triple the size of a file that is mostly samples.
func WriteJSON(w io.Writer, r *Report) error {
	compact, err := json.Marshal(r)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	b.Grow(len(compact) + len(compact)/8)
	indentJSON(&b, compact)
	_, err = w.Write(b.Bytes())
	return err
}

// indentJSON indents valid compact JSON by two spaces per level, except
// that an array holding no object or array is written on one line.
func indentJSON(dst *bytes.Buffer, src []byte) {
	depth := 0
	newline := func() {
		dst.WriteByte('\n')
		for range depth {
			dst.WriteString("  ")
		}
	}
	for i := 0; i < len(src); i++ {
		switch c := src[i]; c {
		case '"':
			j := stringEnd(src, i)
			dst.Write(src[i:j])
			i = j - 1
		case '{', '[':
			if end, flat := flatArray(src, i); flat {
				dst.Write(src[i:end])
				i = end - 1
				continue
			}
			if i+1 < len(src) && (src[i+1] == '}' || src[i+1] == ']') {
				dst.Write(src[i : i+2])
				i++
				continue
			}
			dst.WriteByte(c)
			depth++
			newline()
		case '}', ']':
			depth--
			newline()
			dst.WriteByte(c)
		case ',':
			dst.WriteByte(',')
			newline()
		case ':':
			dst.WriteString(": ")
		default:
			dst.WriteByte(c)
		}
	}
	dst.WriteByte('\n')
}

// stringEnd returns the index just past the JSON string starting at i.
func stringEnd(src []byte, i int) int {
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(src)
}

// flatArray reports whether src[i] opens an array without nested arrays or
// objects, and where it ends.
func flatArray(src []byte, i int) (end int, flat bool) {
	if src[i] != '[' {
		return 0, false
	}
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '"':
			j = stringEnd(src, j) - 1
		case '[', '{':
			return 0, false
		case ']':
			return j + 1, true
		}
	}
	return 0, false
}

// nullFloat is a float64 that is null in JSON when NaN or ±Inf, and NaN
// when read back from null: the scalar sibling of Floats.
type nullFloat float64

// MarshalJSON implements json.Marshaler.
func (f nullFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *nullFloat) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*f = nullFloat(math.NaN())
		return nil
	}
	var v float64
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*f = nullFloat(v)
	return nil
}

// seriesJSON shadows Series' scalar floats with nullFloat: a series
// without a threshold, or a metric that is undefined on it (MASE of a
// constant series), has NaN there, which encoding/json refuses.
type seriesJSON struct {
	plainSeries
	LowerLevel nullFloat            `json:"lower_level"`
	UpperLevel nullFloat            `json:"upper_level"`
	Threshold  nullFloat            `json:"threshold"`
	Metrics    map[string]nullFloat `json:"metrics,omitempty"`
}

// plainSeries is Series without its methods, so that seriesJSON does not
// recurse into them.
type plainSeries Series

// MarshalJSON implements json.Marshaler, writing NaN as null.
func (s Series) MarshalJSON() ([]byte, error) {
	out := seriesJSON{
		plainSeries: plainSeries(s),
		LowerLevel:  nullFloat(s.LowerLevel),
		UpperLevel:  nullFloat(s.UpperLevel),
		Threshold:   nullFloat(s.Threshold),
	}
	if s.Metrics != nil {
		out.Metrics = make(map[string]nullFloat, len(s.Metrics))
		for k, v := range s.Metrics {
			out.Metrics[k] = nullFloat(v)
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON implements json.Unmarshaler, reading null as NaN.
func (s *Series) UnmarshalJSON(data []byte) error {
	in := seriesJSON{
		LowerLevel: nullFloat(math.NaN()),
		UpperLevel: nullFloat(math.NaN()),
		Threshold:  nullFloat(math.NaN()),
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	*s = Series(in.plainSeries)
	s.LowerLevel, s.UpperLevel, s.Threshold = float64(in.LowerLevel), float64(in.UpperLevel), float64(in.Threshold)
	s.Metrics = nil
	if in.Metrics != nil {
		s.Metrics = make(map[string]float64, len(in.Metrics))
		for k, v := range in.Metrics {
			s.Metrics[k] = float64(v)
		}
	}
	return nil
}
