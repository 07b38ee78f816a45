package backtest

import (
	"bytes"
	"strings"
	"testing"
)

func TestProgress(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, false, 10)
	p.add(4) // before logEvery: nothing yet
	if b.Len() != 0 {
		t.Errorf("early line: %q", b.String())
	}
	p.add(6) // done: a line at once
	p.finish()
	if got := b.String(); strings.Count(got, "\n") != 1 || !strings.HasPrefix(got, "backtest: 10/10 evaluations (100.0%)") {
		t.Errorf("log mode: %q", got)
	}

	b.Reset()
	p = newProgress(&b, true, 4)
	p.add(4)
	p.finish()
	got := b.String()
	if !strings.HasPrefix(got, "\r["+strings.Repeat("=", barWidth)+"] 100.0% 4/4 evaluations") || !strings.HasSuffix(got, "ETA 0s \n") || strings.Count(got, "\r") != 1 {
		t.Errorf("bar: %q", got)
	}

	var none *progress
	none.add(1) // no progress wanted: a nil progress does nothing
	none.finish()
	newProgress(nil, false, 3).add(1)
}
