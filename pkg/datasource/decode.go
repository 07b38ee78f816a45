package datasource

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
)

// decodeResponse reads a query API answer from r.
//
// Answers can be hundreds of megabytes (10,000 series × 1,440 points), so
// the envelope is walked token by token and each series is decoded on its
// own; only the current series' JSON is ever buffered. Keys are accepted in
// any order, unknown keys are skipped.
func decodeResponse(r io.Reader) (Result, error) {
	dec := json.NewDecoder(r)
	res, err := decodeEnvelope(dec)
	if err != nil {
		var apiErr *Error
		if errors.As(err, &apiErr) {
			return Result{}, err
		}
		return Result{}, fmt.Errorf("decode response (near byte %d): %w", dec.InputOffset(), err)
	}
	return res, nil
}

func decodeEnvelope(dec *json.Decoder) (Result, error) {
	var (
		res                     Result
		status, errType, errMsg string
		sawData                 bool
	)
	if err := expectDelim(dec, '{'); err != nil {
		return Result{}, err
	}
	for dec.More() {
		key, err := readKey(dec)
		if err != nil {
			return Result{}, err
		}
		switch key {
		case "status":
			err = dec.Decode(&status)
		case "errorType":
			err = dec.Decode(&errType)
		case "error":
			err = dec.Decode(&errMsg)
		case "warnings":
			// Prometheus warnings and Thanos' partial-response notes.
			var w []string
			err = dec.Decode(&w)
			res.Warnings = append(res.Warnings, w...)
		case "isPartial":
			// VictoriaMetrics (cluster) sets this when a vmstorage node did
			// not answer.
			err = dec.Decode(&res.Partial)
		case "data":
			if status == "error" {
				err = skipValue(dec)
				break
			}
			res.Series, err = decodeData(dec)
			sawData = true
		default:
			// Includes Prometheus' "infos": hints about the query's style
			// (e.g. rate() over a metric not named like a counter), not
			// about the data being incomplete, so they are not warnings.
			err = skipValue(dec)
		}
		if err != nil {
			return Result{}, fmt.Errorf("%q: %w", key, err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return Result{}, err
	}
	switch status {
	case "success":
	case "error":
		if errMsg == "" {
			errMsg = "(no error message)"
		}
		return Result{}, &Error{Type: errType, Msg: errMsg}
	case "":
		return Result{}, errors.New("no status in response")
	default:
		return Result{}, fmt.Errorf("unknown status %q", status)
	}
	if !sawData {
		return Result{}, errors.New("no data in response")
	}

	// Sorted output makes results comparable across stores, and lets
	// duplicates be found without a set.
	slices.SortFunc(res.Series, func(a, b Series) int { return labels.Compare(a.Labels, b.Labels) })
	for i := 1; i < len(res.Series); i++ {
		if labels.Equal(res.Series[i-1].Labels, res.Series[i].Labels) {
			return Result{}, fmt.Errorf("duplicate series %s in result", res.Series[i].Labels)
		}
	}
	return res, nil
}

// decodeData reads the "data" object and returns its matrix.
func decodeData(dec *json.Decoder) ([]Series, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, errors.New("data is null")
	}
	if tok != json.Delim('{') {
		return nil, fmt.Errorf("data is %v, want an object", tok)
	}
	var (
		resultType string
		series     []Series
		sawResult  bool
	)
	for dec.More() {
		key, err := readKey(dec)
		if err != nil {
			return nil, err
		}
		switch key {
		case "resultType":
			if err := dec.Decode(&resultType); err != nil {
				return nil, fmt.Errorf("resultType: %w", err)
			}
			if resultType != "matrix" {
				// A vector or scalar means the URL is not a query_range
				// endpoint, or a proxy rewrote the request.
				return nil, fmt.Errorf("result type is %q, want matrix", resultType)
			}
		case "result":
			if series, err = decodeMatrix(dec); err != nil {
				return nil, err
			}
			sawResult = true
		default:
			if err := skipValue(dec); err != nil {
				return nil, err
			}
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, err
	}
	if resultType == "" {
		return nil, errors.New("no resultType in data")
	}
	if !sawResult {
		return nil, errors.New("no result in data")
	}
	return series, nil
}

// seriesJSON is one element of a matrix.
type seriesJSON struct {
	Metric map[string]string `json:"metric"`
	Values samplesJSON       `json:"values"`
	// Histograms holds native histogram samples (Prometheus 3); models
	// take floats only.
	Histograms json.RawMessage `json:"histograms"`
}

// decodeMatrix reads the "result" array of a matrix.
func decodeMatrix(dec *json.Decoder) ([]Series, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok == nil { // null: no series
		return nil, nil
	}
	if tok != json.Delim('[') {
		return nil, fmt.Errorf("result is %v, want an array", tok)
	}
	var (
		out []Series
		b   labels.ScratchBuilder
	)
	for i := 0; dec.More(); i++ {
		var sj seriesJSON // fresh each time: Decode would merge into an old map
		if err := dec.Decode(&sj); err != nil {
			return nil, fmt.Errorf("result[%d]: %w", i, err)
		}
		b.Reset()
		for name, value := range sj.Metric {
			// An empty value is the same as no label.
			if value != "" {
				b.Add(name, value)
			}
		}
		b.Sort()
		lset := b.Labels()
		if len(sj.Histograms) > 0 && !bytes.Equal(sj.Histograms, []byte("null")) {
			return nil, fmt.Errorf("series %s has native histogram samples; use an expression that returns floats (e.g. histogram_quantile)", lset)
		}
		out = append(out, Series{Labels: lset, Samples: sj.Values})
	}
	if err := expectDelim(dec, ']'); err != nil {
		return nil, err
	}
	return out, nil
}

// samplesJSON decodes a matrix series' values, [[1435781451.781,"1"],...],
// with a hand-written parser: it is the bulk of every answer.
type samplesJSON []Sample

// UnmarshalJSON implements json.Unmarshaler.
func (s *samplesJSON) UnmarshalJSON(b []byte) error {
	p := parser{b: b}
	if p.literal("null") {
		*s = nil
		return nil
	}
	if !p.consume('[') {
		return p.errorf("values is not an array")
	}
	// Every sample opens one '['; values never contain one.
	out := make([]Sample, 0, max(0, bytes.Count(b, []byte{'['})-1))
	if p.consume(']') {
		*s = out
		return nil
	}
	for {
		if !p.consume('[') {
			return p.errorf("want [ opening a sample")
		}
		ts, err := parseTimestamp(p.number())
		if err != nil {
			return p.errorf("%v", err)
		}
		if !p.consume(',') {
			return p.errorf("want , after the timestamp")
		}
		str, ok := p.simpleString()
		if !ok {
			return p.errorf("want the sample value as a string")
		}
		// ParseFloat reads "NaN", "+Inf" and "-Inf" as Prometheus writes them.
		v, err := strconv.ParseFloat(string(str), 64)
		if err != nil {
			return p.errorf("sample value %q: not a number", str)
		}
		if !p.consume(']') {
			return p.errorf("want ] closing a sample")
		}
		if n := len(out); n > 0 && ts <= out[n-1].T {
			return p.errorf("timestamp %d after %d: samples not in increasing time order", ts, out[n-1].T)
		}
		out = append(out, Sample{T: ts, V: v})
		if p.consume(',') {
			continue
		}
		if p.consume(']') {
			break
		}
		return p.errorf("want , or ] after a sample")
	}
	if p.skipSpace(); p.i != len(p.b) {
		return p.errorf("trailing data after values")
	}
	*s = out
	return nil
}

// parseTimestamp turns Unix seconds with up to millisecond precision
// (1435781451.781) into milliseconds. Seconds around 1.8e9 have 10 digits,
// so float64 holds them with room to spare and rounding recovers the exact
// millisecond.
func parseTimestamp(b []byte) (int64, error) {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 9e15 {
		return 0, fmt.Errorf("bad timestamp %q", b)
	}
	return int64(math.Round(f * 1000)), nil
}

// parser is a cursor over the JSON of one values array.
type parser struct {
	b []byte
	i int
}

func (p *parser) skipSpace() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

// consume skips whitespace and then c, reporting whether c was there.
func (p *parser) consume(c byte) bool {
	p.skipSpace()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) literal(lit string) bool {
	p.skipSpace()
	if bytes.HasPrefix(p.b[p.i:], []byte(lit)) {
		p.i += len(lit)
		return true
	}
	return false
}

// number returns the bytes of a JSON number (possibly malformed; the caller
// parses it).
func (p *parser) number() []byte {
	p.skipSpace()
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E' {
			p.i++
			continue
		}
		break
	}
	return p.b[start:p.i]
}

// simpleString returns the contents of a string without escapes; sample
// values never have any.
func (p *parser) simpleString() ([]byte, bool) {
	if !p.consume('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case '"':
			p.i++
			return p.b[start : p.i-1], true
		case '\\':
			return nil, false
		}
		p.i++
	}
	return nil, false
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("values, offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

// readKey reads an object key.
func readKey(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	key, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("want an object key, got %v", tok)
	}
	return key, nil
}

// expectDelim reads the next token and checks that it is d.
func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if tok != d {
		return fmt.Errorf("got %v, want %v", tok, d)
	}
	return nil
}

// skipValue reads and discards one value without buffering it whole.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}
